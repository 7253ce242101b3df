"""The scale role's planner (plugins/filter/scale.py): which replicas run on which ports, nginx's upstream servers,
and what starts and what goes, over the role's read as recorded on the lab (tests/unit/fixtures/scale/: lab1 with
three replicas and alone, Docker 28.2.2 / Compose 2.26.1) and over a table of states."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.filter.scale import read_lines, scale_plan

FIXTURES = Path(__file__).parent / "fixtures" / "scale"
ADDR = "127.0.2.1"


def plan(lines: list[str], replicas: int) -> dict:
    return scale_plan(lines, replicas, "stackops-lab1", "app", ADDR, 8000, 8002)


def test_the_recorded_read_of_lab1_with_three_replicas() -> None:
    lines = (FIXTURES / "read-lab1-3-replicas.txt").read_text().splitlines()
    files, override, projects = read_lines(lines)
    assert files == ["/var/lib/stackops-lab/hosts/lab1/compose.yaml"]
    assert override is True
    assert sorted(projects) == ["stackops-lab1-app-2", "stackops-lab1-app-3"]
    # Unchanged at 3: nothing to start or remove, the upstream as it is.
    same = plan(lines, 3)
    assert (same["new"], same["remove"], same["current"]) == ([], [], 3)
    assert same["servers"] == [f"{ADDR}:8000", f"{ADDR}:8002", f"{ADDR}:8003"]
    # Down to 1: both go, the highest first, and the upstream keeps the service alone.
    down = plan(lines, 1)
    assert [r["project"] for r in down["remove"]] == ["stackops-lab1-app-3", "stackops-lab1-app-2"]
    assert [r["port"] for r in down["remove"]] == [8003, 8002]
    assert (down["replicas"], down["servers"]) == ([], [f"{ADDR}:8000"])


def test_the_recorded_read_of_lab1_alone() -> None:
    lines = (FIXTURES / "read-lab1-alone.txt").read_text().splitlines()
    up = plan(lines, 3)
    assert (up["override"], up["current"], up["remove"]) == (False, 1, [])
    assert [(r["project"], r["port"], r["url"]) for r in up["new"]] == [
        ("stackops-lab1-app-2", 8002, f"http://{ADDR}:8002"),
        ("stackops-lab1-app-3", 8003, f"http://{ADDR}:8003"),
    ]
    assert up["new"] == up["replicas"]


# (replica projects found, replicas wanted, to start, to remove, upstream servers' ports)
CASES = [
    ([], 1, [], [], [8000]),
    ([], 2, ["stackops-lab1-app-2"], [], [8000, 8002]),
    (["stackops-lab1-app-2"], 2, [], [], [8000, 8002]),
    (["stackops-lab1-app-2", "stackops-lab1-app-2"], 3, ["stackops-lab1-app-3"], [], [8000, 8002, 8003]),
    (
        ["stackops-lab1-app-2", "stackops-lab1-app-4"],
        3,
        ["stackops-lab1-app-3"],
        ["stackops-lab1-app-4"],
        [8000, 8002, 8003],
    ),
    (
        ["stackops-lab1-app-10", "stackops-lab1-app-9", "stackops-lab1-app-2"],
        2,
        [],
        ["stackops-lab1-app-10", "stackops-lab1-app-9"],
        [8000, 8002],
    ),
    # A container with the replica label under a name the role did not give it goes too.
    (["by-hand"], 1, [], ["by-hand"], [8000]),
]


@pytest.mark.parametrize(("found", "wanted", "start", "remove", "ports"), CASES)
def test_plan(found: list[str], wanted: int, start: list[str], remove: list[str], ports: list[int]) -> None:
    result = plan([f"replica {name}" for name in found], wanted)
    assert [r["project"] for r in result["new"]] == start
    assert [r["project"] for r in result["remove"]] == remove
    assert result["servers"] == [f"{ADDR}:{port}" for port in ports]
    assert result["current"] == 1 + len(set(found))


def test_lines_it_does_not_know_are_ignored() -> None:
    lines = ["files /a/compose.yaml,/a/more.yaml", "override ", "replica ", "Shared connection to 127.0.2.1 closed."]
    assert read_lines(lines) == (["/a/compose.yaml", "/a/more.yaml"], False, [])
