"""Legacy dumps and versions on the real lab (issue 15): plain-SQL dumps made the way the runbooks make them
(`docker compose exec -T postgres pg_dump app > backup_YYYYMMDD.sql`, maybe gzipped) adopted into verified backup
sets by pg_backup and restored by pg_restore; garbage, truncated files and another database's dump refused with
nothing changed; a PostgreSQL 17 backup (lab3) refused on PostgreSQL 15 (lab1) before anything changes, and a
PostgreSQL 15 backup restored on 17. "Nothing changed" is an independent snapshot of the host before and after
(tests/harness/snapshot.py: every database's rows, definitions, roles; the containers)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2 import sql

import lab
from harness.paths import lab_credentials
from harness.pg import query
from harness.playbook import assert_module_four_step, check_run, run_module
from harness.snapshot import diff, snapshot

pytestmark = pytest.mark.lab_hosts("lab1", "lab3")

BACKUP = "stackops.runbooks.pg_backup"
RESTORE = "stackops.runbooks.pg_restore"
ROOT = lab.ROOT / "legacy-dump-tests"
STAMP = "20240115"


def login(host: lab.Host, **extra: object) -> dict:
    """Connection and container options of a host's own shape: its superuser, its postgres service."""
    return {
        "login_host": host.addr,
        "login_user": host.shape.superuser,
        "login_password": lab_credentials(host.name)["stackops_pg_password"],
        "compose_project_src": str(host.dir),
        "compose_service": host.shape.postgres,
        **extra,
    }


def call(module: str, host: lab.Host, check: bool = False, **args: object) -> dict:
    """The module's result on host, with `failed` as the run saw it."""
    run = run_module(module, login(host, **args), hosts=host.name, check=check)
    return {**run.result(host.name), "failed": host.name in run.failed_hosts()}


def runbook_dump(host: lab.Host, db: str, path: Path, *options: str) -> Path:
    """`docker compose exec -T postgres pg_dump app > backup_YYYYMMDD.sql`, as the runbooks write it. As the
    container's OS user postgres: root in the lab's containers has no peer login."""
    argv = ["docker", "compose", "--project-directory", str(host.dir), "-p", host.project, "exec", "-T"]
    argv += ["-u", "postgres", host.shape.postgres, "pg_dump", "-U", host.shape.superuser, *options, db]
    with path.open("wb") as out:
        subprocess.run(argv, stdout=out, check=True)
    return path


def gzipped(path: Path) -> Path:
    """`gzip -k backup.sql`."""
    subprocess.run(["gzip", "-kf", str(path)], check=True)
    return path.with_name(path.name + ".gz")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contents(host: lab.Host, *names: str) -> dict:
    """Rows, definitions and sequences of databases, as the snapshot reads them (never through the collection)."""
    found = snapshot(host)["postgres"]["databases"]
    return {name: found[name]["content"] for name in names}


