"""compose_reach through the health_check playbook on lab3, runbook 001's shape (backend -> db and redis, nginx ->
backend and frontend), with the role's tags picking the probe and the verdict alone; a closed port named as an
explicit edge is a failed edge, and critical. In a module of lab3's own lane (test_reach.py holds lab1)."""

from __future__ import annotations

import pytest

from harness.paths import lab_hosts
from harness.playbook import assert_read_only
from harness.web import by_edge, connects

pytestmark = pytest.mark.lab_hosts("lab3")

HEALTH = "stackops.runbooks.health_check"
PROBE_TASK = "Probe each service's dependencies from inside its container"


def test_health_check_on_lab3_reports_each_edge_and_a_failed_one_as_critical() -> None:
    addr = lab_hosts()["lab3"].addr
    extravars = {
        "health_check_reach": True,
        "health_check_reach_edges": [{"from": "backend", "to": f"{addr}:1"}],
        "health_check_fail_on": "never",
        "health_check_report_dir": "",
    }
    # The role's tags pick its steps through the playbook: the reach probe and the verdict, not the rest.
    _check, real = assert_read_only(HEALTH, limit="lab3", extravars=extravars, tags="reach,report")
    assert not real.results("lab3", "Read the services, nginx, the configuration, PostgreSQL, Redis and the endpoints")
    probe = real.result("lab3", PROBE_TASK)
    edges = by_edge(probe["edges"])
    expected = {
        ("backend", "db"): f"{addr}:5432",
        ("backend", "redis"): f"{addr}:6379",
        ("nginx", "backend"): f"{addr}:8000",
        ("nginx", "frontend"): f"{addr}:5173",
    }
    for key, address in expected.items():
        assert (edges[key]["address"], edges[key]["status"]) == (address, "ok"), edges[key]
        assert connects(address)
    assert edges[("backend", f"{addr}:1")]["status"] == "failed"
    verdict = real.result("lab3", "Decide the host's status")["ansible_facts"]["health_check_result"]
    assert verdict["status"] == "critical"
    assert f"backend cannot reach {addr}:1: [Errno 111] Connection refused" in verdict["critical"]
    # The stack settings give every edge of this shape an address: nothing left unprobed.
    assert not [w for w in verdict["warning"] if " -> " in w], verdict["warning"]
