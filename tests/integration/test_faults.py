"""The fault suite on lab2 (issue 9): each fault is injected once, every playbook that touches the broken part runs
under it in that window (at once: each only reads or fails before it changes anything), and each must end with a
clear failure or verdict that names the problem, with no traceback anywhere. The window's stack must be as the
fault left it (nothing else changed), and healthy again after the repair. docs/faults.md is the matrix these
cases prove; dockerd and sshd, which every host shares here, are in test_faults_fleet.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import typing as t
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from psycopg2 import sql

import lab
from harness.faults import Case, assert_outcome, restarted, run_batch, stack_state, wait_healthy
from harness.paths import lab_credentials
from harness.pg import connect, query
from harness.playbook import PlaybookRun, run_module

pytestmark = pytest.mark.lab_hosts("lab2")

HOST = "lab2"
ADDR = "127.0.2.2"
ROOT = lab.ROOT / "fault-tests"
GOOD = ROOT / "good"  # one verified backup of lab2's app, taken before any fault
DAMAGED = ROOT / "damaged"  # a copy of it with one byte of the dump flipped
FULL = ROOT / "full"  # a 256 KiB tmpfs for the backups
FULL_TOO = ROOT / "full-too"  # another for Redis's snapshots (each run fills its own: neither waits on the other)
SNAPSHOTS = FULL_TOO / "redis"  # redis_maintenance's snapshot_dest, made by the module
SCRATCH = "faults_scratch"  # the database whose dump is killed
IMAGE = "stackops-lab:faults"  # the lab's image under another name: a deploy that needs no build
WRONG = {"stackops_pg_password": "faults-wrong-pg-password", "stackops_redis_password": "faults-wrong-redis-password"}
NO_REPORT = {"health_check_report_dir": "", "routine_report_dir": ""}


def deploy(fault: str, **extra: t.Any) -> dict[str, t.Any]:
    """A deploy of IMAGE whose releases go to a folder of the fault's own."""
    return {
        "deploy_image": IMAGE,
        "deploy_release_dir": str(ROOT / f"releases-{fault}"),
        "deploy_drain_seconds": 0,
        **extra,
    }


def drill(backups: Path) -> dict[str, t.Any]:
    """A drill of lab2's backups in backups, restored beside production on lab2 itself (this module's only host)."""
    return {
        "restore_drill_target": HOST,
        "restore_drill_backup_dest": str(backups),
        "restore_drill_report_dir": str(ROOT / "drill"),
    }


