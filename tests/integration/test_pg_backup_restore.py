"""pg_backup and pg_restore on the lab's real PostgreSQL 15: every promise of issue 6 tried for real. A backup that
was damaged, truncated, killed, out of disk or refused never counts; a restore that fails in any way leaves the
database as it was, proven by a marker row."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg2 import sql

import lab
from ansible_collections.stackops.runbooks.plugins.module_utils._backup import seal, sha256_file
from harness.paths import lab_credentials
from harness.pg import connect as pg
from harness.pg import query
from harness.playbook import PlaybookRun, run_module

pytestmark = pytest.mark.lab_hosts("lab1", "drill1")

BACKUP = "stackops.runbooks.pg_backup"
RESTORE = "stackops.runbooks.pg_restore"
ROOT = lab.ROOT / "backup-tests"
MARKER = "live data, written after the backup"


def login(host: lab.Host, **extra: object) -> dict:
    return {"login_host": host.addr, "login_password": lab_credentials(host.name)["stackops_pg_password"], **extra}


def outcome(run: PlaybookRun, host: str) -> dict:
    """The module's result with `failed` as the run saw it."""
    return {**run.result(host), "failed": host in run.failed_hosts()}


def backup(host: lab.Host, db: str, dest: Path, check: bool = False, **extra: object) -> dict:
    return outcome(
        run_module(BACKUP, login(host, db=db, dest=str(dest), **extra), hosts=host.name, check=check), host.name
    )


def restore(host: lab.Host, db: str, src: Path | str | None = None, check: bool = False, **extra: object) -> dict:
    args = login(host, db=db, **({"src": str(src)} if src else {}), **extra)
    return outcome(run_module(RESTORE, args, hosts=host.name, check=check), host.name)


def databases(host: lab.Host) -> set[str]:
    return {name for (name,) in query(host, "postgres", "SELECT datname FROM pg_database")}


def drop_databases(host: lab.Host, *names: str) -> None:
    for name in names:
        query(host, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def tables(host: lab.Host, db: str) -> dict[str, tuple[int, str]]:
    """Every user table's row count and a digest of its rows in a fixed order: equal means the same data."""
    names = query(
        host,
        db,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    found = {}
    for schema, name in names:
        digest = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {}.{} t"
        ).format(sql.Identifier(schema), sql.Identifier(name))
        ((count, md5),) = query(host, db, digest)
        found[f"{schema}.{name}"] = (count, md5)
    return found


def marker(host: lab.Host, db: str) -> list[tuple]:
    return query(host, db, "SELECT note FROM marker")


def set_marker(host: lab.Host, db: str) -> None:
    query(host, db, "CREATE TABLE IF NOT EXISTS marker (note text)")
    query(host, db, "INSERT INTO marker VALUES (%s)", (MARKER,))


def scratch_left(host: lab.Host, db: str) -> set[str]:
    return {n for n in databases(host) if n.startswith(f"{db}_restore_")}


def wait_for(what: str, probe: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pids_of(pattern: str) -> list[int]:
    proc = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(pid) for pid in proc.stdout.split()]


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@contextlib.contextmanager
def in_thread(call: Callable[[], dict]) -> Iterator[dict]:
    """Runs call in a thread; the dict it yields is filled with the result once the block has ended."""
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(call()))
    worker.start()
    try:
        yield box
    finally:
        worker.join(timeout=300)


@contextlib.contextmanager
def table_locked(host: lab.Host, db: str, table: str) -> Iterator[None]:
    """Holds an exclusive lock on a table: pg_dump waits for it at its start, so a test can act on a running dump."""
    conn = pg(host, db)
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture(scope="module")
def lab1(hosts: dict) -> lab.Host:
    return hosts["lab1"]


@pytest.fixture(scope="module")
def drill1(hosts: dict) -> lab.Host:
    return hosts["drill1"]


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    yield ROOT
    shutil.rmtree(ROOT, ignore_errors=True)


