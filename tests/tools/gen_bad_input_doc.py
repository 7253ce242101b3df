"""Write docs/bad_input.md from the bad-input suite's table (CASES in tests/integration/test_bad_input.py), so the
page is the table the tests run. `--check` fails when the page is stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "lab"), str(REPO / "tests" / "integration")]

import test_bad_input as suite  # noqa: E402
from generated import write_or_check  # noqa: E402

PAGE = REPO / "docs" / "bad_input.md"
INTRO = """# Bad input

Every module of the collection refuses bad input with a message that names the value or the option and says what
to give instead: no traceback, no `MODULE FAILURE`, and nothing changed. This page lists what
the bad-input suite (`tests/integration/test_bad_input.py`) gives each module on the lab host lab1, and what the
message must hold. It is generated from the suite's table by `python tests/tools/gen_bad_input_doc.py`
(`tests/unit/test_docs.py` fails when it is stale).

How the suite runs: one task per case, in three playbooks run side by side through the test harness
(`ignore_errors`, each result read from the run's events). Each case's options are laid over options that work on
lab1 (the inventory's connection variables, an existing project and service). Where a case would wrongly be
accepted they keep it harmless: a label no object carries (docker_prune), a scratch Redis database (9), a restore
target that does not exist, a backup directory that must stay absent.

"Nothing changed" is proven independently of the modules by `tests/harness/snapshot.py`, read before and after:
PostgreSQL (databases, exact row counts per table, a digest of each relation's definition and of every other
object, sequences, roles, ALTER SYSTEM settings), Redis (DBSIZE and a digest of every key and value per database,
CONFIG GET), nginx (sha256 of every file in its configuration directory, its worker processes), the compose
containers (id, state, start time, restarts), canary files (`/tmp/pwned*` on the host and in every container,
which the injected commands would create) and the backup directory of the cases.

The injection payloads:

| Name | Value |
| --- | --- |
"""


def code(value: str) -> str:
    """Inline code that may itself hold backticks, safe in a table cell."""
    text = value.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render() -> str:
    payloads = {
        "SQL": suite.SQLI,
        "command substitution": suite.SHELL,
        "backticks": suite.BACKTICKS,
        "semicolon": suite.SEMICOLON,
        "newline": suite.NEWLINE,
    }
    lines = [INTRO.rstrip("\n")]
    lines += [f"| {name} | {code(json.dumps(value)[1:-1])} |" for name, value in payloads.items()]
    for module in suite.MODULES:
        cases = [case for case in suite.CASES if case.module == module]
        lines += [
            "",
            f"## [{module}](modules/{module}.md)",
            "",
            f"{len(cases)} cases.",
            "",
            "| Case | Options given | Gives |",
            "| --- | --- | --- |",
        ]
        for case in cases:
            given = code(json.dumps(case.args, ensure_ascii=False))
            if case.refused:
                gives = "refused; the message holds " + ", ".join(code(word) for word in case.words)
            else:
                gives = "accepted by design, and changes nothing"
            lines.append(f"| {case.name} | {given} | {gives} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    return write_or_check(PAGE, render(), sys.argv, "python tests/tools/gen_bad_input_doc.py")


if __name__ == "__main__":
    sys.exit(main())
