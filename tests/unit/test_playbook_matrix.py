"""The idempotence and check-mode matrix: every playbook is run by an integration test through the harness's
contracts, read from the tests' source. What converges runs the four-step (or, when it only reads, the read-only
contract); what acts on every run by design runs a check_run. The contracts take an independent snapshot of the
hosts after every run (tests/harness/playbook.py). A contract run with `tags=` tests the tagged part only, so it
does not count for the playbook."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.sources import string_constants

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))
CONTRACTS = {"assert_four_step", "four_step", "assert_read_only", "read_only", "check_run"}
CONVERGING = {"assert_four_step", "four_step", "assert_read_only", "read_only"}

# Playbooks whose every run is an action: a second run changes again, on purpose. Their --check runs must still
# change nothing (check_run), and their real runs are tested for what they do.
ACTIONS = {
    "admin_command": "every run takes a new backup, runs the command (a migration acts once) and keeps its output",
    "backup": "every run takes a new backup, named by its time (unless backup_if_older_than_hours finds a young one)",
    "collect_diagnostics": "every run writes a new bundle, named by its time",
    "maintenance_window": "every run enters and leaves maintenance: the page goes on and off, services stop and start",
    "restore": "every run restores a backup and swaps it in, keeping the database it replaced",
    "restore_drill": "every run is a new drill with its own scratch databases and evidence",
    "rollback": "every run puts a release back (image, database or configuration), a new change each time",
}


def contract_calls(source: str) -> dict[str, set[str]]:
    """Playbook name -> the contracts a test module runs it through (literal names or module-level constants); a call
    that passes `tags` runs a part of the playbook and is left out."""
    tree = ast.parse(source)
    constants = string_constants(tree)
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONTRACTS):
            continue
        if any(keyword.arg == "tags" for keyword in node.keywords):
            continue
        for arg in node.args:
            value = constants.get(arg.id) if isinstance(arg, ast.Name) else getattr(arg, "value", None)
            if isinstance(value, str) and value.startswith("stackops.runbooks."):
                found.setdefault(value.removeprefix("stackops.runbooks."), set()).add(node.func.id)
    return found


def covered() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "tests" / "integration").glob("test_*.py")):
        for playbook, contracts in contract_calls(path.read_text()).items():
            found.setdefault(playbook, set()).update(contracts)
    return found


def test_actions_are_playbooks() -> None:
    assert set(ACTIONS) <= set(PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_runs_through_a_contract(playbook: str) -> None:
    contracts = covered().get(playbook, set())
    if playbook in ACTIONS:
        assert "check_run" in contracts, f"{playbook} ({ACTIONS[playbook]}): no integration test runs check_run on it"
    else:
        assert contracts & CONVERGING, (
            f"{playbook}: no integration test runs it through assert_four_step or assert_read_only; add one, or, if "
            "every run acts by design, list it in ACTIONS with the reason and give it a check_run"
        )


def test_the_reader_finds_constants_and_literals_and_nothing_else() -> None:
    source = (
        'PLAYBOOK = "stackops.runbooks.alpha"\n'
        "def test_x():\n"
        '    assert_four_step(PLAYBOOK, limit="lab1")\n'
        '    check_run(run_playbook, "stackops.runbooks.beta")\n'
        '    run_playbook("stackops.runbooks.gamma")\n'
        '    assert_four_step("stackops.runbooks.delta", limit="lab2", tags="verify")\n'
        '    check_run(run_playbook, "stackops.runbooks.epsilon", tags="backup")\n'
    )
    assert contract_calls(source) == {"alpha": {"assert_four_step"}, "beta": {"check_run"}}