def drop_databases(host: lab.Host, *names: str) -> None:
    for name in names:
        query(host, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def databases_like(host: lab.Host, prefix: str) -> list[str]:
    found = query(host, "postgres", "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,))
    return sorted(name for (name,) in found)


def unchanged(host: lab.Host, before: dict) -> None:
    changes = diff(before, snapshot(host))
    assert not changes, f"{host.name} changed:\n" + "\n".join(changes[:40])


@pytest.fixture(scope="module")
def lab1(hosts: dict) -> lab.Host:
    return hosts["lab1"]


@pytest.fixture(scope="module")
def lab3(hosts: dict) -> lab.Host:
    return hosts["lab3"]


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True, mode=0o700)
    yield ROOT
    shutil.rmtree(ROOT, ignore_errors=True)


@pytest.fixture(scope="module")
def legacy(lab1: lab.Host, root: Path) -> Path:
    """lab1's app database dumped by hand, the runbook's way."""
    return runbook_dump(lab1, lab1.shape.db, root / f"backup_{STAMP}.sql")


@pytest.fixture(scope="module")
def reference(lab1: lab.Host, legacy: Path) -> Iterator[dict]:
    """What the legacy dump holds, loaded the runbook's way (`psql < backup.sql` into a new database): the live
    database may have changed since (other tests write to it)."""
    drop_databases(lab1, "app_reference")
    query(lab1, "postgres", "CREATE DATABASE app_reference")
    argv = ["docker", "compose", "--project-directory", str(lab1.dir), "-p", lab1.project, "exec", "-T", "-u"]
    argv += ["postgres", lab1.shape.postgres, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "app_reference"]
    with legacy.open("rb") as dump:
        subprocess.run(argv, stdin=dump, stdout=subprocess.DEVNULL, check=True)
    yield contents(lab1, "app_reference")["app_reference"]
    drop_databases(lab1, "app_reference")


@pytest.fixture(scope="module")
def other(lab1: lab.Host, root: Path) -> Iterator[dict[str, Path]]:
    """Dumps of another database of lab1 (`inventory`, none of app's tables), without and with -C."""
    drop_databases(lab1, "inventory")
    query(lab1, "postgres", "CREATE DATABASE inventory")
    query(lab1, "inventory", "CREATE TABLE stock (sku text PRIMARY KEY, n int); INSERT INTO stock VALUES ('a', 1)")
    dumps = {
        "plain": runbook_dump(lab1, "inventory", root / "inventory_plain.sql"),
        "create": runbook_dump(lab1, "inventory", root / "inventory_create.sql", "-C"),
    }
    drop_databases(lab1, "inventory")
    yield dumps


# --- adopt ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True], ids=["sql", "sql.gz"])
def test_a_runbook_dump_is_adopted_into_a_verified_backup_set(
    lab1: lab.Host, root: Path, legacy: Path, reference: dict, packed: bool
) -> None:
    src = gzipped(legacy) if packed else legacy
    dest = root / f"adopted-{'gz' if packed else 'sql'}"
    args = login(lab1, operation="adopt", src=str(src), db=lab1.shape.db, dest=str(dest))
    # check (nothing changed, by snapshot), real, check again and real again: the second pair changes nothing.
    check, real, check_again, real_again = assert_module_four_step(BACKUP, args, hosts=lab1.name)
    planned = check.result(lab1.name)
    assert planned["path"].startswith(str(dest / f"{lab1.shape.db}-")) and "psql -X -v ON_ERROR_STOP=1" in str(
        planned["plan"]
    ), planned
    made = real.result(lab1.name)
    assert made["path"] == planned["path"] and Path(made["path"]).is_dir()
    for again in (check_again, real_again):
        assert again.result(lab1.name)["path"] == made["path"] and again.result(lab1.name)["plan"] == []
    assert sorted(p.name for p in dest.iterdir()) == [f".{lab1.shape.db}.lock", Path(made["path"]).name]

    # The manifest records the file as it is, read with other tools.
    manifest = json.loads((Path(made["path"]) / "manifest.json").read_text())
    origin = manifest["adopted_from"]
    assert (origin["path"], origin["sha256"], origin["size"]) == (str(src), sha256(src), src.stat().st_size)
    assert origin["compressed"] is packed and origin["dumped_from"].startswith("15.")
    assert manifest["database"] == lab1.shape.db and manifest["finished_epoch"] == src.stat().st_mtime
    # Its row counts are the dump's: counted here in the file's COPY blocks, and in the dump loaded by psql.
    text = gzip.decompress(src.read_bytes()).decode() if packed else src.read_text()
    copied = {}
    for block in text.split("\nCOPY ")[1:]:
        header, data = block.split(" FROM stdin;\n", 1)
        copied[header.split(" (")[0]] = len(data.split("\n\\.\n", 1)[0].splitlines())
    assert manifest["tables"] == copied
    assert manifest["tables"] == reference["rows"]
    # A verified set like any other: pg_backup's check re-reads every file, and the scratch database is gone.
    checked = call(BACKUP, lab1, db=lab1.shape.db, dest=str(dest), operation="check")
    assert not checked["failed"] and checked["newest"]["path"] == made["path"], checked
    assert databases_like(lab1, "stackops_adopt_") == []


def test_an_adopted_set_restores_with_the_dumps_data(lab1: lab.Host, root: Path, legacy: Path, reference: dict) -> None:
    dest = root / "adopted-then-restored"
    made = call(BACKUP, lab1, operation="adopt", src=str(legacy), db=lab1.shape.db, dest=str(dest))
    assert not made["failed"], made
    drop_databases(lab1, "app_adopted")
    try:
        restored = call(RESTORE, lab1, src=made["path"], db="app_adopted")
        assert not restored["failed"], restored
        assert contents(lab1, "app_adopted")["app_adopted"] == reference
    finally:
        drop_databases(lab1, "app_adopted")


def test_a_killed_adoptions_scratch_database_is_dropped_by_the_next_one(
    lab1: lab.Host, root: Path, other: dict[str, Path]
) -> None:
    """A run killed mid-trial leaves its scratch database; the next run drops it, and only it: a running one's
    scratch is held by its session's advisory lock."""
    left = "stackops_adopt_20240115000000_4242"
    drop_databases(lab1, left)
    query(lab1, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(left)))
    comment = f"stackops.runbooks.pg_backup adopt scratch of {other['plain']}, pid 4242"
    query(lab1, "postgres", sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(left), sql.Literal(comment)))
    try:
        args = {"operation": "adopt", "src": str(other["plain"]), "dest": str(root / "after-a-killed-run")}
        result = call(BACKUP, lab1, db="inventory", **args)
        assert not result["failed"] and result["dropped"] == [left], result
        assert databases_like(lab1, "stackops_adopt_") == []
    finally:
        drop_databases(lab1, left)