# fault -> playbook -> how its run must end. Every playbook of playbooks/ that touches the broken part is here or,
# where another test already proves it at playbook level, named in docs/faults.md with that test.
CASES: dict[str, dict[str, Case]] = {
    "postgres_stopped": {
        "health_check": Case(
            "health_check",
            ("lab2 is critical", f"PostgreSQL at {ADDR}:5432 is not available", "Connection refused"),
            NO_REPORT,
        ),
        "backup": Case(
            "backup",
            ("The backup of app failed and nothing was kept", "Service postgres", "has no running container"),
            {"backup_dest": str(ROOT / "pg-stopped")},
        ),
        "db_maintenance": Case(
            "db_maintenance",
            ("Database maintenance of app on lab2 failed", "Connection refused", "the rest did not run"),
        ),
        "restore": Case(
            "restore",
            ("Connection refused", "The live database was not changed and nothing was stopped"),
            {"restore_confirm": True, "restore_src": str(GOOD)},
        ),
        "restore_drill": Case("restore_drill", ("The restore drill failed for lab2",), drill(GOOD)),
        "routine_daily": Case(
            "routine_daily", ("the daily routine found", f"PostgreSQL at {ADDR}:5432 is not available"), NO_REPORT
        ),
        "stack_facts": Case(
            "stack_facts", ("could not read postgres version", "Service postgres has no running container")
        ),
        "deploy": Case(
            "deploy",
            ("failed at the database backup into the release", "has no running container", "Nothing was changed"),
            deploy("postgres_stopped", deploy_migrate_command=["true"]),
        ),
        "maintenance_window": Case(
            "maintenance_window", ("so the site stays in maintenance", f"PostgreSQL at {ADDR}:5432 is not available")
        ),
    },
    "redis_stopped": {
        "redis_maintenance": Case(
            "redis_maintenance",
            ("Redis maintenance on lab2 failed", f"Cannot reach Redis at {ADDR}:6379", "Connection refused"),
            {"redis_maintenance_maxmemory": "256mb"},
        ),
        "routine_daily": Case(
            "routine_daily", ("the daily routine found", f"Redis at {ADDR}:6379 is not available"), NO_REPORT
        ),
        "stack_facts": Case("stack_facts", ("could not read redis version", 'service "redis" is not running')),
    },
    "disk_full": {
        "backup": Case(
            "backup",
            ("The backup of app failed and nothing was kept", "No space left on device", f"{FULL} is full"),
            {"backup_dest": str(FULL), "backup_stop_services": ["app"]},
        ),
        "redis_maintenance": Case(
            "redis_maintenance",
            ("Take a snapshot", "no space left on device", f"{SNAPSHOTS} is full"),
            {"redis_maintenance_snapshot": True, "redis_maintenance_snapshot_dest": str(SNAPSHOTS)},
        ),
    },
    "pg_dump_killed": {
        "backup": Case(
            "backup",
            (
                f"The backup of {SCRATCH} failed and nothing was kept",
                "pg_dump exited with 137 (killed by signal 9, SIGKILL)",
            ),
            {"backup_dest": str(ROOT / "killed"), "backup_db": SCRATCH, "backup_stop_services": ["app"]},
        ),
    },
    "corrupted_backup": {
        "restore": Case(
            "restore",
            ("app.dump has sha256", "The live database was not changed and nothing was stopped"),
            {"restore_confirm": True, "restore_src": str(DAMAGED)},
        ),
        "backup": Case(
            "backup",
            ("The newest backup", "is damaged", "app.dump has sha256"),
            {"backup_dest": str(DAMAGED)},
            tags="verify",
        ),
        "restore_drill": Case("restore_drill", ("The restore drill failed for lab2",), drill(DAMAGED)),
        "routine_weekly": Case(
            "routine_weekly",
            ("The newest backup", "is damaged"),
            {"stackops_backup_dest": str(DAMAGED), **NO_REPORT},
            tags="backup",
        ),
    },
    "nginx_invalid": {
        "health_check": Case(
            "health_check",
            ("lab2 is critical", "nginx -t failed", 'unknown directive "faults-broken"', "zz-faults-broken.conf"),
            NO_REPORT,
        ),
        "maintenance_window": Case(
            "maintenance_window",
            ("nginx -t rejected", "zz-faults-broken.conf", "The site never went into maintenance and serves as before"),
        ),
        "deploy": Case(
            "deploy", ("nginx -t rejected", "zz-faults-broken.conf", "left as it was"), deploy("nginx_invalid")
        ),
    },
    "wrong_passwords": {
        "health_check": Case(
            "health_check",
            ("lab2 is critical", 'password authentication failed for user "postgres"', "WRONGPASS"),
            {**WRONG, **NO_REPORT},
        ),
        "db_maintenance": Case(
            "db_maintenance", ("Database maintenance of app on lab2 failed", "password authentication failed"), WRONG
        ),
        "restore": Case(
            "restore",
            ("password authentication failed", "The live database was not changed and nothing was stopped"),
            {**WRONG, "restore_confirm": True, "restore_src": str(GOOD)},
        ),
        "redis_maintenance": Case(
            "redis_maintenance",
            (f"Redis at {ADDR}:6379 refused the login", "WRONGPASS", "Check login_user and login_password"),
            {**WRONG, "redis_maintenance_maxmemory": "256mb"},
        ),
        "routine_daily": Case("routine_daily", ("password authentication failed", "WRONGPASS"), {**WRONG, **NO_REPORT}),
    },
}


@dataclass
class Window:
    """One fault's window: the runs, the stack just after the fault went in and after the runs, and what the fault's
    own checks read before the repair."""

    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    before: dict[str, t.Any] = field(default_factory=dict)
    after: dict[str, t.Any] = field(default_factory=dict)
    seen: dict[str, t.Any] = field(default_factory=dict)


def entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


@contextlib.contextmanager
def service_stopped(host: lab.Host, service: str) -> Iterator[None]:
    """The repair is lab2's alone (`lab.py up` would also repair what a test on another host broke on purpose):
    Compose starts what is stopped, and the maintenance page a window left goes, as `lab.py up` does it."""
    lab.compose(host, "stop", service)
    try:
        yield
    finally:
        lab.compose(
            host, "up", "--detach", "--wait", "--wait-timeout", str(lab.UP_TIMEOUT), timeout=lab.UP_TIMEOUT + 60
        )
        (host.dir / "nginx" / "maintenance" / "on").unlink(missing_ok=True)


@contextlib.contextmanager
def tmpfs(path: Path) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def disk_full(host: lab.Host, seen: dict[str, t.Any]) -> Iterator[None]:
    """The destinations' filesystems full: a 256 KiB tmpfs each, the backup's and the snapshot's (a dump of lab2's
    app and its RDB file are both larger). On one shared, a run could find the disk filled by the other's copy in
    flight, before its own lock or work directory."""
    with tmpfs(FULL), tmpfs(FULL_TOO):
        try:
            yield
        finally:
            seen["left"] = entries(FULL)
            # Everything under the snapshot's dest, hidden work directories and what is in them too.
            seen["snapshots_left"] = sorted(str(p.relative_to(SNAPSHOTS)) for p in SNAPSHOTS.rglob("*"))
            seen["snapshots_dest_made"] = SNAPSHOTS.is_dir()


