"""docs/faults.md cites only tests that exist: every test file, test and parametrized case it names (its short ids
`faults[F-P]` and `fleet[F-P]` among them) is one pytest collects. Collecting the integration modules needs no lab
(their lab fixtures run only when a test does)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "faults.md"
INTEGRATION = REPO / "tests" / "integration"
SHORT = {
    "faults": "test_faults.py::test_a_playbook_under_a_fault_ends_clearly",
    "fleet": "test_faults_fleet.py::test_a_fleet_playbook_under_a_fault_ends_clearly",
}
# The page's explanation of its ids writes the parameters out as placeholders.
PLACEHOLDERS = ("[F-P]", "[<fault>-<playbook>]")
CITED = re.compile(
    r"`(?:tests/integration/)?(?P<file>test_\w+\.py)(?:::(?P<test>test_\w+)(?P<case>\[[^\]`]*\])?)?`"
    r"|`(?P<alone>test_\w+)(?P<alone_case>\[[^\]`]*\])?`"
    r"|\b(?P<short>faults|fleet)(?P<short_case>\[[\w-]+\])"
)


def blocks(text: str) -> list[str]:
    """Each table row, and each other paragraph as one line."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        rows = paragraph.splitlines()
        found += rows if rows and rows[0].startswith("|") else [" ".join(rows)]
    return found


def citations(text: str) -> list[str]:
    """Every test the page cites, as an id under tests/integration: `file`, `file::test` or `file::test[case]`. A
    test named without its file is in the file named last before it in the same table row or paragraph."""
    found = []
    for block in blocks(text):
        file = None
        for match in CITED.finditer(block):
            if match["short"]:
                found.append(f"{SHORT[match['short']]}{match['short_case']}")
            elif match["file"]:
                file = match["file"]
                found.append(f"{file}::{match['test']}{match['case'] or ''}" if match["test"] else file)
            else:
                assert file, f"{match['alone']} is cited without a file before it: {block}"
                found.append(f"{file}::{match['alone']}{match['alone_case'] or ''}")
    return found


@cache
def collected(files: tuple[str, ...]) -> frozenset[str]:
    """The ids pytest collects from these integration modules (as `file::test[case]`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "STACKOPS_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=INTEGRATION,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return frozenset(line.rsplit("/", 1)[-1] for line in proc.stdout.splitlines() if "::" in line)


def missing(cited: list[str]) -> list[str]:
    """The cited ids no collected test answers: a placeholder case stands for any case of its test."""
    files = sorted({c.split("::", 1)[0] for c in cited})
    absent = [f for f in files if not (INTEGRATION / f).is_file()]
    ids = collected(tuple(f for f in files if f not in absent))
    tests = {i.split("[", 1)[0] for i in ids}
    found = []
    for cite in cited:
        file, _sep, test = cite.partition("::")
        if file in absent:
            found.append(cite)
        elif test and cite.endswith(PLACEHOLDERS):
            found += [cite] if cite.split("[", 1)[0] not in tests else []
        elif test:
            found += [cite] if cite not in ids and cite not in tests else []
    return found


def test_the_page_cites_only_tests_that_exist() -> None:
    cited = citations(PAGE.read_text())
    assert len(cited) > 60 and any(c.startswith(SHORT["fleet"]) for c in cited), "the page's citations were not read"
    assert not missing(cited), f"docs/faults.md cites tests that do not exist: {missing(cited)}"


def test_every_fault_case_is_on_the_page() -> None:
    """The page is the matrix: each (fault, playbook) case the two fault modules run is in a row of it."""
    ids = collected(("test_faults.py", "test_faults_fleet.py"))
    cited = set(citations(PAGE.read_text()))
    cases = {i for i in ids if i.split("[", 1)[0] in SHORT.values()}
    assert len(cases) > 20 and not cases - cited, f"not on docs/faults.md: {sorted(cases - cited)}"


def test_the_reader_finds_every_form_of_citation_and_flags_what_is_gone() -> None:
    line = (
        "| x | y | z | faults[disk_full-backup], `test_faults.py::test_a_fault_window_changes_nothing[redis_stopped]`, "
        "`test_faults.py::test_gone`, `test_postgres_stopped_changes_nothing_but_the_maintenance_page`, "
        "`test_gone.py`, `fleet[F-P]` |"
    )
    cited = citations(line)
    assert cited == [
        f"{SHORT['faults']}[disk_full-backup]",
        "test_faults.py::test_a_fault_window_changes_nothing[redis_stopped]",
        "test_faults.py::test_gone",
        "test_faults.py::test_postgres_stopped_changes_nothing_but_the_maintenance_page",
        "test_gone.py",
        f"{SHORT['fleet']}[F-P]",
    ]
    assert missing([*cited, f"{SHORT['faults']}[disk_full-nothing]"]) == [
        "test_faults.py::test_gone",
        "test_gone.py",
        f"{SHORT['faults']}[disk_full-nothing]",
    ]