# --- restore a plain dump directly ----------------------------------------------------------------------------------


def test_a_runbook_dump_is_restored_beside_the_live_database_then_swapped(
    lab1: lab.Host, root: Path, legacy: Path, reference: dict
) -> None:
    target = "app_legacy"
    drop_databases(lab1, target, *databases_like(lab1, f"{target}_"))
    src = gzipped(legacy)
    try:
        first = call(RESTORE, lab1, src=str(src), db=target)
        assert not first["failed"] and first["previous_db"] is None, first
        assert contents(lab1, target)[target] == reference
        query(lab1, target, "CREATE TABLE marker (note text); INSERT INTO marker VALUES ('kept')")

        # Over a database with tables: force, and the old one is kept under another name.
        refused = call(RESTORE, lab1, src=str(src), db=target)
        assert refused["failed"] and "Replacing it needs force=true" in refused["msg"], refused
        before = snapshot(lab1)
        planned = call(RESTORE, lab1, check=True, src=str(src), db=target, force=True)
        assert planned["changed"] and not planned["failed"], planned
        assert planned["plan"][-1].startswith(f"in one transaction, rename {target} to {target}_pre_restore_")
        unchanged(lab1, before)
        second = call(RESTORE, lab1, src=str(src), db=target, force=True)
        assert not second["failed"] and second["previous_db"].startswith(f"{target}_pre_restore_"), second
        assert query(lab1, second["previous_db"], "SELECT note FROM marker") == [("kept",)]
        assert contents(lab1, target)[target] == reference
        # A plain dump records no object counts: objects is skipped, not passed.
        assert {p["name"]: p["passed"] for p in second["proofs"]} == {
            "checksums": True,
            "row_counts": True,
            "objects": None,
            "sequences": True,
            "sentinel": None,
        }
    finally:
        drop_databases(lab1, target, *databases_like(lab1, f"{target}_"))


def test_a_dump_made_with_create_restores_under_another_name_without_touching_its_namesake(
    lab1: lab.Host, root: Path
) -> None:
    """`pg_dump -C --clean app` says DROP DATABASE app, CREATE DATABASE app and \\connect app: held back, or they
    would act on the live app."""
    src = runbook_dump(lab1, lab1.shape.db, root / f"backup_{STAMP}_create.sql", "-C", "--clean")
    drop_databases(lab1, "app_created")
    try:
        refused = call(RESTORE, lab1, src=str(src), db="app_created")
        assert refused["failed"] and f"is a dump of database {lab1.shape.db}" in refused["msg"], refused
        before = contents(lab1, lab1.shape.db)
        result = call(RESTORE, lab1, src=str(src), db="app_created", source_db=lab1.shape.db)
        assert not result["failed"] and result["manifest"]["plain"]["database_statements_held_back"] == 4, result
        after = contents(lab1, lab1.shape.db, "app_created")
        assert after[lab1.shape.db] == before[lab1.shape.db] == after["app_created"]
    finally:
        drop_databases(lab1, "app_created")


