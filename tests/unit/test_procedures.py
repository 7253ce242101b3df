"""docs/procedures.md against the seeds and the collection.

Every section of the seed index (tests/unit/fixtures/seed_procedures.txt, made by tests/tools/seed_index.py) has a
row, in the seeds' order; what a row cites exists: links, playbooks, roles, modules and repository paths; the tags
after "tag"/"tags" are tags of the playbook or role cited before them (its own `tags:` and those of the roles it
runs, read from the YAML); a variable with a role's prefix is declared in that role's meta/argument_specs.yml (or
is one that a playbook reads, such as `<role>_hosts`); each performed or partly row names, in its "proved by" cell,
tests that exist (read from the test files with ast, as pytest would collect them, without importing them or
touching the lab), and the other rows name none; the summary line counts the rows. Each check is a function over a
page and a collection, shown failing on a synthetic one at the end.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from harness.paths import REPO

PAGE = REPO / "docs" / "procedures.md"
INDEX = REPO / "tests" / "unit" / "fixtures" / "seed_procedures.txt"
STATUSES = ("performed", "partly", "out of scope", "no procedure")
PROVEN = ("performed", "partly")  # the statuses whose rows must name the tests that prove them
SECTION = re.compile(r"^(\d{3} §[\d.]+) ")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]*)(?:#[^)]*)?\)")
TAGS = re.compile(r"\btags?\s+((?:`[^`]+`(?:\s*,\s*|\s+and\s+|\s+or\s+)?)+)")
BACKTICKED = re.compile(r"`([^`]+)`")
VARIABLE = re.compile(r"([a-z][a-z0-9_]*)(?:=.*)?")
REPO_PATH = re.compile(r"^(?:playbooks|roles|plugins|awx|bench|tests|docs)/\S+$")
CITED = re.compile(r"^(playbooks|roles|modules)/(\w+)\.md$")
# A test in the "proved by" cell: `test_module::test_name` is tests/integration/test_module.py's, `unit/...` is in
# tests/unit; a class-based test is `test_module::TestClass::test_name`; a parametrized one has no [parameters].
PROOF = re.compile(r"^(?:(integration|unit)/)?(test\w*)::((?:Test\w*::)?test\w*)$")
SUMMARY = re.compile(
    r"\*\*Summary: (\d+) seed sections in (\d+) rows: (\d+) performed, (\d+) partly, (\d+) out of scope, "
    r"(\d+) no procedure\.\*\*"
)
ROLE_KEYS = {"include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"}
NAMESPACE = "stackops.runbooks."
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Row:
    section: str
    status: str
    performed_by: str
    notes: str
    proved_by: str = ""

    @property
    def cited(self) -> str:
        """The cells that cite the collection (the section cell quotes the seed)."""
        return f"{self.performed_by} {self.notes}"


class Collection:
    """The playbooks, roles and modules of a repository, as the rows cite them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.roles = sorted((p.name for p in (root / "roles").iterdir() if (p / "tasks").is_dir()), key=len)
        self._tag_sets: dict[tuple[str, str], set[str]] = {}
        self._variable_sets: dict[str, set[str]] = {}

    def exists(self, kind: str, name: str) -> bool:
        path = {
            "playbooks": self.root / "playbooks" / f"{name}.yml",
            "roles": self.root / "roles" / name / "tasks",
            "modules": self.root / "plugins" / "modules" / f"{name}.py",
        }[kind]
        return path.exists()

    def tags(self, kind: str, name: str) -> set[str]:
        """Tags of a playbook, or of a role's task files, with those of every role they run."""
        if (kind, name) not in self._tag_sets:
            files = [self.root / "playbooks" / f"{name}.yml"] if kind == "playbooks" else self._task_files(name)
            self._tag_sets[kind, name] = self._tags(tuple(files), frozenset())
        return self._tag_sets[kind, name]

    def _task_files(self, role: str) -> list[Path]:
        return sorted((self.root / "roles" / role / "tasks").glob("*.yml"))

    def _tags(self, files: tuple[Path, ...], seen: frozenset[str]) -> set[str]:
        tags: set[str] = set()
        roles: set[str] = set()
        for path in files:
            _walk(_load(path), tags, roles)
        for role in roles - seen:
            if (self.root / "roles" / role / "tasks").is_dir():
                tags |= self._tags(tuple(self._task_files(role)), seen | roles)
        return tags

    def role_of(self, variable: str) -> str | None:
        """The role whose prefix the variable has (the longest: restore_drill_ before restore_)."""
        return next((r for r in reversed(self.roles) if variable.startswith(f"{r}_")), None)

    def variables(self, role: str) -> set[str]:
        if role not in self._variable_sets:
            specs = _load(self.root / "roles" / role / "meta" / "argument_specs.yml")
            self._variable_sets[role] = {n for e in specs["argument_specs"].values() for n in e.get("options") or {}}
        return self._variable_sets[role]

    def test_problems(self, proof: str) -> list[str]:
        """Why `proof` (a "proved by" entry) names no test that pytest collects; nothing when it does."""
        match = PROOF.match(proof)
        if not match:
            hint = ", without its [parameters]" if "[" in proof else ""
            return [f"`{proof}` is not a test id like `test_module::test_name` or `unit/test_module::test_name`{hint}"]
        folder, module, name = match.groups()
        path = self.root / "tests" / (folder or "integration") / f"{module}.py"
        if not path.is_file():
            return [f"`{proof}`: {path.relative_to(self.root)} does not exist"]
        if name not in _test_names(path):
            return [f"`{proof}`: {path.relative_to(self.root)} has no test {name}"]
        return []

    def playbook_variables(self) -> set[str]:
        """Variables the playbooks themselves read (`<role>_hosts`, `<role>_serial`)."""
        pattern = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\|\s*default\(")
        return {m for path in (self.root / "playbooks").glob("*.yml") for m in pattern.findall(path.read_text())}


@cache
def _load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=LOADER)  # noqa: S506 - a safe loader, the C one when there is one


