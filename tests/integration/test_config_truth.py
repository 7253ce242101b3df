"""Configuration truth and container resources on a real Docker Engine (cgroup v1 memory limits enforced), in one
throw-away compose project reached from lab2: compose_env, stack_health's resource findings through the
health_check role, and collect_diagnostics' bundle, each under its read-only or check-run contract, with docker
itself as the witness. Every secret of the project is made up for it and must appear in no output, even at -vvv."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from harness.playbook import assert_module_read_only, assert_read_only, check_run, run_module, run_playbook
from harness.scratch import LOOP, ScratchProject, new_project, service

pytestmark = pytest.mark.lab_hosts("lab2")
# Read from the declaration: the scheduler reads its literal without importing the module.
HOST_NAME = pytestmark.args[0]

ENV = "stackops.runbooks.compose_env"
OLD_PW, NEW_PW, JWT, REDIS_PW = "s3cr3t-old-pw", "s3cr3t-new-pw", "jwt-signing-key-0123", "r3dis-pw-xyz"
# A secret whose name does not say so: the runs name it in sensitive_names.
SMTP_LOGIN = "smtp-login-zz9"
SECRETS = [OLD_PW, NEW_PW, JWT, REDIS_PW, SMTP_LOGIN]
DOTENV = {
    "DB_PASSWORD": OLD_PW,
    "REDIS_PASSWORD": REDIS_PW,
    "JWT_SECRET": JWT,
    "LOG_LEVEL": "info",
    "SMTP_LOGIN": SMTP_LOGIN,
    "APP_IMAGE": "app:1.4.2",
}
APP_ENV = {
    "DATABASE_URL": "postgresql://app:${DB_PASSWORD}@db.internal:5432/app",
    "REDIS_URL": "redis://:${REDIS_PASSWORD}@redis.internal:6379/0",
    "JWT_SECRET": "${JWT_SECRET}",
    "LOG_LEVEL": "${LOG_LEVEL:-info}",
}
# Runs LOOP the second time: the first run ends in a crash (exit 1) or an OOM kill, which the restart policy follows.
ONCE = 'if [ -e /tmp/once ]; then exec sh -c "$$1"; fi; touch /tmp/once; {}'
ALLOCATE = "python3 -c 'b = bytearray({} * 2**20); import time; time.sleep(10**6)'"


def once(first: str) -> list[str]:
    return ["sh", "-c", ONCE.format(first), "once", LOOP[2]]


SERVICES = {
    # 64 MiB limit, little used; its environment changes in .env and compose.yaml after `up`.
    "app": service(environment=APP_ENV, mem_limit="64m"),
    # Holds 38 MiB (and Python's own 3) of a 48 MiB limit: above the 80 % warning.
    "hog": service(command=["sh", "-c", ALLOCATE.format(38)], mem_limit="48m", healthcheck={"disable": True}),
    # Killed by the kernel once (200 MiB in 32 MiB), restarted, then runs.
    "oomer": service(command=once(ALLOCATE.format(200)), mem_limit="32m", restart="on-failure"),
    # Crashes once, restarted by Docker, then runs: a restart seconds ago.
    "crasher": service(command=once("exit 1"), restart="on-failure"),
    # No limit at all.
    "plain": service(),
}


def inspect(project: ScratchProject) -> dict[str, dict]:
    return {s: c[0] for s, c in project.ps().items()}


@pytest.fixture(scope="module")
def project() -> Iterator[ScratchProject]:
    """One project for the module's tests, which only read it: `up` once (about 5 s), not per test."""
    scratch = new_project(lab.ROOT / "scratch", HOST_NAME)
    try:
        yield started(scratch)
    finally:
        scratch.remove()
        shutil.rmtree(scratch.path, ignore_errors=True)


def started(scratch: ScratchProject) -> ScratchProject:
    scratch.write(SERVICES, DOTENV)
    up = scratch.compose("up", "--detach")
    assert up.returncode == 0, up.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = inspect(scratch)
        if all(found[s]["RestartCount"] == 1 and found[s]["State"]["Running"] for s in ("oomer", "crasher")):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"oomer and crasher did not run again after one restart: {inspect(scratch)}")
    # The configuration moves on after `up`: a new password and log level in .env, a new variable in compose.yaml.
    scratch.write(
        {**SERVICES, "app": service(environment={**APP_ENV, "FEATURE_X": "on"}, mem_limit="64m")},
        {**DOTENV, "DB_PASSWORD": NEW_PW, "LOG_LEVEL": "debug"},
    )
    return scratch


def assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets in the output: {leaked}"


@pytest.mark.matrix
def test_compose_env_names_what_needs_recreating_without_showing_a_secret(project: ScratchProject) -> None:
    before = inspect(project)
    _check, real = assert_module_read_only(
        ENV, project.args(services=["app", "plain"], sensitive_names=["SMTP_LOGIN"]), hosts=HOST_NAME, verbosity=3
    )
    result = real.result(HOST_NAME)
    assert_no_secret(real.stdout)
    assert result["status"] == "warning"
    [finding] = result["findings"]
    assert finding["check"] == "config.recreate" and finding["value"] == ["DATABASE_URL", "FEATURE_X", "LOG_LEVEL"]
    assert f"service app ({project.name}-app-1)" in finding["message"]
    app = result["services"]["app"][f"{project.name}-app-1"]["variables"]
    assert app["DATABASE_URL"] == {
        "kind": "url",
        "state": "differs",
        "running": "postgresql://app:********@db.internal:5432/app",
        "compose": "postgresql://app:********@db.internal:5432/app",
    }
    assert app["LOG_LEVEL"] == {
        "kind": "public",
        "state": "differs",
        "running": "info",
        "compose": "debug",
        "env_file": "differs",
    }
    assert app["JWT_SECRET"] == {"kind": "secret", "state": "match", "running": "********", "env_file": "match"}
    assert app["REDIS_URL"]["state"] == "match" and app["FEATURE_X"]["state"] == "not_in_container"
    assert result["services"]["plain"][f"{project.name}-plain-1"] == {
        "recreate_needed": False,
        "variables": {"GREETING": {"kind": "public", "state": "match", "running": "hello"}},
    }
    assert result["env_file"]["DB_PASSWORD"] == {"kind": "secret", "value": "********", "in_containers": False}
    assert result["env_file"]["SMTP_LOGIN"]["value"] == "********"
    assert result["env_file"]["APP_IMAGE"] == {"kind": "public", "value": "app:1.4.2", "in_containers": False}
    # Docker agrees: the app still runs with the old password and log level, and nothing was recreated.
    after = inspect(project)
    assert f"DATABASE_URL=postgresql://app:{OLD_PW}@db.internal:5432/app" in after["app"]["Config"]["Env"]
    assert {s: c["Id"] for s, c in after.items()} == {s: c["Id"] for s, c in before.items()}


