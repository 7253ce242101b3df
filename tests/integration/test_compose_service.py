"""compose_service, compose_exec and compose_logs on a real Docker Engine with Compose v2, over SSH to lab1."""

from __future__ import annotations

import pytest

from harness.playbook import assert_module_four_step, run_module
from harness.scratch import DEFAULT_SERVICES, ScratchProject

pytestmark = pytest.mark.lab_hosts("lab1")

SERVICE = "stackops.runbooks.compose_service"
CORE = ["backend", "db", "frontend", "worker"]


def module_ok(args: dict, **kwargs: object) -> dict:
    run = run_module(SERVICE, args, **kwargs)
    run.assert_ok()
    return run.result("lab1")


def module_fails(module: str, args: dict, **kwargs: object) -> dict:
    run = run_module(module, args, **kwargs)
    assert run.failed_hosts() == {"lab1"}, run.stdout[-3000:]
    result = run.result("lab1")
    # An expected failure: a message, no crash (MODULE FAILURE) and no traceback attached.
    assert "module_stderr" not in result and "Traceback" not in result["msg"], result
    assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)", result
    return result


def started_at(project: ScratchProject, service: str) -> str:
    return project.ps()[service][0]["State"]["StartedAt"]


@pytest.mark.matrix
def test_started_four_step_then_verified_with_docker(scratch: ScratchProject) -> None:
    check_first, real_first, *_rest = assert_module_four_step(SERVICE, scratch.args(state="started"))
    assert check_first.changed() == {"lab1": 1}
    result = real_first.result("lab1")
    assert sorted(result["services"]) == CORE
    assert all(s["state"] == "running" and s["health"] == "healthy" for s in result["services"].values())
    found = scratch.ps()
    assert sorted(found) == CORE
    assert all(c["State"]["Health"]["Status"] == "healthy" for cs in found.values() for c in cs)


def test_stopped_present_absent_four_steps(scratch: ScratchProject) -> None:
    module_ok(scratch.args())
    assert_module_four_step(SERVICE, scratch.args(state="stopped", services=["frontend", "worker"]))
    found = scratch.ps()
    assert [found[s][0]["State"]["Status"] for s in ("frontend", "worker")] == ["exited", "exited"]
    assert found["db"][0]["State"]["Status"] == "running"
    assert_module_four_step(SERVICE, scratch.args(state="absent", services=["worker"]))
    assert "worker" not in scratch.ps()
    _check, real, *_rest = assert_module_four_step(SERVICE, scratch.args(state="present", services=["worker"]))
    assert scratch.ps()["worker"][0]["State"]["Status"] == "created"
    assert real.result("lab1")["services"]["worker"]["state"] == "created"
    assert_module_four_step(SERVICE, scratch.args(state="absent"))
    assert scratch.ps() == {}


def test_config_change_recreates_where_plain_restart_keeps_stale_config(scratch: ScratchProject) -> None:
    module_ok(scratch.args())
    old_id = scratch.ps()["backend"][0]["Id"]
    scratch.write(env={"GREETING": "changed"})
    # The runbooks' `docker compose restart` keeps the old environment (measured on 2.26.1):
    scratch.compose("restart", "backend")
    assert "GREETING=hello" in scratch.ps()["backend"][0]["Config"]["Env"]
    check = run_module(SERVICE, scratch.args(), check=True)
    assert check.changed() == {"lab1": 1}
    result = module_ok(scratch.args())
    assert result["changed"] is True
    backend = scratch.ps()["backend"][0]
    assert backend["Id"] != old_id
    assert "GREETING=changed" in backend["Config"]["Env"]
    assert run_module(SERVICE, scratch.args(), check=True).changed() == {"lab1": 0}