@cache
def _test_names(path: Path) -> frozenset[str]:
    """The tests pytest collects from a module (python_functions and python_classes left at their defaults): its
    `test*` functions, and the `test*` methods of its `Test*` classes as `Class::method`."""
    names: set[str] = set()
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, functions) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(
                f"{node.name}::{m.name}" for m in node.body if isinstance(m, functions) and m.name.startswith("test")
            )
    return frozenset(names)


def _walk(node: Any, tags: set[str], roles: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tags":
                values = value.split(",") if isinstance(value, str) else value or []
                tags.update(str(t).strip() for t in values if "{{" not in str(t))
            elif key in ROLE_KEYS and isinstance(value, dict):
                _add_role(value.get("name"), roles)
            elif key == "roles" and isinstance(value, list):
                for entry in value:
                    _add_role(entry if isinstance(entry, str) else entry.get("role", entry.get("name")), roles)
            _walk(value, tags, roles)
    elif isinstance(node, list):
        for item in node:
            _walk(item, tags, roles)


def _add_role(name: Any, roles: set[str]) -> None:
    if isinstance(name, str) and "{{" not in name:
        roles.add(name.removeprefix(NAMESPACE))


@dataclass
class Page:
    text: str
    index: list[tuple[str, str]]
    collection: Collection
    docs: Path  # the folder the page's links are relative to
    rows: list[Row] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = list(table_rows(self.text))


def table_rows(text: str) -> Iterator[Row]:
    for line in text.splitlines():
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip())[1:-1]] if line.startswith("|") else []
        if len(cells) in (4, 5) and SECTION.match(cells[0]):
            yield Row(*cells)


def read_index(text: str) -> list[tuple[str, str]]:
    """(`<seed> §<id>`, title) of each line of the index."""
    entries = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = SECTION.match(line)
            assert match, f"not an index line: {line!r}"
            entries.append((match.group(1), line[match.end() :]))
    return entries


def _row_section(row: Row, index: list[tuple[str, str]]) -> int | None:
    """Where in the index the row's section is: its cell starts with the id and the title, then ends, or goes on
    with ": <item>" or " (<commands>)"."""
    for position, (ref, title) in enumerate(index):
        head = f"{ref} {title}"
        if row.section == head or row.section.startswith((f"{head}:", f"{head} (")):
            return position
    return None