@pytest.fixture(scope="module")
def fragile(lab1: lab.Host, drill1: lab.Host) -> Iterator[str]:
    """A small database on lab1 whose dump cannot be restored: a CHECK constraint's function was changed after the
    rows went in, so restoring fails at the second table's data, mid-way. It also has a table owned by a role
    that drill1 lacks."""
    drop_databases(lab1, "fragile")
    query(lab1, "postgres", "DROP ROLE IF EXISTS reporting")
    query(lab1, "postgres", "CREATE ROLE reporting NOLOGIN")
    query(lab1, "postgres", "CREATE DATABASE fragile")
    query(
        lab1,
        "fragile",
        """
        CREATE TABLE first (id int PRIMARY KEY, note text);
        INSERT INTO first SELECT g, 'row ' || g FROM generate_series(1, 5000) g;
        CREATE FUNCTION accepted(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
        CREATE TABLE second (x int CHECK (accepted(x)));
        INSERT INTO second SELECT g FROM generate_series(1, 1000) g;
        CREATE OR REPLACE FUNCTION accepted(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 < 500';
        CREATE TABLE reports (id int);
        ALTER TABLE reports OWNER TO reporting;
        """,
    )
    yield "fragile"
    drop_databases(lab1, "fragile")
    query(lab1, "postgres", "DROP ROLE IF EXISTS reporting")
    drop_databases(drill1, "fragile_copy")
    query(drill1, "postgres", "DROP ROLE IF EXISTS reporting")


@pytest.fixture(scope="module")
def app_set(lab1: lab.Host, root: Path) -> dict:
    """One backup of lab1's app database, taken on the host, which the restore tests copy before they damage it."""
    result = backup(lab1, "app", root / "app")
    assert not result["failed"], result
    return result


@pytest.fixture(scope="module")
def shop(lab1: lab.Host, app_set: dict) -> Iterator[str]:
    """lab1's `shop` database: app's backup restored under another name, with a marker row the backup lacks. The
    tests replace it, and every failure must leave the marker in place."""
    drop_databases(lab1, "shop", *[n for n in databases(lab1) if n.startswith("shop_")])
    result = restore(lab1, "shop", app_set["path"])
    assert not result["failed"], result
    set_marker(lab1, "shop")
    yield "shop"
    drop_databases(lab1, "shop", *[n for n in databases(lab1) if n.startswith("shop_")])


# --- backups --------------------------------------------------------------------------------------------------------


@pytest.mark.matrix
def test_a_backup_counts_only_once_verified_and_private(lab1: lab.Host, root: Path) -> None:
    dest = root / "verified"
    planned = backup(lab1, "app", dest, check=True, retention_count=3)
    assert planned["changed"] and not planned["failed"], planned
    assert not dest.exists(), "check mode wrote something"

    result = backup(lab1, "app", dest, retention_count=3)
    assert result["changed"] and not result["failed"], result
    path = Path(result["path"])
    assert path.parent == dest and path.name.startswith("app-") and planned["path"].startswith(str(dest / "app-"))
    assert sorted(p.name for p in dest.iterdir()) == [".app.lock", path.name], "a partial or extra entry was left"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest == result["manifest"]
    dump = path / "app.dump"
    assert result["sha256"] == manifest["sha256"] == subprocess.check_output(["sha256sum", dump], text=True).split()[0]
    assert result["size"] == sum(f.stat().st_size for f in path.iterdir() if f.name != "manifest.json")
    # Exact counts, as the source has them.
    source = tables(lab1, "app")
    assert manifest["tables"] == {name: count for name, (count, _digest) in source.items()}
    assert manifest["server_version"].startswith("15.") and manifest["dump_version"].startswith(
        "pg_dump (PostgreSQL) 15"
    )
    assert "full read" in " ".join(manifest["verified"])
    # Private: 0700 directories, 0600 files, and no password anywhere in them.
    assert (dest.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o700)
    assert {f.stat().st_mode & 0o777 for f in path.iterdir()} == {0o600}
    password = lab_credentials("lab1")["stackops_pg_password"]
    assert all(password.encode() not in f.read_bytes() for f in path.iterdir())
    # The globals hold the roles a restore elsewhere needs.
    assert "CREATE ROLE app;" in (path / "globals.sql").read_text()


