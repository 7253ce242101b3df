"""The incident bundle: every part gathered on the host, secrets redacted, incident.md written, all fetched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lab
from harness.labctl import lab_up
from harness.paths import lab_credentials
from harness.playbook import check_run, run_playbook

pytestmark = pytest.mark.lab_hosts("lab2")

PLAYBOOK = "stackops.runbooks.collect_diagnostics"
FILES = [
    "compose.log",
    "config.json",
    "docker-df.txt",
    "env.txt",
    "incident.md",
    "networks.txt",
    "ports.txt",
    "resources.txt",
    "state.json",
]


def test_bundle_of_a_broken_host_with_secrets_redacted(hosts: dict, tmp_path: Path) -> None:
    host = hosts["lab2"]
    secret = lab_credentials("lab2")["stackops_redis_password"]
    # Check mode collects nothing, on the host or the controller.
    check_run(run_playbook, PLAYBOOK, limit="lab2", extravars={"collect_diagnostics_fetch_dir": str(tmp_path / "c")})
    assert not (tmp_path / "c").exists()
    # A log line that carries a secret and an error, as a careless app would print it.
    lab.compose(host, "exec", "-T", "app", "sh", "-c", f"echo 'ERROR connect failed auth={secret}' > /proc/1/fd/1")
    lab.compose(host, "stop", "redis")
    try:
        run = run_playbook(
            PLAYBOOK,
            limit="lab2",
            extravars={
                "collect_diagnostics_dir": str(tmp_path / "host"),
                "collect_diagnostics_fetch_dir": str(tmp_path / "controller"),
                "collect_diagnostics_symptoms": ["app answers 503 on /health/ready"],
                "collect_diagnostics_env_presence": {"app": ["REDIS_PASSWORD", "NOT_SET_ANYWHERE"]},
                "collect_diagnostics_addresses": [host.addr],
            },
        )
    finally:
        lab_up()
    run.assert_ok()
    summary = run.artifacts["collect_diagnostics"]["lab2"]
    assert summary["severity"] == "critical" and summary["files"] == FILES
    fetched = Path(summary["controller_path"])
    assert sorted(p.name for p in fetched.iterdir()) == FILES
    # The controller's copy is as private as the host's: fetch alone made its folder 0755.
    assert fetched.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in fetched.iterdir())
    host_dir = Path(summary["host_path"])
    assert host_dir.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in host_dir.iterdir())
    everything = "".join(p.read_text() for p in fetched.iterdir())
    assert secret not in everything, "a secret reached the bundle"
    assert "auth=[REDACTED]" in (fetched / "compose.log").read_text()
    assert summary["errors_by_container"]["app-1"] >= 1
    assert (fetched / "env.txt").read_text().split() == ["app:", "REDIS_PASSWORD=set", "NOT_SET_ANYWHERE=missing"]
    ports = (fetched / "ports.txt").read_text()
    assert "5432: 127.0.2.2:5432 by postgres (pid " in ports
    assert "6379: nothing listens" in ports
    incident = (fetched / "incident.md").read_text()
    assert incident.startswith("# Incident on lab2: critical")
    assert "- app answers 503 on /health/ready" in incident
    assert "stackops-lab2-redis-1 is exited" in incident and "| redis | exited |" in incident
    state = json.loads((fetched / "state.json").read_text())
    assert state["redis"]["is_available"] is False and state["postgres"]["status"] == "ok"