def test_restarted_recreates_a_changed_service_and_always_reports_a_change(scratch: ScratchProject) -> None:
    module_ok(scratch.args())
    old = {s: c[0]["Id"] for s, c in scratch.ps().items()}
    scratch.write(env={"GREETING": "hello", "ROLE": "worker-api"})
    check = run_module(SERVICE, scratch.args(state="restarted", services=["backend"]), check=True)
    assert check.changed() == {"lab1": 1}
    assert check.result("lab1")["actions"] == ["up --detach --force-recreate backend"]
    result = module_ok(scratch.args(state="restarted", services=["backend"]))
    found = scratch.ps()
    assert found["backend"][0]["Id"] != old["backend"]
    assert "ROLE=worker-api" in found["backend"][0]["Config"]["Env"]
    assert found["db"][0]["Id"] == old["db"]
    assert result["changed"] is True
    # Unchanged config: a restart keeps the container and restarts it.
    before = started_at(scratch, "db")
    result = module_ok(scratch.args(state="restarted", services=["db"]))
    assert result["actions"] == ["restart db"]
    assert scratch.ps()["db"][0]["Id"] == old["db"]
    assert started_at(scratch, "db") > before


def test_dependency_ordered_restart_waits_for_each_service(scratch: ScratchProject) -> None:
    module_ok(scratch.args())
    result = module_ok(scratch.args(state="restarted", services=["db"], dependencies=True))
    assert result["actions"] == ["restart db", "restart backend", "restart frontend", "restart worker"]
    found = scratch.ps()
    times = {s: found[s][0]["State"]["StartedAt"] for s in CORE}
    assert times["db"] < times["backend"] < times["frontend"]
    assert times["db"] < times["worker"]
    # Each dependant started only after the one before it was healthy (health checks run every second).
    db_healthy = found["db"][0]["State"]["Health"]["Log"][0]["End"]
    assert db_healthy < times["backend"] or times["backend"] > times["db"]


def test_one_shot_service_exiting_non_zero_fails_the_task(scratch: ScratchProject) -> None:
    scratch.write(env={"GREETING": "hello", "MIGRATE_EXIT": "3"})
    result = module_fails(SERVICE, scratch.args(profiles=["oneshot"], services=["migrate"]))
    assert "exited with code 3" in result["msg"]
    assert any(c["name"].endswith("migrate-1") and c["exit_code"] == 3 for c in result["containers"])
    scratch.write(env={"GREETING": "hello", "MIGRATE_EXIT": "0"})
    result = module_ok(scratch.args(profiles=["oneshot"], services=["migrate"]))
    assert result["services"]["migrate"]["containers"][0]["exit_code"] == 0


def test_unhealthy_service_fails_with_state_and_logs(scratch: ScratchProject) -> None:
    result = module_fails(SERVICE, scratch.args(profiles=["broken"], services=["broken"], wait_timeout=6))
    assert "broken-1 is" in result["msg"] and "Not ready after 6 s" in result["msg"]
    assert any(c["service"] == "broken" for c in result["containers"])
    assert isinstance(result["logs"], list)


def test_scale_is_idempotent(scratch: ScratchProject) -> None:
    module_ok(scratch.args())
    assert_module_four_step(SERVICE, scratch.args(services=["worker"], scale={"worker": 2}))
    assert len(scratch.ps()["worker"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"project_src": "/nonexistent/app"}, "project_src /nonexistent/app is not a directory"),
        ({"services": ["nosuch"]}, "Service(s) nosuch not defined in project"),
        ({"scale": {"worker": -1}}, "scale['worker'] is -1"),
        ({"state": "absent", "remove_volumes": True}, "add confirm=true"),
        ({"files": ["missing.yaml"]}, "Compose file missing.yaml does not exist"),
        ({"wait_timeout": 0}, "wait_timeout must be at least 1 second"),
        ({"compose_cli": "/bin/false"}, "No usable Compose v2 found"),
    ],
)
def test_bad_input_is_refused_clearly_and_changes_nothing(scratch: ScratchProject, args: dict, message: str) -> None:
    result = module_fails(SERVICE, {**scratch.args(), **args})
    assert message in result["msg"]
    assert scratch.ps() == {}