def test_a_killed_dump_leaves_nothing_that_looks_complete(lab1: lab.Host, fragile: str, root: Path) -> None:
    dest = root / "killed"
    # pg_dump itself killed: the run fails and cleans up after itself.
    with table_locked(lab1, fragile, "first"), in_thread(lambda: backup(lab1, fragile, dest)) as result:
        (pid,) = wait_for("pg_dump", lambda: pids_of("pg_dump .*-d fragile"))
        os.kill(pid, signal.SIGKILL)
    assert result["failed"] and "killed by signal 9" in result["msg"], result
    assert sorted(p.name for p in dest.iterdir()) == [".fragile.lock"]

    # The whole module killed: its .partial stays, but never with a final name, and the next run cleans up.
    with table_locked(lab1, fragile, "first"), in_thread(lambda: backup(lab1, fragile, dest)) as result:
        (pid,) = wait_for("pg_dump", lambda: pids_of("pg_dump .*-d fragile"))
        os.kill(parent_of(pid), signal.SIGKILL)
    # Its orphaned pg_dump ends when it writes to the dead module's pipe, once the lock is gone.
    wait_for("the orphaned pg_dump to end", lambda: not pids_of("pg_dump .*-d fragile"))
    assert result["failed"], result
    left = [p.name for p in dest.iterdir() if p.name != ".fragile.lock"]
    assert len(left) == 1 and left[0].endswith(".partial"), left
    assert json.loads((dest / ".fragile.lock").read_text())["pid"], "the killed run's record should stay"

    again = backup(lab1, fragile, dest)
    assert not again["failed"], again
    assert again["stale_lock"]["pid"] and again["removed_partial"] == [str(dest / left[0])]
    assert sorted(p.name for p in dest.iterdir()) == [".fragile.lock", Path(again["path"]).name]
    assert (dest / ".fragile.lock").read_text() == "", "a clean run leaves the lock empty"


def test_concurrent_backups_of_one_database_take_turns(lab1: lab.Host, fragile: str, root: Path) -> None:
    dest = root / "concurrent"
    first: dict = {}
    waiting: dict = {}
    runs = [
        threading.Thread(target=lambda: first.update(backup(lab1, fragile, dest))),
        threading.Thread(target=lambda: waiting.update(backup(lab1, fragile, dest, lock_timeout=120))),
    ]
    with table_locked(lab1, fragile, "first"):
        runs[0].start()
        wait_for("the first pg_dump", lambda: pids_of("pg_dump .*-d fragile"))
        refused = backup(lab1, fragile, dest)
        assert refused["failed"] and "Another backup of this database is running (pid" in refused["msg"], refused
        runs[1].start()
        time.sleep(3)
        assert len(pids_of("pg_dump .*-d fragile")) == 1, "the waiting run started a dump while the first ran"
    for run in runs:
        run.join(timeout=300)
    assert not first["failed"] and not waiting["failed"], (first, waiting)
    assert first["path"] != waiting["path"]
    assert {p.name for p in dest.iterdir()} == {".fragile.lock", Path(first["path"]).name, Path(waiting["path"]).name}


@pytest.mark.parametrize(
    ("options", "made", "left"),
    [
        # Full while the dump is written: the lock stays, the partial set is removed.
        ("size=1m", "", [".app.lock"]),
        # Full before anything: no inode left for dest itself (a disk filled by something else), or for the lock.
        ("size=1m,nr_inodes=1", "backups", []),
        ("size=1m,nr_inodes=1", "", []),
    ],
    ids=["while-dumping", "no-room-for-dest", "no-room-for-the-lock"],
)
def test_a_full_disk_fails_clearly_and_keeps_nothing(
    lab1: lab.Host, root: Path, options: str, made: str, left: list[str]
) -> None:
    disk = Path(tempfile.mkdtemp(prefix="full-", dir=root))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options},mode=0700", "tmpfs", str(disk)], check=True)
    dest = disk / made
    try:
        result = backup(lab1, "app", dest)
        assert result["failed"], result
        for words in ("The backup of app failed and nothing was kept", "No space left on device", f"{dest} is full"):
            assert words in result["msg"], result["msg"]
        assert sorted(p.name for p in disk.iterdir()) == left
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_wrong_password_fails_clearly_and_writes_nothing(lab1: lab.Host, app_set: dict, root: Path) -> None:
    dest = root / "denied"
    result = outcome(
        run_module(BACKUP, {"login_host": lab1.addr, "login_password": "wrong", "db": "app", "dest": str(dest)}), "lab1"
    )
    assert result["failed"] and 'password authentication failed for user "postgres"' in result["msg"], result
    assert not dest.exists(), "a backup refused at its first connection made its directory"
    result = outcome(
        run_module(RESTORE, {"login_host": lab1.addr, "login_password": "wrong", "db": "x", "src": app_set["path"]}),
        "lab1",
    )
    assert result["failed"] and "password authentication failed" in result["msg"], result
    assert "wrong" not in json.dumps(result)