# --- refused, with nothing changed ----------------------------------------------------------------------------------


def truncated(source: Path, name: str, keep: float) -> Path:
    path = source.with_name(name)
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize(
    "case",
    ["garbage", "truncated", "truncated-gz", "another-database", "another-database-create"],
)
def test_a_bad_file_is_refused_by_adopt_and_restore_with_nothing_changed(
    lab1: lab.Host, root: Path, legacy: Path, other: dict[str, Path], case: str
) -> None:
    if case == "garbage":
        src = root / "garbage.sql"
        src.write_bytes(bytes(range(256)) * 400)
        reason = "does not start like a pg_dump plain-SQL dump"
    elif case == "truncated":
        src = truncated(legacy, f"backup_{STAMP}_cut.sql", 0.6)
        reason = "lacks the closing line '-- PostgreSQL database dump complete' that pg_dump writes last"
    elif case == "truncated-gz":
        src = truncated(gzipped(legacy), f"backup_{STAMP}_cut.sql.gz", 0.6)
        reason = "cannot be read to its end (Compressed file ended before the end-of-stream marker was reached)"
    elif case == "another-database":
        src = other["plain"]
        reason = f"shares no table with database {lab1.shape.db}"
    else:
        src = other["create"]
        reason = f"is a dump of database inventory (its CREATE DATABASE line), not of {lab1.shape.db}"
    dest = root / f"refused-{case}"
    adopt = login(lab1, operation="adopt", src=str(src), db=lab1.shape.db, dest=str(dest))
    restore = login(lab1, src=str(src), db=lab1.shape.db, force=True, terminate_connections=True)
    # In check mode (the harness snapshots lab1 around it) and for real, each refused with the file and the fix.
    for module, args in ((BACKUP, adopt), (RESTORE, restore)):
        check_run(run_module, module, args, hosts=lab1.name, refused=reason)
        before = snapshot(lab1)
        result = call(module, lab1, **{k: v for k, v in args.items() if k not in login(lab1)})
        assert result["failed"] and not result["changed"], result
        assert str(src) in result["msg"] and reason in result["msg"], result["msg"]
        assert "nothing was changed" in result["msg"] and "Traceback" not in json.dumps(result)
        unchanged(lab1, before)
    assert not dest.exists(), "a refused adoption made its backup directory"
    assert databases_like(lab1, "stackops_adopt_") == databases_like(lab1, f"{lab1.shape.db}_restore_") == []


def test_another_databases_dump_is_adopted_with_the_explicit_override(
    lab1: lab.Host, root: Path, other: dict[str, Path]
) -> None:
    dest = root / "override"
    result = call(
        BACKUP,
        lab1,
        operation="adopt",
        src=str(other["plain"]),
        db=lab1.shape.db,
        dest=str(dest),
        accept_other_database=True,
    )
    assert not result["failed"] and result["manifest"]["tables"] == {"public.stock": 1}, result


# --- versions: PostgreSQL 17 (lab3) and 15 (lab1) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg17(lab3: lab.Host, root: Path) -> dict[str, str]:
    """A backup set of lab3's database taken on PostgreSQL 17, and its runbook dump."""
    taken = call(BACKUP, lab3, db=lab3.shape.db, dest=str(root / "pg17"))
    assert not taken["failed"] and taken["manifest"]["server_version"].startswith("17."), taken
    dump = runbook_dump(lab3, lab3.shape.db, root / f"backup_{STAMP}_pg17.sql")
    return {"set": taken["path"], "sql": str(dump), "sql.gz": str(gzipped(dump))}