def test_missing_compose_file_and_missing_image(scratch: ScratchProject) -> None:
    (scratch.path / "compose.yaml").rename(scratch.path / "elsewhere.yaml")
    assert "No compose file in" in module_fails(SERVICE, scratch.args())["msg"]
    scratch.write(services={"db": {**DEFAULT_SERVICES["db"], "image": "stackops-missing:1", "pull_policy": "never"}})
    result = module_fails(SERVICE, scratch.args())
    assert "stackops-missing:1" in result["msg"]
    assert scratch.ps() == {}


def test_a_standalone_compose_v2_binary_works(scratch: ScratchProject) -> None:
    # The plugin binary is a standalone v2 `docker-compose` when called by that name.
    result = module_ok(scratch.args(compose_cli="/usr/libexec/docker/cli-plugins/docker-compose", services=["db"]))
    assert result["compose_version"].startswith("2.") and result["changed"] is True
    assert scratch.ps()["db"][0]["State"]["Status"] == "running"


def test_compose_v1_is_refused_with_how_to_install_v2(scratch: ScratchProject) -> None:
    result = module_fails(SERVICE, scratch.args(compose_cli="/usr/bin/docker-compose"))
    assert "Compose v1 1.29.2" in result["msg"]
    assert "Install Compose v2" in result["msg"]


@pytest.mark.matrix
def test_exec_runs_argv_without_shell_and_declares_changes(scratch: ScratchProject) -> None:
    module_ok(scratch.args())
    args = scratch.args(
        service="db",
        argv=["sh", "-c", 'echo "$SECRET_TOKEN" > /tmp/token; echo done'],
        env={"SECRET_TOKEN": "s3cr3t-value"},
    )
    check = run_module("stackops.runbooks.compose_exec", args, check=True)
    check.assert_ok()
    assert check.changed() == {"lab1": 1} and "rc" not in check.result("lab1")
    assert "No such file" in scratch.compose("exec", "-T", "db", "cat", "/tmp/token").stderr
    run = run_module("stackops.runbooks.compose_exec", args)
    run.assert_ok()
    assert run.result("lab1")["stdout"] == "done\n"
    assert "s3cr3t-value" not in " ".join(run.result("lab1")["cmd"])
    assert scratch.compose("exec", "-T", "db", "cat", "/tmp/token").stdout == "s3cr3t-value\n"
    read = run_module(
        "stackops.runbooks.compose_exec",
        scratch.args(service="db", argv=["cat", "/tmp/token"], read_only=True),
        check=True,
    )
    read.assert_ok()
    assert read.changed() == {"lab1": 0} and read.result("lab1")["stdout"] == "s3cr3t-value\n"
    failed = module_fails("stackops.runbooks.compose_exec", scratch.args(service="db", argv=["sh", "-c", "exit 4"]))
    assert "exited with code 4" in failed["msg"]


@pytest.mark.matrix
def test_logs_filtered_and_written_to_a_private_file(scratch: ScratchProject) -> None:
    module_ok(scratch.args())
    for word in ("alpha ERROR one", "beta info two", "gamma error three"):
        scratch.compose("exec", "-T", "db", "sh", "-c", f"echo '{word}' > /proc/1/fd/1")
    dest = scratch.path / "incident" / "db.log"
    dest.parent.mkdir()
    args = scratch.args(services=["db"], pattern="error", ignore_case=True, tail="all", dest=str(dest))
    _check, real, *_rest = assert_module_four_step("stackops.runbooks.compose_logs", args)
    result = real.result("lab1")
    assert result["matched"] == 2 and result["read"] >= 3
    assert [line.split("|", 1)[1].strip() for line in result["lines"]] == ["alpha ERROR one", "gamma error three"]
    assert dest.read_text().count("\n") == 2
    assert dest.stat().st_mode & 0o777 == 0o600
    assert "pattern" in module_fails("stackops.runbooks.compose_logs", scratch.args(pattern="(unclosed"))["msg"]
