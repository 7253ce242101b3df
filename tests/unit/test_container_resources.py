"""stack_health's container resources: OOM kills, restart loops and memory against each container's limit, read from
`docker inspect` and `docker stats` output recorded from Docker 28.2.2 (cgroup v1) on a scratch project of the lab
image (tests/unit/fixtures/compose/docker-28.2.2-*.txt)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _compose as compose
from ansible_collections.stackops.runbooks.plugins.modules import stack_health

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
TH = {**stack_health.DEFAULTS}


def recorded() -> tuple[dict[str, dict], dict[str, int], datetime]:
    inspected = compose.parse_inspected((FIXTURES / "docker-28.2.2-inspect-resources.txt").read_text())
    used = compose.parse_mem_usage((FIXTURES / "docker-28.2.2-stats-memusage.txt").read_text())
    # When the recording was made: the newest start plus a few seconds.
    newest = max(v["started"] for v in inspected.values())
    return inspected, used, datetime.strptime(newest[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)


def container(name: str, cid: str, fields: dict, state: str = "running") -> compose.Container:
    return compose.Container(cid, name, name, state, "", 0, "img", "", **fields)


@pytest.mark.parametrize(
    ("text", "size"),
    [("12.5MiB", 13107200), ("1.944GiB", 2087354105), ("636KiB", 651264), ("0B", 0), ("512kB", 512000), ("--", None)],
)
def test_sizes_as_docker_stats_prints_them(text: str, size: int | None) -> None:
    assert compose.parse_size(text) == size


def test_recorded_inspect_and_stats() -> None:
    inspected, used, _now = recorded()
    by_limit = sorted((v["memory_limit"], v["oom_killed"], v["restarts"]) for v in inspected.values())
    # plain (no limit), crasher (no limit, one restart), oomer (32 MiB, killed, one restart), hog (48 MiB), app (64).
    assert by_limit == [
        (0, False, 0),
        (0, False, 1),
        (32 * 2**20, True, 1),
        (48 * 2**20, False, 0),
        (64 * 2**20, False, 0),
    ]
    assert set(used) <= set(inspected) and len(used) == 5 and all(v > 0 for v in used.values())


def test_resources_judge_memory_oom_and_restart_loops() -> None:
    inspected, used, now = recorded()
    # Which recorded container is which, by its limit, OOM kill and restarts.
    names = {(v["memory_limit"], v["oom_killed"], v["restarts"]): cid for cid, v in inspected.items()}
    cids = {
        "app": names[(64 * 2**20, False, 0)],
        "hog": names[(48 * 2**20, False, 0)],
        "oomer": names[(32 * 2**20, True, 1)],
        "crasher": names[(0, False, 1)],
        "plain": names[(0, False, 0)],
    }
    containers = [container(n, cid[:12], inspected[cid]) for n, cid in cids.items()]
    readings, findings = stack_health.resources(containers, used, TH, now + timedelta(seconds=5))
    assert readings["plain"]["memory"]["limit"] is None and readings["plain"]["memory"]["used_pct"] is None
    assert readings["hog"]["memory"] == {"used": 43201331, "limit": 48 * 2**20, "used_pct": 85.8}
    assert readings["oomer"]["oom_killed"] is True
    assert [(f.check, f.severity, f.message) for f in findings] == [
        (
            "services.memory",
            "warning",
            "memory used by container hog against its limit is 85.8%, at or above the warning threshold 80%",
        ),
        (
            "services.oom",
            "warning",
            "container oomer was killed for want of memory (limit 32 MiB); it runs again after a restart",
        ),
        (
            "services.restart_loop",
            "critical",
            "container oomer is in a restart loop: restarted 1 time by Docker, up only 5 s",
        ),
        (
            "services.restart_loop",
            "critical",
            "container crasher is in a restart loop: restarted 1 time by Docker, up only 5 s",
        ),
    ]
    # Two minutes later neither counts as a loop any more; the OOM kill is still told.
    _readings, later = stack_health.resources(containers, used, TH, now + timedelta(seconds=300))
    assert sorted(f.check for f in later) == ["services.memory", "services.oom"]


@pytest.mark.parametrize(
    ("state", "fields", "checks"),
    [
        ("exited", {"oom_killed": True, "memory_limit": 2**25}, [("services.oom", "critical")]),
        ("exited", {"oom_killed": True}, [("services.oom", "critical")]),
        ("restarting", {"restarts": 7}, [("services.restart_loop", "critical")]),
        ("running", {"restarts": 0, "started": "2026-12-07T03:00:00.5Z"}, []),
        ("running", {"restarts": 2, "started": "0001-01-01T00:00:00Z"}, []),
    ],
)
def test_states_without_readings(state: str, fields: dict, checks: list) -> None:
    now = datetime(2026, 12, 7, 3, 0, 30, tzinfo=timezone.utc)
    _readings, findings = stack_health.resources([container("c", "abc", fields, state)], {}, TH, now)
    assert [(f.check, f.severity) for f in findings] == checks
    if checks and checks[0][0] == "services.oom" and "memory_limit" not in fields:
        assert "limit none: the host ran out" in findings[0].message