def test_retention_keeps_the_newest_verified_and_ignores_failed_ones(lab1: lab.Host, fragile: str, root: Path) -> None:
    dest = root / "retention"
    paths = []
    for run in range(3):
        result = backup(lab1, fragile, dest, retention_count=2)
        assert not result["failed"], (run, result)
        paths.append(result["path"])
    assert result["removed"] == [paths[0]]
    # A newer set that failed verification is neither counted nor removed, nor picked.
    broken = dest / "fragile-20991231T000000Z"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    result = backup(lab1, fragile, dest, retention_count=1)
    assert not result["failed"], result
    assert sorted(result["removed"]) == sorted(paths[1:]) and result["unverified"] == [str(broken)]
    remaining = {p.name for p in dest.iterdir()}
    assert remaining == {".fragile.lock", broken.name, Path(result["path"]).name}

    fresh = backup(lab1, fragile, dest, operation="check", max_age_hours=24)
    assert not fresh["failed"] and fresh["stale"] is False and fresh["newest"]["path"] == result["path"], fresh
    assert not fresh["changed"]
    time.sleep(1)
    old = backup(lab1, fragile, dest, operation="check", max_age_hours=0.0001)
    assert not old["failed"] and old["stale"] is True and "over max_age_hours" in " ".join(old["warnings"]), old
    # A damaged newest backup fails the check.
    dump = Path(result["path"]) / "fragile.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    damaged = backup(lab1, fragile, dest, operation="check")
    assert damaged["failed"] and "fragile.dump has sha256" in damaged["msg"], damaged


# --- restores -------------------------------------------------------------------------------------------------------