def missing_sections(page: Page) -> list[str]:
    covered = {_row_section(row, page.index) for row in page.rows}
    unknown = [f"row for no indexed section: {r.section}" for r in page.rows if _row_section(r, page.index) is None]
    return unknown + [f"no row for {ref} {title}" for i, (ref, title) in enumerate(page.index) if i not in covered]


def out_of_order(page: Page) -> list[str]:
    problems, last = [], -1
    for row in page.rows:
        position = _row_section(row, page.index)
        if position is not None:
            if position < last:
                problems.append(f"row out of the seeds' order: {row.section}")
            last = max(last, position)
    return problems


def bad_statuses(page: Page) -> list[str]:
    return [f"{r.section}: status {r.status!r} is not one of {STATUSES}" for r in page.rows if r.status not in STATUSES]


def bad_citations(page: Page) -> list[str]:
    """Links whose target is missing, pages of playbooks, roles or modules that do not exist, repository paths in
    backticks that do not exist."""
    problems = []
    for row in page.rows:
        for target in LINK.findall(row.cited):
            cited = CITED.match(target)
            if not (page.docs / target).exists():
                problems.append(f"{row.section}: link to missing {target}")
            elif cited and not page.collection.exists(*cited.groups()):
                problems.append(f"{row.section}: {target} has a page but no {cited.group(1)[:-1]} {cited.group(2)}")
        for text in BACKTICKED.findall(row.cited):
            if REPO_PATH.match(text) and not (page.collection.root / text).exists():
                problems.append(f"{row.section}: {text} does not exist")
    return problems


def bad_tags(page: Page) -> list[str]:
    """Each tag must be one of the playbook or role linked last before it in the row."""
    problems = []
    for row in page.rows:
        owner: tuple[str, str] | None = None
        marks = [(m.start(), "link", m) for m in LINK.finditer(row.cited)]
        marks += [(m.start(), "tags", m) for m in TAGS.finditer(row.cited)]
        for _pos, what, match in sorted(marks, key=lambda mark: mark[0]):
            cited = CITED.match(match.group(1)) if what == "link" else None
            if cited and cited.group(1) in ("playbooks", "roles"):
                owner = (cited.group(1), cited.group(2))
            elif what == "tags":
                for tag in BACKTICKED.findall(match.group(1)):
                    if owner is None:
                        problems.append(f"{row.section}: tag {tag} follows no playbook or role")
                    elif not page.collection.exists(*owner) or tag not in page.collection.tags(*owner):
                        problems.append(f"{row.section}: {owner[0]}/{owner[1]} has no tag {tag}")
    return problems


def bad_variables(page: Page) -> list[str]:
    problems = []
    read_by_playbooks = page.collection.playbook_variables()
    for row in page.rows:
        for text in BACKTICKED.findall(row.cited):
            match = VARIABLE.fullmatch(text)
            role = page.collection.role_of(match.group(1)) if match else None
            if match and role and match.group(1) not in page.collection.variables(role) | read_by_playbooks:
                problems.append(f"{row.section}: {match.group(1)} is not in roles/{role}/meta/argument_specs.yml")
    return problems


def unproved(page: Page) -> list[str]:
    """A performed or partly row names at least one test, in backticks, and each one exists; a row that is out of
    scope or no procedure names none (nothing of the collection's is proved there)."""
    problems = []
    for row in page.rows:
        proofs = BACKTICKED.findall(row.proved_by)
        stray = BACKTICKED.sub("", row.proved_by).replace(",", " ").split()
        if stray:
            problems.append(f"{row.section}: proved by {' '.join(stray)!r}, which is not a test id in backticks")
        if row.status in PROVEN and not proofs:
            problems.append(f"{row.section}: {row.status}, but its proved by cell names no test")
        elif row.status not in PROVEN and proofs:
            problems.append(f"{row.section}: {row.status}, but its proved by cell names tests")
        problems += [
            f"{row.section}: {problem}" for proof in proofs for problem in page.collection.test_problems(proof)
        ]
    return problems


def wrong_summary(page: Page) -> list[str]:
    found = SUMMARY.findall(page.text)
    if len(found) != 1:
        return [f"expected one summary line like {SUMMARY.pattern!r}, found {len(found)}"]
    statuses = Counter(row.status for row in page.rows)
    actual = (len(page.index), len(page.rows), *(statuses[s] for s in STATUSES))
    said = tuple(int(n) for n in found[0])
    return [] if said == actual else [f"the summary says {said}, the table has {actual}"]