def pg_dump_pids() -> list[int]:
    """pg_dump of the scratch database itself (inside the postgres container), not the `docker compose exec` that
    runs it."""
    found = subprocess.run(["pgrep", "-f", f"pg_dump .*{SCRATCH}"], capture_output=True, text=True, check=False)
    pids = []
    for pid in found.stdout.split():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"pg_dump":
                pids.append(int(pid))
    return pids


@contextlib.contextmanager
def dump_killed(host: lab.Host, seen: dict[str, t.Any]) -> Iterator[None]:
    """A lock on the scratch table holds pg_dump at its start; a watcher kills it with SIGKILL (the OOM killer's
    signal) as soon as it runs."""
    conn = connect(host, SCRATCH)
    conn.autocommit = False
    conn.cursor().execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 300
        while not stop.wait(0.05) and time.monotonic() < deadline:
            for pid in pg_dump_pids():
                os.kill(pid, signal.SIGKILL)
                seen["killed"] = pid
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        conn.rollback()
        conn.close()
        seen["left"] = entries(ROOT / "killed")


@contextlib.contextmanager
def backup_damaged(host: lab.Host) -> Iterator[None]:
    shutil.rmtree(DAMAGED, ignore_errors=True)
    shutil.copytree(GOOD, DAMAGED)
    dump = max(DAMAGED.glob("app-*")) / "app.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    try:
        yield
    finally:
        shutil.rmtree(DAMAGED, ignore_errors=True)


@contextlib.contextmanager
def nginx_broken(host: lab.Host) -> Iterator[None]:
    """An edit left on disk that nginx refuses, as after a typo: the running nginx still serves the old config."""
    broken = host.dir / "nginx" / "conf.d" / "zz-faults-broken.conf"
    broken.write_text("faults-broken on;\n")
    try:
        yield
    finally:
        broken.unlink()


@contextlib.contextmanager
def nothing_injected(host: lab.Host) -> Iterator[None]:
    yield


FAULTS: dict[str, Callable[[lab.Host, dict[str, t.Any]], t.ContextManager[None]]] = {
    "postgres_stopped": lambda host, _seen: service_stopped(host, "postgres"),
    "redis_stopped": lambda host, _seen: service_stopped(host, "redis"),
    "disk_full": disk_full,
    "pg_dump_killed": dump_killed,
    "corrupted_backup": lambda host, _seen: backup_damaged(host),
    "nginx_invalid": lambda host, _seen: nginx_broken(host),
    "wrong_passwords": lambda host, _seen: nothing_injected(host),
}


def window(host: lab.Host, fault: str) -> Window:
    """Inject the fault, run its cases at once, read the stack, repair (always), and check lab2 is healthy."""
    found = Window()
    try:
        with FAULTS[fault](host, found.seen):
            found.before = stack_state(host)
            found.runs = run_batch(CASES[fault])
            found.after = stack_state(host)
            found.seen["maintenance_flag"] = (host.dir / "nginx" / "maintenance" / "on").exists()
    finally:
        wait_healthy(host)
    return found


@pytest.fixture(scope="module")
def lab2(hosts: dict) -> Iterator[lab.Host]:
    """lab2 with what the cases need: a verified backup of its app database, a scratch database for the killed
    dump, the lab image under a second name to deploy. All removed at the end."""
    host = hosts[HOST]
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    image = subprocess.check_output(["docker", "inspect", "--format", "{{.Config.Image}}", f"{host.project}-app-1"])
    subprocess.run(["docker", "tag", image.decode().strip(), IMAGE], check=True)
    query(host, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH)))
    query(host, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH)))
    query(host, SCRATCH, "CREATE TABLE held (id int); INSERT INTO held VALUES (1)")
    password = lab_credentials(HOST)["stackops_pg_password"]
    taken = run_module(
        "stackops.runbooks.pg_backup",
        {"db": "app", "dest": str(GOOD), "login_host": host.addr, "login_password": password},
        hosts=HOST,
    )
    taken.assert_ok()
    yield host
    query(host, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH)))
    subprocess.run(["docker", "rmi", IMAGE], capture_output=True, check=False)
    shutil.rmtree(ROOT, ignore_errors=True)


@pytest.fixture(scope="module")
def windows(lab2: lab.Host) -> Callable[[str], Window]:
    """Each fault's window, run once, the first time one of its tests asks."""
    done: dict[str, Window] = {}

    def get(fault: str) -> Window:
        if fault not in done:
            done[fault] = window(lab2, fault)
        return done[fault]

    return get