@pytest.mark.matrix
def test_a_backup_restores_on_another_host_with_equal_data_and_its_roles(
    lab1: lab.Host, drill1: lab.Host, fragile: str, root: Path
) -> None:
    """The drill case: taken inside lab1's compose service in directory format, restored on drill1's server."""
    query(lab1, fragile, "INSERT INTO reports VALUES (1), (2)")
    taken = backup(lab1, fragile, root / "to-drill", format="directory", jobs=2, compose_project_src=str(lab1.dir))
    assert not taken["failed"] and taken["manifest"]["source"]["mode"] == "container", taken
    drop_databases(drill1, "fragile_copy")
    app_password = query(drill1, "postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
    query(drill1, "postgres", "DROP ROLE IF EXISTS reporting")
    # fragile's dump fails inside pg_restore (its CHECK constraint rejects rows): nothing is left on drill1.
    result = restore(drill1, "fragile_copy", taken["path"])
    assert result["failed"] and 'violates check constraint "second_x_check"' in result["msg"], result
    assert "fragile_copy" not in databases(drill1) and not scratch_left(drill1, "fragile_copy")
    assert result["roles_created"] == ["reporting"], "the roles were created before the restore started"

    app = backup(lab1, "app", root / "to-drill-app", compose_project_src=str(lab1.dir), format="directory")
    assert not app["failed"], app
    drop_databases(drill1, "app_copy")
    result = restore(drill1, "app_copy", root / "to-drill-app", pick="latest")
    assert not result["failed"] and result["previous_db"] is None, result
    assert tables(drill1, "app_copy") == tables(lab1, "app")
    assert result["row_counts"] == app["manifest"]["tables"]
    assert set(result["elapsed"]) == {"verify", "restore", "check", "swap", "total", "cleanup"}
    drop_databases(drill1, "app_copy")
    # drill1's own app role, which the backup has too, kept its password.
    assert query(drill1, "postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'") == app_password


def test_roles_the_target_lacks_are_created_before_the_restore(lab1: lab.Host, drill1: lab.Host, root: Path) -> None:
    drop_databases(lab1, "owned")
    query(lab1, "postgres", "DROP ROLE IF EXISTS owner_only_on_lab1")
    query(lab1, "postgres", "CREATE ROLE owner_only_on_lab1 NOLOGIN")
    query(lab1, "postgres", "CREATE DATABASE owned OWNER owner_only_on_lab1")
    query(lab1, "owned", "CREATE TABLE t (id int); ALTER TABLE t OWNER TO owner_only_on_lab1; INSERT INTO t VALUES (1)")
    try:
        taken = backup(lab1, "owned", root / "owned")
        assert not taken["failed"], taken
        query(drill1, "postgres", "DROP ROLE IF EXISTS owner_only_on_lab1")
        without = restore(drill1, "owned", taken["path"], restore_globals=False)
        assert without["failed"] and "Role owner_only_on_lab1, owner of the backed-up database" in without["msg"]
        result = restore(drill1, "owned", taken["path"])
        assert not result["failed"] and result["roles_created"] == ["owner_only_on_lab1"], result
        assert query(drill1, "owned", "SELECT tableowner FROM pg_tables WHERE tablename = 't'") == [
            ("owner_only_on_lab1",)
        ]
    finally:
        drop_databases(lab1, "owned")
        drop_databases(drill1, "owned")
        query(lab1, "postgres", "DROP ROLE IF EXISTS owner_only_on_lab1")
        query(drill1, "postgres", "DROP ROLE IF EXISTS owner_only_on_lab1")


def test_in_place_restore_swaps_keeps_the_previous_and_can_revert(lab1: lab.Host, shop: str, app_set: dict) -> None:
    before = databases(lab1)
    planned = restore(lab1, shop, app_set["path"], check=True, force=True)
    assert planned["changed"] and not planned["failed"], planned
    assert any("rename shop to shop_pre_restore_" in step for step in planned["plan"]), planned["plan"]
    assert databases(lab1) == before and marker(lab1, shop) == [(MARKER,)], "check mode changed something"

    refused = restore(lab1, shop, app_set["path"])
    assert (
        refused["failed"]
        and "Replacing it needs force=true" in refused["msg"]
        and "Nothing was changed" in refused["msg"]
    )
    assert databases(lab1) == before and marker(lab1, shop) == [(MARKER,)]

    # A connected session blocks the swap unless the run may end it.
    holder = pg(lab1, shop)
    try:
        busy = restore(lab1, shop, app_set["path"], force=True)
        assert busy["failed"] and "sessions are connected to shop" in busy["msg"], busy
        assert databases(lab1) == before
        done = restore(lab1, shop, app_set["path"], force=True, terminate_connections=True)
    finally:
        holder.close()
    assert not done["failed"], done
    previous = done["previous_db"]
    assert previous.startswith("shop_pre_restore_") and marker(lab1, previous) == [(MARKER,)]
    assert "marker" not in {t.split(".")[-1] for t in tables(lab1, shop)}, "the restored shop is the backup's"
    assert tables(lab1, shop) == {k: v for k, v in tables(lab1, previous).items() if not k.endswith(".marker")}
    assert query(lab1, "postgres", "SELECT datallowconn FROM pg_database WHERE datname = %s", (previous,)) == [(True,)]
    # The restore's own reads are not the site's: the swapped-in database's counters start at the swap, so a health
    # check right after does not judge the restore's cold reads as a poor cache hit ratio.
    assert done["checks"]["statistics_reset"] is True, done["checks"]
    assert query(
        lab1, "postgres", "SELECT stats_reset IS NOT NULL FROM pg_stat_database WHERE datname = %s", (shop,)
    ) == [(True,)]

    reverted = restore(lab1, shop, None, operation="revert")
    assert not reverted["failed"] and reverted["previous_db"].startswith("shop_reverted_"), reverted
    assert marker(lab1, shop) == [(MARKER,)]

    again = restore(lab1, shop, app_set["path"], force=True)
    assert not again["failed"] and marker(lab1, again["previous_db"]) == [(MARKER,)], again
    planned = restore(lab1, shop, None, check=True, operation="cleanup", keep_previous=0)
    assert planned["changed"] and sorted(planned["dropped"]) == sorted([again["previous_db"], reverted["previous_db"]])
    assert again["previous_db"] in databases(lab1)
    dropped = restore(lab1, shop, None, operation="cleanup", keep_previous=0)
    assert not dropped["failed"] and dropped["dropped"] == planned["dropped"], dropped
    assert not [n for n in databases(lab1) if n.startswith(("shop_pre_restore_", "shop_reverted_"))]
    assert not restore(lab1, shop, None, operation="cleanup", keep_previous=0)["changed"]
    set_marker(lab1, shop)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])


