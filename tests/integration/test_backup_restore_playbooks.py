"""The backup and restore runbooks on lab2: writers stopped and always started again, copies verified on the
controller, the age check alone; a restore that swaps, one refused before anything stops, and one reverted when the
stack is critical on the restored data."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from harness.paths import lab_credentials
from harness.pg import query
from harness.playbook import PlaybookRun, assert_read_only, check_run, run_module, run_playbook

pytestmark = pytest.mark.lab_hosts("lab2", "drill1")

NOTE = "written after the backup"


def started_at(host: lab.Host, service: str) -> str:
    return subprocess.check_output(
        ["docker", "inspect", "--format", "{{.State.StartedAt}} {{.State.Running}}", f"{host.project}-{service}-1"],
        text=True,
    ).strip()


def copies(host: lab.Host) -> list[str]:
    return [n for (n,) in query(host, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'app\\_%'")]


@pytest.fixture
def lab2(hosts: dict) -> Iterator[lab.Host]:
    host = hosts["lab2"]
    yield host
    run_module(
        "stackops.runbooks.pg_restore",
        {
            "operation": "cleanup",
            "db": "app",
            "keep_previous": 0,
            "login_host": host.addr,
            "login_password": lab_credentials("lab2")["stackops_pg_password"],
        },
        hosts="lab2",
    ).assert_ok()
    query(host, "app", "DROP TABLE IF EXISTS public.restore_marker")
    query(host, "app", "DELETE FROM app.customers WHERE id >= 900000")


@pytest.mark.matrix
def test_backup_runbook_stops_writers_copies_and_verifies(lab2: lab.Host, tmp_path: Path) -> None:
    dest = lab.ROOT / "backups" / "lab2"
    before = sorted(p.name for p in dest.iterdir()) if dest.exists() else []
    # The lab has no backups until the first run: check mode must not create them either.
    app_before = started_at(lab2, "app")
    store = lab.ROOT / "backup-copies"
    shutil.rmtree(store, ignore_errors=True)
    extravars = {
        "backup_stop_services": ["app"],
        "backup_copy_dir": str(tmp_path / "store"),
        "backup_copy_host": "drill1",
        "backup_copy_host_dir": str(store),
        "backup_retention_count": 1,
    }

    # Every run takes a new backup: no four-step, but a check_run (lab2's snapshot unchanged by it).
    check_run(run_playbook, "stackops.runbooks.backup", limit="lab2", extravars=extravars)
    assert (sorted(p.name for p in dest.iterdir()) if dest.exists() else []) == before, "check mode wrote a backup"
    assert started_at(lab2, "app") == app_before, "check mode stopped the app"

    run = run_playbook("stackops.runbooks.backup", limit="lab2", extravars=extravars, verbosity=3)
    run.assert_ok()
    assert lab_credentials("lab2")["stackops_pg_password"] not in run.stdout, "the password is in the -vvv output"
    summary = run.artifacts["backup"]["lab2"]
    path = Path(summary["path"])
    assert path.parent == dest and path.is_dir() and summary["stale"] is False and summary["rows"] > 390000
    assert started_at(lab2, "app") != app_before and started_at(lab2, "app").endswith("true"), "app not restarted"
    copy = Path(summary["copied_to"])
    assert copy == tmp_path / "store" / "lab2" / path.name
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in path.iterdir())
    assert {p.stat().st_mode & 0o777 for p in copy.iterdir()} == {0o600} and copy.stat().st_mode & 0o777 == 0o700
    assert json.loads((copy / "manifest.json").read_text())["sha256"] == summary["sha256"]
    # On to drill1 (the same machine in the lab, another SSH host): checked there, private.
    remote = store / "lab2" / path.name
    assert summary["copied_to_host"] == f"drill1:{remote}"
    assert sorted(p.name for p in remote.iterdir()) == sorted(p.name for p in path.iterdir())
    assert {p.stat().st_mode & 0o777 for p in remote.iterdir()} == {0o600} and remote.stat().st_mode & 0o777 == 0o700
    shutil.rmtree(store)

    verify = run_playbook(
        "stackops.runbooks.backup", limit="lab2", tags="verify", extravars={"backup_max_age_hours": 1}
    )
    verify.assert_ok()
    assert not any(verify.changed().values())
    assert verify.artifacts["backup"]["lab2"]["newest"] == path.name
    assert summary["backups"] == 1 and sorted(p.name for p in dest.iterdir() if p.name.startswith("app-")) == [
        path.name
    ], "retention_count=1 keeps only the new backup"


def test_a_failed_backup_still_starts_the_writers(lab2: lab.Host) -> None:
    run = run_playbook(
        "stackops.runbooks.backup",
        limit="lab2",
        extravars={"backup_stop_services": ["app"], "stackops_pg_password": "wrong"},
    )
    assert "lab2" in run.failed_hosts()
    assert (
        "password authentication failed"
        in run.result("lab2", "Take the backup (written, synced, read back, checksummed, then renamed)")["msg"]
    )
    assert started_at(lab2, "app").endswith("true"), "the app was left stopped"
    assert "wrong" not in run.stdout.replace("stackops_pg_password", "")


def test_restore_runbook_swaps_in_the_backup_and_keeps_the_previous(lab2: lab.Host) -> None:
    taken = run_playbook("stackops.runbooks.backup", limit="lab2")
    taken.assert_ok()
    query(lab2, "app", "CREATE TABLE public.restore_marker (note text)")
    query(lab2, "app", "INSERT INTO public.restore_marker VALUES (%s)", (NOTE,))

    refused = run_playbook("stackops.runbooks.restore", limit="lab2")
    assert "lab2" in refused.failed_hosts() and "restore_confirm=true" in refused.stdout

    check_run(run_playbook, "stackops.runbooks.restore", limit="lab2", extravars={"restore_confirm": True})
    run = run_playbook("stackops.runbooks.restore", limit="lab2", extravars={"restore_confirm": True})
    run.assert_ok()
    summary = run.artifacts["restore"]["lab2"]
    assert summary["src"] == taken.artifacts["backup"]["lab2"]["path"] and summary["health"] == "ok"
    assert summary["previous_db"].startswith("app_pre_restore_") and summary["rows"] > 390000
    assert query(lab2, "app", "SELECT to_regclass('public.restore_marker')") == [(None,)], (
        "app is not the backup's data"
    )
    assert query(lab2, summary["previous_db"], "SELECT note FROM public.restore_marker") == [(NOTE,)]
    assert started_at(lab2, "app").endswith("true")


def test_a_damaged_backup_is_refused_before_the_app_stops(lab2: lab.Host) -> None:
    taken = run_playbook("stackops.runbooks.backup", limit="lab2")
    taken.assert_ok()
    dump = Path(taken.artifacts["backup"]["lab2"]["path"]) / "app.dump"
    data = bytearray(dump.read_bytes())
    data[1000] ^= 0x01
    dump.write_bytes(bytes(data))
    app_before = started_at(lab2, "app")
    before = copies(lab2)
    run = run_playbook("stackops.runbooks.restore", limit="lab2", extravars={"restore_confirm": True})
    assert "lab2" in run.failed_hosts()
    assert "app.dump has sha256" in run.stdout and "The live database was not changed" in run.stdout
    assert started_at(lab2, "app") == app_before, "the app was stopped for a backup that could not be used"
    assert copies(lab2) == before
    shutil.rmtree(dump.parent)


def test_a_stack_critical_on_the_restored_data_gets_the_previous_database_back(lab2: lab.Host) -> None:
    taken = run_playbook("stackops.runbooks.backup", limit="lab2")
    taken.assert_ok()
    # A customer the health check requires, created after the backup: the restored data lacks it.
    query(
        lab2,
        "app",
        "INSERT INTO app.customers (id, email, name, country) VALUES (900001, 'late@example.test', 'Late', 'NZ')",
    )
    endpoints = [
        {"name": "liveness", "url": f"http://{lab2.addr}/health"},
        {"name": "late-customer", "url": f"http://{lab2.addr}/api/customers/900001", "status": [200]},
    ]
    run = run_playbook(
        "stackops.runbooks.restore",
        limit="lab2",
        extravars={"restore_confirm": True, "health_check_endpoints": endpoints},
    )
    assert "lab2" in run.failed_hosts()
    assert "The restored database was set aside as app_reverted_" in run.stdout, run.stdout[-3000:]
    assert query(lab2, "app", "SELECT name FROM app.customers WHERE id = 900001") == [("Late",)]
    assert started_at(lab2, "app").endswith("true")
    reverted = [n for n in copies(lab2) if n.startswith("app_reverted_")]
    assert len(reverted) == 1 and query(lab2, reverted[0], "SELECT count(*) FROM app.customers WHERE id = 900001") == [
        (0,)
    ]


def test_the_backup_check_alone_is_read_only(lab2: lab.Host) -> None:
    """The `verify` tag changes nothing: check mode and a real run report no change, and lab2's snapshot after each
    is the one before (the read-only contract; with `tags` it is not the backup playbook's contract)."""
    assert_read_only("stackops.runbooks.backup", limit="lab2", tags="verify")


ASYNC = {"backup_async": 600, "backup_poll": 1, "restore_async": 600, "restore_poll": 1}
# What Ansible adds to a polled async task's result (async_status's bookkeeping), besides the module's own.
ASYNC_KEYS = {
    "ansible_job_id",
    "started",
    "finished",
    "results_file",
    "stdout",
    "stderr",
    "stdout_lines",
    "stderr_lines",
}
TAKE = "Take the backup (written, synced, read back, checksummed, then renamed)"
RESTORE = "Restore beside the live database, check it, and swap"


def said(run: PlaybookRun) -> str:
    return " ".join(run.stdout.split())  # the YAML callback folds long messages


def backup_line(summary: dict) -> str:
    """The line a plain backup run ends with, from the run's own result (size as filesizeformat's binary units)."""
    size, unit = float(summary["size"]), "Bytes"
    for name in ("KiB", "MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, name
    human = f"{size:.1f} {unit}"
    return (
        f"Backup of app: {summary['path']}, {human} ({summary['size']} bytes), {summary['duration_s']} s, verified yes"
    )


def test_backup_and_restore_run_as_polled_async_tasks_with_the_same_result(lab2: lab.Host) -> None:
    """With the async options the dump and the restore are polled async tasks; the results the roles use, the
    summary lines of a plain run and check mode are those of a run without them."""
    plain = run_playbook("stackops.runbooks.backup", limit="lab2")
    plain.assert_ok()
    check_run(run_playbook, "stackops.runbooks.backup", limit="lab2", extravars=ASYNC)

    run = run_playbook("stackops.runbooks.backup", limit="lab2", extravars=ASYNC)
    run.assert_ok()
    taken, before = run.result("lab2", TAKE), plain.result("lab2", TAKE)
    assert taken["ansible_job_id"] and taken["finished"] and taken["changed"]
    assert set(taken) - ASYNC_KEYS == set(before) - {"ansible_job_id"}, set(taken) ^ set(before)
    summary = run.artifacts["backup"]["lab2"]
    assert set(summary) == set(plain.artifacts["backup"]["lab2"])
    assert (
        summary["path"] == taken["path"]
        and summary["size"] == taken["size"]
        and summary["newest"] == Path(summary["path"]).name
    )
    assert backup_line(summary) in said(run), run.stdout[-3000:]
    assert backup_line(plain.artifacts["backup"]["lab2"]) in said(plain)
    assert lab_credentials("lab2")["stackops_pg_password"] not in run.stdout

    query(lab2, "app", "CREATE TABLE public.restore_marker (note text)")
    check_run(run_playbook, "stackops.runbooks.restore", limit="lab2", extravars={"restore_confirm": True, **ASYNC})
    restored = run_playbook("stackops.runbooks.restore", limit="lab2", extravars={"restore_confirm": True, **ASYNC})
    restored.assert_ok()
    assert restored.result("lab2", RESTORE)["ansible_job_id"]
    result = restored.artifacts["restore"]["lab2"]
    assert result["src"] == summary["path"] and result["health"] == "ok" and result["rows"] > 390000
    assert query(lab2, "app", "SELECT to_regclass('public.restore_marker')") == [(None,)]
    assert (
        f"Restore of app from {summary['path']}: {result['elapsed']['total']} s, restored ({result['rows']} rows), "
        f"stack health ok, previous database kept as {result['previous_db']}"
    ) in said(restored), restored.stdout[-3000:]


def test_an_async_limit_too_small_kills_the_work_and_fails_clearly(lab2: lab.Host) -> None:
    """A dump killed at backup_async leaves no backup that counts (at most a .partial, removed by the next run); a
    restore killed at restore_async leaves the live database as it was, and the next restore drops its scratch."""
    dest = lab.ROOT / "backups" / "lab2"
    good = run_playbook("stackops.runbooks.backup", limit="lab2")
    good.assert_ok()
    newest = Path(good.artifacts["backup"]["lab2"]["path"]).name

    killed = run_playbook("stackops.runbooks.backup", limit="lab2", extravars={"backup_async": 1, "backup_poll": 1})
    assert "lab2" in killed.failed_hosts(), killed.stdout[-3000:]
    assert "async task did not complete within the requested time" in said(killed)
    assert "the backup was killed at backup_async (1 s)" in said(killed) and ".partial directory never counts" in said(
        killed
    )
    left = sorted(p.name for p in dest.iterdir() if p.name.startswith("app-") and p.name > newest)
    assert all(name.endswith(".partial") for name in left), f"a killed dump left {left}"
    checked = run_module(
        "stackops.runbooks.pg_backup", {"db": "app", "dest": str(dest), "operation": "check"}, hosts="lab2"
    )
    assert checked.result("lab2")["newest"]["name"] == newest, "a killed dump counts as the newest backup"
    after = run_playbook("stackops.runbooks.backup", limit="lab2")
    after.assert_ok()
    assert sorted(Path(p).name for p in after.result("lab2", TAKE)["removed_partial"]) == left

    query(lab2, "app", "CREATE TABLE public.restore_marker (note text)")
    query(lab2, "app", "INSERT INTO public.restore_marker VALUES (%s)", (NOTE,))
    before = copies(lab2)
    cut = run_playbook(
        "stackops.runbooks.restore",
        limit="lab2",
        extravars={"restore_confirm": True, "restore_async": 1, "restore_poll": 1},
    )
    assert "lab2" in cut.failed_hosts(), cut.stdout[-3000:]
    assert "restore_async (1 s) was too short and the run was killed; raise it" in said(cut), cut.stdout[-3000:]
    assert "The live database was not changed" in said(cut)  # killed at its verification or at its restore
    assert query(lab2, "app", "SELECT note FROM public.restore_marker") == [(NOTE,)], "the live database was harmed"
    assert started_at(lab2, "app").endswith("true")
    scratch = [n for n in copies(lab2) if n not in before]
    assert all(n.startswith("app_restore_") for n in scratch), scratch
    # The next restore drops what the killed one left (its in-container pg_restore may still have been loading).
    restored = run_playbook("stackops.runbooks.restore", limit="lab2", extravars={"restore_confirm": True})
    restored.assert_ok()
    assert set(scratch) <= set(restored.result("lab2", RESTORE)["dropped"])
    assert not [n for n in copies(lab2) if n.startswith("app_restore_")]