@pytest.mark.parametrize(
    ("fault", "playbook"), [(fault, playbook) for fault, cases in CASES.items() for playbook in cases]
)
def test_a_playbook_under_a_fault_ends_clearly(windows: Callable[[str], Window], fault: str, playbook: str) -> None:
    found = windows(fault)
    assert_outcome(CASES[fault][playbook], found.runs[playbook])


def drill_reason(run: PlaybookRun) -> str:
    (result,) = run.artifacts["restore_drill"]["results"]
    assert result["status"] == "fail"
    return str(result["reason"])


def test_postgres_stopped_changes_nothing_but_the_maintenance_page(windows: Callable[[str], Window]) -> None:
    found = windows("postgres_stopped")
    assert found.before["containers"]["postgres"][1] == "exited"
    # A run that starts a service also starts postgres (Compose starts what it depends on): none may.
    assert found.after["containers"] == found.before["containers"], "a run started postgres or changed a container"
    assert found.after["releases"] == found.before["releases"]
    # The window stayed in maintenance (the stack is critical), as documented; the repair took the page away.
    assert found.seen["maintenance_flag"] is True
    assert without_maintenance(found.after["files"]) == without_maintenance(found.before["files"])
    assert entries(ROOT / "pg-stopped") in ([], [".app.lock"]), "a failed backup left something"
    assert "Connection refused" in drill_reason(found.runs["restore_drill"])
    releases = ROOT / "releases-postgres_stopped"
    (release,) = entries(releases)
    assert '"status": "failed"' in (releases / release / "release.json").read_text(), (
        "the refused release is not marked"
    )


def without_maintenance(files: dict[str, str]) -> dict[str, str]:
    return {path: digest for path, digest in files.items() if "/nginx/maintenance/" not in path}


@pytest.mark.parametrize("fault", ["redis_stopped", "corrupted_backup", "nginx_invalid", "wrong_passwords"])
def test_a_fault_window_changes_nothing(windows: Callable[[str], Window], fault: str) -> None:
    found = windows(fault)
    changed = {
        f"{part} {key}": (found.before[part].get(key), found.after[part].get(key))
        for part in ("containers", "files")
        for key in found.before[part].keys() | found.after[part].keys()
        if found.before[part].get(key) != found.after[part].get(key)
    }
    assert not changed and found.after["releases"] == found.before["releases"], (
        f"the runs under {fault} changed lab2: {changed}"
    )
    assert found.seen["maintenance_flag"] is False


def test_a_damaged_backup_is_named_by_the_drill(windows: Callable[[str], Window]) -> None:
    assert "is damaged" in drill_reason(windows("corrupted_backup").runs["restore_drill"])


def test_an_invalid_nginx_config_stops_the_deploy_before_the_surge(
    windows: Callable[[str], Window], lab2: lab.Host
) -> None:
    windows("nginx_invalid")
    assert entries(ROOT / "releases-nginx_invalid") == [], "the refused deploy recorded a release"
    surge = lab.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={lab2.project}-surge"])
    assert surge.stdout.split() == [], "the refused deploy started its surge"


def test_wrong_passwords_are_never_printed(windows: Callable[[str], Window]) -> None:
    for run in windows("wrong_passwords").runs.values():
        assert not [p for p in WRONG.values() if p in run.stdout], f"{run.playbook} printed a password"


@pytest.mark.parametrize("fault", ["disk_full", "pg_dump_killed"])
def test_a_failed_backup_keeps_nothing_and_starts_the_app_again(windows: Callable[[str], Window], fault: str) -> None:
    found = windows(fault)
    if fault == "pg_dump_killed":
        assert found.seen.get("killed"), "the watcher never saw pg_dump"
    lock = ".app.lock" if fault == "disk_full" else f".{SCRATCH}.lock"
    assert lock in found.seen["left"] and not [n for n in found.seen["left"] if n.startswith(("app-", SCRATCH))], (
        f"a failed backup left {found.seen['left']}"
    )
    # The app was stopped for the dump and started again: the same container, running, started anew; nothing else
    # was stopped or started.
    before, after = found.before["containers"], found.after["containers"]
    assert restarted(before, after) == ["app"], f"restarted in the window: {restarted(before, after)}"
    assert {s: c[:2] for s, c in after.items()} == {s: c[:2] for s, c in before.items()}


def test_a_redis_snapshot_under_disk_full_leaves_nothing_in_its_dest(windows: Callable[[str], Window]) -> None:
    found = windows("disk_full")
    assert_outcome(CASES["disk_full"]["redis_maintenance"], found.runs["redis_maintenance"])
    # The module made the dest and began the copy in it (the failure above is the copy's): nothing of it may stay.
    assert found.seen["snapshots_dest_made"], f"{SNAPSHOTS} was never made: the copy did not start"
    assert found.seen["snapshots_left"] == [], f"the failed snapshot left {found.seen['snapshots_left']} in {SNAPSHOTS}"