def drop_manifest(path: Path) -> None:
    (path.parent / "manifest.json").unlink()


def edit_manifest(path: Path) -> None:
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["app.customers"] += 1
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_byte, "app.dump has sha256"),
        (truncate, "app.dump is"),
        (drop_manifest, "has no manifest.json"),
        (edit_manifest, "does not match its own checksum"),
    ],
)
def test_a_damaged_backup_is_refused_before_anything_changes(
    lab1: lab.Host, shop: str, app_set: dict, tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    copy = tmp_path / Path(app_set["path"]).name
    shutil.copytree(app_set["path"], copy)
    damage(copy / "app.dump")
    before = databases(lab1)
    result = restore(lab1, shop, copy, force=True)
    assert result["failed"] and message in result["msg"], result
    assert databases(lab1) == before and marker(lab1, shop) == [(MARKER,)]


def test_an_unfinished_backup_is_refused(lab1: lab.Host, shop: str, app_set: dict, tmp_path: Path) -> None:
    partial = tmp_path / f"{Path(app_set['path']).name}.partial"
    shutil.copytree(app_set["path"], partial)
    result = restore(lab1, shop, partial, force=True)
    assert result["failed"] and "is an unfinished backup" in result["msg"], result
    assert marker(lab1, shop) == [(MARKER,)]


def test_a_restore_failing_midway_leaves_the_database_as_it_was(
    lab1: lab.Host, shop: str, fragile: str, root: Path, tmp_path: Path
) -> None:
    """A backup that passes every check but fails inside pg_restore (at the second table's data); and a truncated
    dump whose manifest was rewritten to match, which only pg_restore can find out."""
    taken = backup(lab1, fragile, root / "fragile")
    assert not taken["failed"], taken
    result = restore(lab1, shop, taken["path"], force=True)
    assert result["failed"] and 'violates check constraint "second_x_check"' in result["msg"], result
    assert "shop is as it was" in result["msg"]
    assert marker(lab1, shop) == [(MARKER,)] and not scratch_left(lab1, shop)

    copy = tmp_path / Path(taken["path"]).name
    shutil.copytree(taken["path"], copy)
    truncate(copy / "fragile.dump")
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "fragile.dump":
            entry.update(size=(copy / "fragile.dump").stat().st_size, sha256=sha256_file(str(copy / "fragile.dump")))
    (copy / "manifest.json").write_text(json.dumps(seal(manifest)))
    result = restore(lab1, shop, copy, force=True)
    assert result["failed"] and "The restore failed" in result["msg"], result
    assert marker(lab1, shop) == [(MARKER,)] and not scratch_left(lab1, shop)


def test_a_killed_restore_leaves_a_database_the_next_run_drops(lab1: lab.Host, shop: str, app_set: dict) -> None:
    with in_thread(lambda: restore(lab1, shop, app_set["path"], force=True)) as result:
        (pid,) = wait_for("pg_restore", lambda: pids_of("pg_restore .*-d shop_restore_"))
        scratch = wait_for("the new database", lambda: scratch_left(lab1, shop))
        os.kill(parent_of(pid), signal.SIGKILL)
    assert result["failed"], result
    assert marker(lab1, shop) == [(MARKER,)]
    assert scratch_left(lab1, shop) == scratch
    # The killed run's own session on shop ends when PostgreSQL notices its client is gone, a moment after the kill;
    # until then the next run refuses to swap, as it does for any session on the database.
    killed = "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name = 'stackops-pg_restore'"
    wait_for("the killed run's session to end", lambda: not query(lab1, "postgres", killed, (shop,)))
    again = restore(lab1, shop, app_set["path"], force=True, keep_previous=0)
    assert not again["failed"], again
    assert set(again["dropped"]) >= scratch and not scratch_left(lab1, shop)
    assert not [n for n in databases(lab1) if n.startswith("shop_pre_restore_")], "keep_previous=0 keeps none"
    set_marker(lab1, shop)