def test_health_check_judges_memory_oom_kills_restarts_and_stale_configuration(
    project: ScratchProject, tmp_path: Path
) -> None:
    extravars = {
        **project.role_vars("health_check"),
        "health_check_nginx_service": "",
        "health_check_report_dir": str(tmp_path),
        "health_check_fail_on": "never",
        "health_check_sensitive_names": ["SMTP_LOGIN"],
        # Up for less than ten minutes after a restart by Docker is a loop here: a busy machine may take two.
        "health_check_restart_loop_uptime_s": 600,
    }
    _check, real = assert_read_only("stackops.runbooks.health_check", limit=HOST_NAME, extravars=extravars)
    assert_no_secret(real.stdout)
    stack = real.result(HOST_NAME, "Read the services, nginx, the configuration, PostgreSQL, Redis and the endpoints")
    found: dict[tuple[str, str], str] = {}
    for f in stack["findings"]:
        found[f["check"], f["severity"]] = found.get((f["check"], f["severity"]), "") + f["message"] + "\n"
    containers = {c["name"].rsplit("-", 2)[1]: c for s in stack["services"].values() for c in s["containers"]}
    # Memory against each container's own limit, as docker stats counts it; no limit is said, not judged.
    hog = containers["hog"]["memory"]
    assert hog["limit"] == 48 * 2**20 and 80 <= hog["used_pct"] < 95, hog
    assert containers["plain"]["memory"] == {"used": None, "limit": None, "used_pct": None}
    assert (
        f"memory used by container {project.name}-hog-1 against its limit is {hog['used_pct']:g}%"
        in (found[("services.memory", "warning")])
    )
    # The kernel's OOM kill, seen by Docker, and the restart that followed it.
    oomer = inspect(project)["oomer"]
    assert oomer["State"]["OOMKilled"] is True and containers["oomer"]["oom_killed"] is True
    assert found["services.oom", "warning"].startswith(
        f"container {project.name}-oomer-1 was killed for want of memory (limit 32 MiB); it runs again"
    )
    assert (
        f"container {project.name}-crasher-1 is in a restart loop: restarted 1 time by Docker, up only"
        in (found[("services.restart_loop", "critical")])
    )
    assert ("config.recreate", "warning") in found
    report = json.loads((tmp_path / f"health-{HOST_NAME}.json").read_text())
    assert report["status"] == "critical"
    assert any("runs with another configuration than compose gives it now" in w for w in report["warning"])


def test_collect_diagnostics_bundles_docker_disk_use_networks_and_masked_configuration(
    project: ScratchProject, tmp_path: Path
) -> None:
    extravars = {
        **project.role_vars("collect_diagnostics"),
        "collect_diagnostics_dir": str(tmp_path / "host"),
        "collect_diagnostics_fetch_dir": str(tmp_path / "controller"),
        "collect_diagnostics_sensitive_names": ["SMTP_LOGIN"],
    }
    # Its check run, which writes nothing, is test_collect_diagnostics' (the new steps only read, in check mode too).
    run = run_playbook("stackops.runbooks.collect_diagnostics", limit=HOST_NAME, extravars=extravars)
    run.assert_ok()
    fetched = Path(run.artifacts["collect_diagnostics"][HOST_NAME]["controller_path"])
    everything = "".join(p.read_text() for p in fetched.iterdir())
    assert_no_secret(everything + run.stdout)
    config = json.loads((fetched / "config.json").read_text())
    assert config["services"]["app"][f"{project.name}-app-1"]["recreate_needed"] is True
    assert [f["value"] for f in config["findings"]] == [["DATABASE_URL", "FEATURE_X", "LOG_LEVEL"]]
    df = (fetched / "docker-df.txt").read_text()
    assert "Images space usage:" in df and "Local Volumes space usage:" in df and project.name in df
    networks = (fetched / "networks.txt").read_text()
    assert networks.startswith("NETWORK ID") and '"Name": "none"' in networks
    incident = (fetched / "incident.md").read_text()
    assert f"- {project.name}-app-1: recreate needed (DATABASE_URL, FEATURE_X, LOG_LEVEL)" in incident
    assert f"- {project.name}-plain-1: runs what compose gives it now" in incident


def test_compose_env_refuses_an_unknown_service_and_changes_nothing(project: ScratchProject) -> None:
    run = check_run(
        run_module, ENV, project.args(services=["api"]), hosts=HOST_NAME, refused="Service(s) api not defined"
    )
    result = run.result(HOST_NAME)
    assert "crasher, hog, oomer, plain" in result["msg"] and "fix `services`" in result["msg"], result["msg"]
    assert "Traceback" not in run.stdout and "module_stderr" not in result
