"""The health-check playbook across the lab fleet: a healthy fleet is ok and unchanged; a broken host is critical
with its reasons, fails alone, and every host gets a JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lab
from harness.labctl import lab_up
from harness.playbook import assert_read_only, run_playbook

pytestmark = pytest.mark.lab_hosts("all")

PLAYBOOK = "stackops.runbooks.health_check"


@pytest.mark.matrix
def test_a_healthy_fleet_is_ok_and_never_changed(tmp_path: Path) -> None:
    runs = assert_read_only(PLAYBOOK, extravars={"health_check_report_dir": str(tmp_path)})
    assert all(n == 0 for run in runs for n in run.changed().values())
    results = runs[1].artifacts["health_check"]
    assert {host: r["status"] for host, r in results.items()} == {"lab1": "ok", "lab2": "ok", "lab3": "ok"}
    assert results["lab3"]["services"] == dict.fromkeys(("backend", "db", "frontend", "nginx", "redis"), "running")
    assert results["lab1"]["services"] == {
        "app": "running",
        "nginx": "running",
        "postgres": "running",
        "redis": "running",
    }
    report = json.loads((tmp_path / "health-lab1.json").read_text())
    assert report["status"] == "ok" and report["postgres"] == "ok" and report["redis"] == "ok"
    assert (tmp_path / "health-lab1.json").stat().st_mode & 0o777 == 0o600
    # The lab inventory's endpoints: TLS with its certificate, a WebSocket upgrade, a CORS preflight.
    endpoints = report["endpoints"]
    assert {name: e["status"] for name, e in endpoints.items()} == {
        "liveness": 200,
        "readiness": 200,
        "tls": 200,
        "websocket": 101,
        "cors": 204,
    }
    assert endpoints["tls"]["tls"]["verified"] is True and endpoints["tls"]["tls"]["days_left"] > 300
    assert report["restarts"] == {"app": 0, "nginx": 0, "postgres": 0, "redis": 0}
    assert set(report["elapsed_ms"]) == {"services", "postgres", "redis", "http", "total"}


def test_a_broken_host_is_critical_with_reasons_and_fails_alone(hosts: dict, tmp_path: Path) -> None:
    lab.compose(hosts["lab2"], "stop", "redis")
    try:
        run = run_playbook(PLAYBOOK, extravars={"health_check_report_dir": str(tmp_path)})
    finally:
        lab_up()
    assert run.failed_hosts() == {"lab2"}
    report = json.loads((tmp_path / "health-lab2.json").read_text())
    assert report["status"] == "critical"
    reasons = " | ".join(report["critical"])
    assert "stackops-lab2-redis-1 is exited" in reasons
    assert "Redis at 127.0.2.2:6379 is not available" in reasons
    assert "readiness: answered 503, expected 200" in reasons
    assert json.loads((tmp_path / "health-lab1.json").read_text())["status"] == "ok"
    failure = run.result("lab2", "Fail the host when its status is at or above health_check_fail_on")["msg"]
    assert failure.startswith("lab2 is critical: ")


def test_thresholds_turn_readings_into_warnings(tmp_path: Path) -> None:
    run = run_playbook(
        PLAYBOOK,
        limit="lab1",
        extravars={
            "health_check_report_dir": str(tmp_path),
            "health_check_disk_warning_pct": 1,
            "health_check_disk_critical_pct": 99.9,
            "health_check_fail_on": "warning",
        },
    )
    assert run.failed_hosts() == {"lab1"}
    report = json.loads((tmp_path / "health-lab1.json").read_text())
    assert report["status"] == "warning"
    assert any(w.startswith("disk used on / is ") for w in report["warning"])