CHECKS: list[Callable[[Page], list[str]]] = [
    missing_sections,
    out_of_order,
    bad_statuses,
    bad_citations,
    bad_tags,
    bad_variables,
    unproved,
    wrong_summary,
]


@cache
def seed_index() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_index", REPO / "tests" / "tools" / "seed_index.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page() -> Page:
    return Page(PAGE.read_text(), read_index(INDEX.read_text()), Collection(REPO), PAGE.parent)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_procedures_page(page: Page, check: Callable[[Page], list[str]]) -> None:
    assert check(page) == []


def test_index_is_the_seeds_headings() -> None:
    seeds = seed_index().seeds_dir()
    if seeds is None:
        pytest.skip("the seeds are not beside this checkout (../shared/seeds)")
    assert INDEX.read_text() == seed_index().render(seeds), "stale: run python tests/tools/seed_index.py"


def test_index_numbers_headings_and_skips_groups() -> None:
    seed = textwrap.dedent(
        """\
        # Title
        ## Table of Contents
        - [x](#x)
        ## 🚨 Quick Reference
        ### Emergency Commands
        ```bash
        # a comment, not a heading
        docker compose ps
        ```
        ## 2. Runbook Procedures
        ---
        ### 2.1. Restarting Services
        text
        #### Root Cause
        text
        """
    )
    assert list(seed_index().sections(seed)) == [
        ("1.1", "Emergency Commands"),
        ("2.1", "Restarting Services"),
        ("2.1.1", "Root Cause"),
    ]
    with pytest.raises(ValueError, match="own number 3"):
        list(seed_index().sections("## 1. One\ntext\n## 3. Three\ntext\n"))


