"""An app admin command on lab2 (role and playbook admin_command): the plan in check mode without confirmation,
the real run refused without it, a confirmed command run in the app after a verified backup with its output kept
and its secrets redacted (also at -vvv), a failing command that fails the run naming the backup to restore, and a
command declared read-only run in check mode with no backup and nothing written."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from harness.paths import lab_credentials, lab_hosts
from harness.playbook import PlaybookRun, check_run, run_playbook
from harness.snapshot import diff, snapshot

pytestmark = pytest.mark.lab_hosts("lab2")
# Read from the declaration: the scheduler reads its literal without importing the module.
HOST_NAME = pytestmark.args[0]

ADMIN = "stackops.runbooks.admin_command"
HOST = lab_hosts()[HOST_NAME]
# Named for the host: its snapshots read logs/<host>-* and backups/<host>-*.
LOGS = lab.ROOT / "logs" / f"{HOST_NAME}-admin-test"
BACKUPS = lab.ROOT / "backups" / f"{HOST_NAME}-admin-test"
# The app's container has the database and Redis passwords in its environment: a migration that prints its
# connection settings must not put them in the run's output or in the kept file.
HARMLESS = [
    "sh",
    "-c",
    'echo "migrating on $LAB_ADDR"; echo "DATABASE_URL=postgresql://app:$APP_DB_PASSWORD@$LAB_ADDR:5432/app";'
    ' echo "redis password $REDIS_PASSWORD" >&2; echo done',
]
FAILING = ["sh", "-c", "echo partial work; exit 3"]
BASE = {"admin_command_log_dir": str(LOGS), "stackops_backup_dest": str(BACKUPS)}


@pytest.fixture(scope="module", autouse=True)
def scratch() -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(LOGS, ignore_errors=True)
        shutil.rmtree(BACKUPS, ignore_errors=True)


def secrets() -> list[str]:
    return [v for k, v in lab_credentials(HOST_NAME).items() if k.endswith("password")]


def run(argv: list[str], **extravars: object) -> PlaybookRun:
    return run_playbook(
        ADMIN, limit=HOST_NAME, extravars={**BASE, "admin_command_argv": argv, **extravars}, verbosity=3
    )


def test_plan_without_confirmation_and_refusal_of_the_real_run() -> None:
    planned = check_run(run_playbook, ADMIN, limit=HOST_NAME, extravars={**BASE, "admin_command_argv": HARMLESS})
    result = planned.artifacts["admin_command"][HOST_NAME]
    assert result["status"] == "planned" and result["backup"].startswith(str(BACKUPS)), result
    before = snapshot(HOST_NAME)
    refused = run(HARMLESS)
    assert refused.status == "failed" and "confirm with -e admin_command_confirm=true" in refused.stdout
    assert not any(refused.changed().values()) and diff(before, snapshot(HOST_NAME)) == []
    assert not BACKUPS.exists()


def test_confirmed_command_runs_after_a_verified_backup_with_secrets_redacted() -> None:
    done = run(HARMLESS, admin_command_confirm=True)
    done.assert_ok()
    result = done.artifacts["admin_command"][HOST_NAME]
    assert (result["status"], result["rc"]) == ("ok", 0), result
    backup = Path(result["backup"])
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["database"] == "app" and manifest["tables"], manifest
    log = Path(result["log"])
    assert log.parent == LOGS and stat.S_IMODE(LOGS.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    kept = log.read_text()
    assert f"migrating on {HOST.addr}\n" in kept and "done\n--- stderr ---\nredis password" in kept, kept
    assert f"postgresql://app:********@{HOST.addr}" in kept and "redis password [REDACTED]" in kept, kept
    for secret in secrets():
        assert secret not in kept and secret not in done.stdout, "a password reached the output"


def test_failing_command_fails_naming_the_backup_to_restore() -> None:
    failed = run(FAILING, admin_command_confirm=True)
    assert failed.status == "failed", failed.stdout[-2000:]
    result = failed.artifacts["admin_command"][HOST_NAME]
    assert (result["status"], result["rc"]) == ("failed", 3), result
    assert "exited with code 3 (expected 0)" in failed.stdout
    assert f"restore_src={result['backup']}" in failed.stdout and Path(result["backup"], "manifest.json").exists()
    assert "partial work" in Path(result["log"]).read_text()


def test_read_only_command_runs_in_check_mode_with_no_backup() -> None:
    extravars = {**BASE, "admin_command_argv": ["sh", "-c", "echo current head"], "admin_command_read_only": True}
    checked = check_run(run_playbook, ADMIN, limit=HOST_NAME, extravars=extravars)
    result = checked.artifacts["admin_command"][HOST_NAME]
    assert (result["status"], result["rc"], result["backup"]) == ("ok", 0, None), result
    assert "current head" in checked.stdout
