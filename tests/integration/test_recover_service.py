"""The service-recovery runbook on the lab: leaves a healthy stack alone, brings back a stopped or unready
service with its dependants in order, keeps an incident bundle when recovery fails, and guards the emergency
forms behind a confirmation."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

import lab
from harness.playbook import assert_four_step, check_run, run_playbook
from harness.scratch import ScratchProject

# Every test on lab2 (scratch projects have no network, so any host reaches them): the module is one lane's.
pytestmark = pytest.mark.lab_hosts("lab2")

PLAYBOOK = "stackops.runbooks.recover_service"


def ready(host: lab.Host) -> int:
    proc = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{host.addr}/health/ready"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(proc.stdout or 0)


def container_ids(host: lab.Host) -> dict[str, str]:
    out = lab.compose(host, "ps", "--all", "--format", "{{.Service}} {{.ID}} {{.State}}").stdout
    return {line.split()[0]: f"{line.split()[1]} {line.split()[2]}" for line in out.splitlines()}


def test_a_healthy_stack_is_left_alone(hosts: dict) -> None:
    before = container_ids(hosts["lab2"])
    runs = assert_four_step(PLAYBOOK, limit="lab2")
    assert all(n == 0 for run in runs for n in run.changed().values())
    assert runs[1].artifacts["recover_service"]["lab2"]["acted"] is False
    assert container_ids(hosts["lab2"]) == before


@pytest.mark.matrix
def test_a_stopped_app_is_brought_back_with_its_dependants(hosts: dict) -> None:
    host = hosts["lab2"]
    lab.compose(host, "stop", "app")
    assert ready(host) == 502
    check, real, *_rest = assert_four_step(PLAYBOOK, limit="lab2", extravars={"recover_service_services": ["app"]})
    assert check.changed() == {"lab2": 1}
    summary = real.artifacts["recover_service"]["lab2"]
    assert summary["acted"] is True
    assert any("stackops-lab2-app-1 is exited" in p for p in summary["problems_before"])
    assert summary["actions"] == ["start app", "restart nginx"]
    assert ready(host) == 200


def test_an_unready_app_is_recovered_by_restarting_redis_then_app_then_nginx(hosts: dict) -> None:
    host = hosts["lab2"]
    lab.compose(host, "stop", "redis")
    assert ready(host) == 503
    run = run_playbook(PLAYBOOK, limit="lab2", extravars={"recover_service_services": ["redis"]})
    run.assert_ok()
    assert run.artifacts["recover_service"]["lab2"]["actions"] == ["start redis", "restart app", "restart nginx"]
    assert ready(host) == 200


def test_a_hung_app_is_restarted(hosts: dict) -> None:
    host = hosts["lab2"]
    pid = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Pid}}", "stackops-lab2-app-1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    os.kill(int(pid), signal.SIGSTOP)  # the process is there, the container "running", but nothing answers
    try:
        run = run_playbook(
            PLAYBOOK, limit="lab2", extravars={"recover_service_services": ["app"], "recover_service_wait_timeout": 60}
        )
    finally:
        with contextlib.suppress(ProcessLookupError):  # the restart replaced the process, as it should
            os.kill(int(pid), signal.SIGCONT)
    run.assert_ok()
    summary = run.artifacts["recover_service"]["lab2"]
    assert summary["problems_before"] == [f"http://{host.addr}/health/ready answered -1"]
    assert summary["actions"] == ["restart app", "restart nginx"]
    assert ready(host) == 200


def test_failed_recovery_keeps_an_incident_bundle(scratch: ScratchProject, tmp_path: Path) -> None:
    incidents = tmp_path / "incidents"
    run = run_playbook(
        PLAYBOOK,
        limit="lab2",
        extravars={
            **scratch.role_vars("recover_service"),
            "recover_service_profiles": ["broken"],
            "recover_service_services": ["broken"],
            "recover_service_mode": "restart",
            "recover_service_health_url": "",
            "recover_service_wait_timeout": 5,
            "recover_service_incident_dir": str(incidents),
        },
    )
    assert run.failed_hosts() == {"lab2"}
    message = run.result("lab2", "Stop with a summary")["msg"]
    assert "did not recover" in message and "broken-1 is" in message and str(incidents) in message
    (bundle,) = incidents.iterdir()
    assert bundle.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in bundle.iterdir()) == ["compose.log", "resources.jsonl", "services.json"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in bundle.iterdir())
    state = json.loads((bundle / "services.json").read_text())
    assert state["services"]["broken"]["ready"] is False
    assert json.loads((bundle / "resources.jsonl").read_text().splitlines()[0])["Name"].endswith("broken-1")


def test_emergency_forms_need_confirmation(hosts: dict) -> None:
    before = container_ids(hosts["lab2"])
    for mode in ("full_restart", "stop_all"):
        run = run_playbook(PLAYBOOK, limit="lab2", extravars={"recover_service_mode": mode})
        assert run.failed_hosts() == {"lab2"}
        assert (
            "set recover_service_confirm=true"
            in run.result("lab2", "Refuse to take the whole stack down without confirmation")["msg"]
        )
    assert container_ids(hosts["lab2"]) == before


def test_a_docker_start_command_that_is_no_list_is_refused() -> None:
    """The command that starts dockerd is an argument list (never a shell string): a mapping is refused by the
    role's argument spec, naming the option, before anything runs."""
    check_run(
        run_playbook,
        PLAYBOOK,
        limit="lab2",
        extravars={"recover_service_docker_start_command": {"cmd": "dockerd &"}},
        refused="recover_service_docker_start_command",
    )


def test_stop_all_with_confirmation(scratch: ScratchProject) -> None:
    scratch.compose("up", "-d", "--wait")
    run = run_playbook(
        PLAYBOOK,
        limit="lab2",
        extravars={
            **scratch.role_vars("recover_service"),
            "recover_service_mode": "stop_all",
            "recover_service_confirm": True,
            "recover_service_health_url": "",
        },
    )
    run.assert_ok()
    assert {c[0]["State"]["Status"] for c in scratch.ps().values()} == {"exited"}, run.stdout[-3000:]


def test_full_restart_recreates_containers_and_keeps_data(hosts: dict) -> None:
    host = hosts["lab2"]
    count = "SELECT count(*) FROM app.orders"
    psql = ["exec", "-T", "-u", "postgres", "postgres", "psql", "-XAtd", "app", "-c", count]
    rows = lab.compose(host, *psql).stdout
    before = container_ids(host)
    run = run_playbook(
        PLAYBOOK, limit="lab2", extravars={"recover_service_mode": "full_restart", "recover_service_confirm": True}
    )
    run.assert_ok()
    after = container_ids(host)
    assert all(before[s].split()[0] != after[s].split()[0] for s in before)
    assert (
        lab.compose(host, "exec", "-T", "-u", "postgres", "postgres", "psql", "-XAtd", "app", "-c", count).stdout
        == rows
    )
    assert ready(host) == 200