# A synthetic collection and page: the page passes every check, and each change below makes exactly one fail.
SYNTHETIC_INDEX = "# 000: 000_x.txt\n000 §1 Overview\n000 §2.1 Commands\n000 §2.2 Daily Tasks\n"
SYNTHETIC_PAGE = """\
**Summary: 3 seed sections in 4 rows: 2 performed, 1 partly, 0 out of scope, 1 no procedure.**

| section | status | performed by | notes | proved by |
| --- | --- | --- | --- | --- |
| 000 §1 Overview | no procedure | | | |
| 000 §2.1 Commands: `ps \\| grep x` | performed | [c](playbooks/check.md) tag `stack` (`check_mounts`) | \
| `test_check::test_stack`, `unit/test_check::TestPlan::test_mounts` |
| 000 §2.1 Commands: restart | partly | [c](roles/check.md) tags `stack`, `inner`; [m](modules/m.md) | `bench/x.py` \
| `test_check::test_restart_async` |
| 000 §2.2 Daily Tasks (`df -h`) | performed | [c](playbooks/check.md) (`check_hosts`) | | `test_check::test_stack` |
"""
BROKEN = [
    ("000 §2.2 Daily Tasks (`df -h`)", "000 §2.3 Daily Tasks (`df -h`)", missing_sections, "no row for 000 §2.2"),
    ("000 §1 Overview |", "000 §1 Overvie |", missing_sections, "row for no indexed section"),
    ("| 000 §1 Overview | no procedure | | | |\n", "", missing_sections, "no row for 000 §1 Overview"),
    ("000 §2.2 Daily Tasks (`df -h`)", "000 §1 Overview: again", out_of_order, "out of the seeds' order"),
    ("| no procedure |", "| skipped |", bad_statuses, "status 'skipped'"),
    ("[m](modules/m.md)", "[m](modules/gone.md)", bad_citations, "link to missing modules/gone.md"),
    ("[m](modules/m.md)", "[m](modules/orphan.md)", bad_citations, "no module orphan"),
    ("(playbooks/check.md) (`check_hosts`)", "(playbooks/gone.md)", bad_citations, "missing playbooks/gone.md"),
    ("`bench/x.py`", "`bench/gone.py`", bad_citations, "bench/gone.py does not exist"),
    ("tag `stack` (", "tag `stak` (", bad_tags, "playbooks/check has no tag stak"),
    ("`stack`, `inner`", "`stack`, `outer`", bad_tags, "roles/check has no tag outer"),
    ("| | |\n| 000 §2.1", "| tag `stack` | |\n| 000 §2.1", bad_tags, "follows no playbook or role"),
    ("(`check_mounts`)", "(`check_mount=/`)", bad_variables, "check_mount is not in roles/check"),
    ("(`check_hosts`) | | `test_check::test_stack` |", "(`check_hosts`) | | |", unproved, "performed, but its proved"),
    ("| `test_check::test_restart_async` |", "| |", unproved, "partly, but its proved by cell names no test"),
    ("| no procedure | | | |", "| no procedure | | | `test_check::test_stack` |", unproved, "no procedure, but its"),
    ("test_restart_async` |", "test_restart_async` and more |", unproved, "proved by 'and more', which is not"),
    ("test_check::test_stack", "test_gone::test_stack", unproved, "tests/integration/test_gone.py does not exist"),
    ("test_check::test_restart_async", "test_check::test_restart", unproved, "test_check.py has no test test_restart"),
    ("test_check::test_restart_async", "test_check::test_nested", unproved, "test_check.py has no test test_nested"),
    ("unit/test_check::TestPlan", "test_check::TestPlan", unproved, "integration/test_check.py has no test TestPlan::"),
    ("TestPlan::test_mounts`", "TestPlan::test_mounts[a]`", unproved, "without its [parameters]"),
    ("4 rows", "5 rows", wrong_summary, "the summary says"),
    ("**Summary", "Summary", wrong_summary, "expected one summary line"),
]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    files = {
        "playbooks/check.yml": "- hosts: \"{{ check_hosts | default('all') }}\"\n  roles: [stackops.runbooks.check]\n",
        "roles/check/tasks/main.yml": "- ansible.builtin.import_tasks: stack.yml\n  tags: [stack]\n",
        "roles/check/tasks/stack.yml": (
            "- ansible.builtin.include_role:\n    name: stackops.runbooks.inner\n    apply: {tags: [inner]}\n"
        ),
        "roles/check/meta/argument_specs.yml": "argument_specs:\n  main:\n    options:\n      check_mounts: {}\n",
        "roles/inner/tasks/main.yml": "- ansible.builtin.debug: {}\n  tags: deep, inner\n",
        "plugins/modules/m.py": "",
        "plugins/modules/gone.py": "",
        "bench/x.py": "",
        "docs/playbooks/check.md": "",
        "docs/roles/check.md": "",
        "docs/modules/m.md": "",
        "docs/modules/orphan.md": "",
        "tests/integration/test_check.py": (
            "def test_stack() -> None:\n    def test_nested() -> None: ...\n\n\n"
            "async def test_restart_async() -> None: ...\n"
        ),
        "tests/unit/test_check.py": "class TestPlan:\n    def test_mounts(self) -> None: ...\n",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def synthetic_page(root: Path, text: str) -> Page:
    return Page(text, read_index(SYNTHETIC_INDEX), Collection(root), root / "docs")


def test_synthetic_page_passes_every_check(synthetic: Path) -> None:
    page = synthetic_page(synthetic, SYNTHETIC_PAGE)
    assert len(page.rows) == 4
    assert page.collection.tags("playbooks", "check") == {"stack", "inner", "deep"}
    assert [problem for check in CHECKS for problem in check(page)] == []


@pytest.mark.parametrize(("old", "new", "check", "expected"), BROKEN, ids=[f"{b[2].__name__}-{b[1]}" for b in BROKEN])
def test_each_check_can_fail(
    synthetic: Path, old: str, new: str, check: Callable[[Page], list[str]], expected: str
) -> None:
    assert old in SYNTHETIC_PAGE
    page = synthetic_page(synthetic, SYNTHETIC_PAGE.replace(old, new, 1))
    failed = {c.__name__: c(page) for c in CHECKS}
    assert any(expected in problem for problem in failed[check.__name__]), failed[check.__name__]
    others = {name: problems for name, problems in failed.items() if problems and name != check.__name__}
    # Removing or moving a row also changes the counts the summary must match.
    assert set(others) <= {"wrong_summary", "missing_sections"}, others