@pytest.mark.parametrize("kind", ["set", "sql", "sql.gz"])
def test_a_postgresql_17_backup_is_refused_on_15_before_anything_changes(
    lab1: lab.Host, root: Path, pg17: dict[str, str], kind: str
) -> None:
    src = pg17[kind]
    version = "from PostgreSQL 17 by pg_dump 17; the target server"
    fix = "Restore it onto a server running PostgreSQL 17 or later"
    # The most dangerous request: replace lab1's live app, ending its sessions.
    args = login(lab1, src=src, db=lab1.shape.db, force=True, terminate_connections=True)
    check_run(run_module, RESTORE, args, hosts=lab1.name, refused=version)
    before = snapshot(lab1)
    result = call(RESTORE, lab1, src=src, db=lab1.shape.db, force=True, terminate_connections=True)
    assert result["failed"] and not result["changed"], result
    assert f"{src} was dumped {version} {lab1.addr}:5432 runs PostgreSQL 15" in result["msg"], result["msg"]
    assert fix in result["msg"] and "nothing was changed" in result["msg"], result["msg"]
    unchanged(lab1, before)
    if kind != "set":
        before = snapshot(lab1)
        adopted = call(BACKUP, lab1, operation="adopt", src=src, db=lab1.shape.db, dest=str(root / "pg17-on-15"))
        assert adopted["failed"] and version in adopted["msg"] and fix in adopted["msg"], adopted
        unchanged(lab1, before)
        assert not (root / "pg17-on-15").exists()


@pytest.fixture(scope="module")
def on17(lab1: lab.Host, lab3: lab.Host, root: Path, legacy: Path) -> Iterator[dict[str, str]]:
    """lab1's app (PostgreSQL 15) as a backup set and the runbook dump, and lab3's state to restore after the tests:
    the restore creates the role app on lab3 from the set's globals."""
    taken = call(BACKUP, lab1, db=lab1.shape.db, dest=str(root / "pg15"))
    assert not taken["failed"] and taken["manifest"]["server_version"].startswith("15."), taken
    had_app = bool(query(lab3, "postgres", "SELECT 1 FROM pg_roles WHERE rolname = 'app'"))
    if not had_app:  # what the set's globals would create, here for the plain dump's tests too
        query(lab3, "postgres", "CREATE ROLE app NOLOGIN")
    names = ("app_from_15", "app_from_15_sql", "app_adopted_on_17")
    drop_databases(lab3, *names)
    yield {"set": taken["path"], "sql": str(legacy)}
    drop_databases(lab3, *names, *databases_like(lab3, "app_from_15_"))
    if not had_app:
        query(lab3, "postgres", "DROP ROLE IF EXISTS app")


def test_a_postgresql_15_backup_and_dump_restore_on_17(lab3: lab.Host, on17: dict[str, str], reference: dict) -> None:
    result = call(RESTORE, lab3, src=on17["set"], db="app_from_15")
    assert not result["failed"] and result["manifest"]["server_version"].startswith("15."), result
    manifest = json.loads((Path(on17["set"]) / "manifest.json").read_text())
    copy = contents(lab3, "app_from_15")["app_from_15"]
    assert (copy["rows"], copy["sequences"]) == (manifest["tables"], manifest["sequences"])
    assert query(lab3, "postgres", "SELECT current_setting('server_version_num')::int / 10000") == [(17,)]

    # The runbook's plain dump of 15, restored on 17 through psql 17 in lab3's db service.
    result = call(RESTORE, lab3, src=on17["sql"], db="app_from_15_sql")
    assert not result["failed"] and result["manifest"]["plain"]["dumped_from"].startswith("15."), result
    copy = contents(lab3, "app_from_15_sql")["app_from_15_sql"]
    assert (copy["rows"], copy["sequences"]) == (reference["rows"], reference["sequences"])


def test_a_postgresql_15_dump_is_adopted_on_17(lab3: lab.Host, root: Path, on17: dict[str, str]) -> None:
    dest = root / "adopted-on-17"
    result = call(BACKUP, lab3, operation="adopt", src=on17["sql"], db="app_adopted_on_17", dest=str(dest))
    assert not result["failed"], result
    manifest = result["manifest"]
    assert manifest["server_version"].startswith("17.") and manifest["adopted_from"]["dumped_from"].startswith("15.")
    assert databases_like(lab3, "stackops_adopt_") == []
    assert "app_adopted_on_17" not in [name for (name,) in query(lab3, "postgres", "SELECT datname FROM pg_database")]
