# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""pg_backup's operations: backup (unfinished sets removed, the dump taken and sealed, retention), check (the sets
judged, the newest re-verified) and adopt (a plain-SQL dump made by hand turned into a verified set). Each reads
dest and the server, turns what it read into Steps through the pure *_steps functions below, and carries out
exactly those through one Recorder (module_utils/_operation), which check mode fills with the same steps.
"""

from __future__ import annotations

import os
import socket
import time
import typing as t
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import (
    PARTIAL,
    BackupError,
    BackupSet,
    combined_sha256,
    expired,
    file_entries,
    files_under,
    held,
    iso,
    label,
    new_set_name,
    newest,
    no_space_hint,
    partials_of,
    read_manifest,
    remove_tree,
    scan,
    seal,
    secure_tree,
    sha256_file,
    verify_files,
    write_manifest,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._files import fsync_path, fsync_tree
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder, Step
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import (
    DATABASE_SETTINGS,
    GLOBALS_TRAILER,
    TABLE_NAMES,
    ClientPlace,
    PlainDump,
    Tools,
    catalog,
    client_refusal,
    compare,
    create_database,
    database_options,
    database_refusal,
    drop_database,
    expected_of,
    load_plain,
    read_plain,
    version_refusal,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    DatabaseError,
    PgLogin,
    check_database_name,
    connected,
    must_connect,
    rows,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._proofs import SENTINEL_TABLE, SENTINEL_WRITE

APPLICATION = "stackops-pg_backup"
SCRATCH_COMMENT = "stackops.runbooks.pg_backup adopt scratch"
# Held by an adopt run on its scratch database, so the next run tells a killed run's leftover from a running one's.
SCRATCH_LOCK = "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext(%s), pg_catalog.hashtext(%s))"
LEFTOVERS = (
    "SELECT d.datname FROM pg_catalog.pg_database d JOIN pg_catalog.pg_shdescription s "
    "ON s.objoid = d.oid AND s.classoid = 'pg_catalog.pg_database'::regclass WHERE s.description LIKE %s"
)
DATABASE_INFO = """
SELECT pg_catalog.pg_export_snapshot(), current_setting('server_version'), current_setting('server_version_num'),
       pg_catalog.pg_get_userbyid(datdba), pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype
FROM pg_catalog.pg_database WHERE datname = current_database()
"""


# --- the options ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """pg_backup's options once checked: what the operations read, instead of the module's params."""

    db: str
    dest: str
    operation: str  # backup, check or adopt
    src: str  # the normalised path of the dump to adopt; "" for the other operations
    accept_other_database: bool
    format: str
    globals: bool
    retention_count: int | None
    retention_days: float | None
    max_age_hours: float | None
    lock_timeout: int
    sentinel: bool
    jobs: int
    login: PgLogin
    client: ClientPlace  # where pg_dump and the other client programs run

    @property
    def server(self) -> str:
        """The server as the manifest and the messages name it: its socket directory or host, and port."""
        return f"{self.login.unix_socket or self.login.host}:{self.login.port}"


def check_inputs(p: Mapping[str, t.Any]) -> Options:
    """Everything that can be judged without the server or dest, so that a bad option changes nothing."""
    check_database_name(p["db"], "db")
    if not os.path.isabs(p["dest"]):
        raise BackupError(f"dest {p['dest']} is not an absolute path; give the backup directory's full path.")
    if p["jobs"] < 1:
        raise BackupError(f"jobs must be 1 or more, not {p['jobs']}.")
    if p["jobs"] > 1 and p["format"] != "directory":
        raise BackupError(f"jobs={p['jobs']} needs format=directory: pg_dump writes in parallel only into a directory.")
    for name in ("retention_count", "retention_days", "max_age_hours"):
        if p[name] is not None and p[name] <= 0:
            raise BackupError(f"{name} must be more than 0, not {p[name]}; leave it out to keep every backup.")
    if p["lock_timeout"] < 0:
        raise BackupError(f"lock_timeout must be 0 or more seconds, not {p['lock_timeout']}.")
    if p["operation"] == "adopt":
        if not p["src"] or not os.path.isabs(p["src"]):
            raise BackupError(
                f"operation=adopt needs src, the full path of a plain-SQL dump (.sql or .sql.gz), not {p['src']!r}."
            )
        if p["sentinel"]:
            raise BackupError("sentinel=true has no meaning with operation=adopt: the dump was taken long ago.")
    elif p["src"] is not None:
        raise BackupError(f"src is for operation=adopt only; operation={p['operation']} reads database {p['db']}.")
    return options_of(
        Options,
        p,
        src=os.path.normpath(p["src"]) if p["src"] else "",
        login=PgLogin.of(p),
        client=ClientPlace.of(p),
    )


# --- the steps: pure functions from what was read to what a run does ------------------------------------------


def partial_steps(partials: list[str], db: str) -> list[Step]:
    """The unfinished sets of db that earlier failed or killed runs left in dest, removed before the backup."""
    return [Step(f"remove {path}", {"path": path}) for path in partials_of(partials, db)]


def backup_steps(o: Options, work: str, final: str) -> list[Step]:
    """The backup of db: built in work, read back and checksummed, sealed with its manifest, renamed to final."""
    what = f"pg_dump -F{'c' if o.format == 'custom' else 'd'} of {o.db}"
    return [
        Step(f"{what} into {work}, read back in full, every file synced and checksummed", {"work": work}),
        *([Step(f"pg_dumpall --globals-only into {work}/globals.sql")] if o.globals else []),
        Step(f"write {work}/manifest.json and rename {work} to {final}", {"final": final}),
    ]


def retention_steps(sets: list[BackupSet], o: Options, now: float) -> list[Step]:
    """The verified sets of db that retention removes (those the rules of retention_count and retention_days no
    longer keep; never the newest, never an unverified one)."""
    return [
        Step(f"remove {item.path}", {"path": item.path})
        for item in expired(sets, o.db, o.retention_count, o.retention_days, now)
    ]


def adopt_steps(src: str, dump: PlainDump, scratch: str, path: str) -> list[Step]:
    """The adoption of src as the set path, through the scratch database."""
    return [
        Step(f"read {src} to its end: a complete pg_dump plain dump of {len(dump.tables)} tables"),
        Step(f"create database {scratch} and run the dump in it with psql -X -v ON_ERROR_STOP=1 --single-transaction"),
        Step(f"compare {scratch}'s row counts and sequences with the dump's COPY data and setval calls"),
        Step(f"back {scratch} up as {path}, verified like every backup, recording {src}'s sha256"),
        Step(f"drop {scratch}"),
    ]


def summary(sets: list[BackupSet], db: str, now: float) -> tuple[list[dict[str, t.Any]], list[str]]:
    """The sets of db for the result, and the paths of every set that does not check out."""
    mine = [s.as_dict(now) for s in sets if s.database == db]
    return mine, [s.path for s in sets if not s.verified]


def freshness(best: BackupSet | None, now: float, o: Options) -> tuple[dict[str, t.Any], str]:
    """The check's fields on the newest verified set (newest, age_hours, stale) and its warning ("" for none)."""
    fields: dict[str, t.Any] = {}
    age = None if best is None else (now - (best.finished or now)) / 3600
    if best is not None:
        fields.update(newest=best.as_dict(now), age_hours=round(age or 0.0, 4))
    warning = ""
    if o.max_age_hours is not None:
        fields["stale"] = age is None or age > o.max_age_hours
        if best is None:
            warning = f"There is no verified backup of {o.db} in {o.dest}."
        elif fields["stale"]:
            warning = (
                f"The newest backup of {o.db} ({best.name}) is {fields['age_hours']} hours old, "
                f"over max_age_hours {o.max_age_hours}."
            )
    return fields, warning


def adopted(sets: list[BackupSet], db: str, sha256: str) -> BackupSet | None:
    """The verified set of db already adopted from the file with this sha256."""
    return next((s for s in sets if s.verified and s.database == db and s.origin == sha256), None)


def refusal(src: str, dump: PlainDump, o: Options, server_major: int, live: list[str] | None, roles: set[str]) -> str:
    """Why the dump may not be adopted as a backup of db on this server (empty when it may)."""
    why = version_refusal(src, dump.server_major, dump.dump_major, server_major, o.server)
    if not why and not o.accept_other_database:
        why = database_refusal(src, dump, o.db, live)
    absent = [role for role in dump.roles if role not in roles]
    if not why and absent:
        why = (
            f"The roles {', '.join(absent)}, which {src} gives objects to, do not exist on this server. Create them "
            "first (pg_dumpall --globals-only on the source server has them); nothing was changed."
        )
    return why


# --- operation=check --------------------------------------------------------------------------------------------


def check(module: t.Any, o: Options, rec: Recorder) -> None:
    """The sets of db in dest, the newest re-verified file by file (a damaged one fails the task), its age judged."""
    now = time.time()
    sets, _partials = scan(o.dest)
    backups, unverified = summary(sets, o.db, now)
    rec.result.update(backups=backups, unverified=unverified)
    best = newest(sets, o.db)
    fields, warning = freshness(best, now, o)
    if best is not None:
        manifest = read_manifest(best.path)
        problems = verify_files(best.path, manifest)
        if problems:
            raise BackupError(
                f"The newest backup {best.path} is damaged: {'; '.join(problems)}.", changed=False, **rec.result
            )
        rec.result["manifest"] = manifest
    rec.result.update(fields)
    if warning:
        module.warn(warning)


# --- operation=backup -------------------------------------------------------------------------------------------


def dump(tools: Tools, o: Options, work: str, snapshot: str, source: str) -> tuple[str, dict[str, str | None]]:
    """Writes the dump of database source into work and reads it back in full. Returns its path relative to work,
    and the sha256 of the files whose checksum was taken on the way (no need to read them again)."""
    base = ["--snapshot", snapshot, *tools.conn_args, "-d", source]
    name = label(o.db)
    if o.format == "custom":
        rel = f"{name}.dump"
        digest = tools.must("pg_dump", "-Fc", *base, what="The dump", stdout_path=os.path.join(work, rel))
        if tools.project is None:
            tools.must("pg_restore", "-f", "/dev/null", os.path.join(work, rel), what="Reading the dump back")
        else:
            path = os.path.join(work, rel)
            tools.must("pg_restore", "-f", "/dev/null", what="Reading the dump back", stdin_path=path)
        return rel, {rel: digest}
    rel = f"{name}.dir"
    if tools.project is None:
        tools.must("pg_dump", "-Fd", "-j", str(o.jobs), *base, "-f", os.path.join(work, rel), what="The dump")
        tools.must("pg_restore", "-f", "/dev/null", os.path.join(work, rel), what="Reading the dump back")
        return rel, {}
    # pg_dump in the container writes its directory there; it is read back there, copied out, and the copy must
    # have the checksums the container computed.
    with tools.place.temp_dir() as scratch:
        inside = f"{scratch}/{rel}"
        tools.must("pg_dump", "-Fd", "-j", str(o.jobs), *base, "-f", inside, what="The dump")
        tools.must("pg_restore", "-f", "/dev/null", inside, what="Reading the dump back")
        sums = tools.output("sh", "-c", 'cd "$1" && find . -type f -exec sha256sum {} +', "sh", inside)
        tools.place.copy_out(inside, os.path.join(work, rel))
    expected = {line.split(None, 1)[1].strip()[2:]: line.split(None, 1)[0] for line in sums.splitlines() if line}
    copied = {path: sha256_file(os.path.join(work, rel, path)) for path in files_under(os.path.join(work, rel))}
    if copied != expected:
        raise BackupError(f"The dump copied out of {tools.where} does not match the checksums computed inside it.")
    known: dict[str, str | None] = {f"{rel}/{path}": digest for path, digest in copied.items()}
    return rel, known


def take(tools: Tools, o: Options, work: str, name: str, source: str | None = None, **extra: t.Any) -> dict[str, t.Any]:
    """The backup of database source (db by default) into work, recorded as a backup of db; extra goes into the
    manifest."""
    started = time.time()
    dump_major, dump_version = tools.version("pg_dump")
    conn = must_connect(o.login, APPLICATION, source or o.db, error=BackupError)
    try:
        if dump_major < conn.server_version // 10000:
            raise BackupError(
                f"pg_dump {dump_major} in {tools.where} cannot dump a PostgreSQL {conn.server_version // 10000} "
                "server; install the matching client, or run it inside the compose service (compose_project_src)."
            )
        if o.sentinel:
            # Committed before the snapshot exists, so the dump has it; a restore drill looks for it.
            with conn.cursor() as cur:
                for statement in SENTINEL_WRITE:
                    cur.execute(statement, (name,) if "%s" in statement else None)
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True, autocommit=False)
        with conn.cursor() as cur:
            cur.execute(DATABASE_INFO)
            snapshot, version, version_num, owner, encoding, collate, ctype = cur.fetchone()
        # The counts come from the snapshot pg_dump dumps, read while it dumps.
        with ThreadPoolExecutor(max_workers=1) as pool:
            counting = pool.submit(catalog, conn)
            try:
                rel, known = dump(tools, o, work, snapshot, source or o.db)
            except BackupError:
                conn.cancel()  # the counts are not needed any more, and may wait on the same lock the dump did
                raise
            recorded = counting.result()
    except DatabaseError as exc:
        raise BackupError(f"Reading database {o.db} failed: {str(exc).strip()}") from None
    finally:
        conn.close()
    globals_rel = None
    if o.globals:
        globals_rel = "globals.sql"
        try:
            known[globals_rel] = tools.must(
                "pg_dumpall",
                "--globals-only",
                *tools.conn_args,
                "-l",
                o.login.db,
                what="Saving the roles (globals=true, which needs a superuser)",
                stdout_path=os.path.join(work, globals_rel),
            )
        except BackupError as exc:
            raise BackupError(f"{exc} Use a superuser, or set globals=false.") from None
        with open(os.path.join(work, globals_rel), encoding="utf-8", errors="replace") as handle:
            if GLOBALS_TRAILER not in handle.read():
                raise BackupError("pg_dumpall's output lacks its closing line; the roles were not saved in full.")
    secure_tree(work)
    fsync_tree(work)
    entries = file_entries(work, known)
    dump_entries = [e for e in entries if e["path"] == rel or e["path"].startswith(f"{rel}/")]
    finished = time.time()
    return seal(
        {
            "manifest_version": 1,
            "tool": "stackops.runbooks.pg_backup",
            "name": name,
            "database": o.db,
            "owner": owner,
            "encoding": encoding,
            "collate": collate,
            "ctype": ctype,
            "source": {
                "host": socket.gethostname(),
                "server": o.server,
                "mode": "host" if tools.project is None else "container",
                "service": tools.service if tools.project else None,
            },
            "server_version": version,
            "server_version_num": int(version_num),
            "dump_version": dump_version,
            "format": o.format,
            "jobs": o.jobs,
            "dump": rel,
            "globals": globals_rel,
            "files": entries,
            "size": sum(e["size"] for e in entries),
            "sha256": dump_entries[0]["sha256"] if o.format == "custom" else combined_sha256(dump_entries),
            "started_at": iso(started),
            "finished_at": iso(finished),
            "started_epoch": started,
            "finished_epoch": finished,
            "duration_s": round(finished - started, 3),
            "verified": ["pg_restore -f /dev/null (full read)", "sha256 of every file"],
            "sentinel": {"table": SENTINEL_TABLE, "token": name} if o.sentinel else None,
            **recorded,
            **extra,
        }
    )


def seal_set(work: str, final: str, dest: str, manifest: dict[str, t.Any]) -> None:
    """The manifest written last, then the set renamed to its final name: only now does it count."""
    write_manifest(work, manifest)
    os.rename(work, final)
    fsync_path(dest)


def made(rec: Recorder, o: Options, final: str, manifest: dict[str, t.Any], **more: t.Any) -> None:
    """The new set in the result, beside the sets of db in dest as they are now."""
    backups, unverified = summary(scan(o.dest)[0], o.db, time.time())
    rec.result.update(
        path=final,
        sha256=manifest["sha256"],
        size=manifest["size"],
        manifest=manifest,
        backups=backups,
        unverified=unverified,
        **more,
    )


def remove(steps: list[Step]) -> None:
    for step in steps:
        remove_tree(step.data["path"])


def backup(module: t.Any, o: Options, rec: Recorder) -> None:
    """A new set of db in dest, then retention; in check mode, the set's path and what retention would remove."""
    # Where the tools run, and that the database is there, are checked before dest, its lock or a partial exist;
    # check mode checks them too, so that it fails where a real run would.
    try:
        tools = Tools(module, o.login, o.client, APPLICATION)
        must_connect(o.login, APPLICATION, o.db, read_only=True, error=BackupError).close()
    except StackopsError as exc:
        raise BackupError(f"The backup of {o.db} failed and nothing was kept: {exc}") from None
    now = time.time()
    sets, _partials = scan(o.dest)
    if module.check_mode:
        name = new_set_name(o.dest, o.db, now)
        planned = BackupSet(name, os.path.join(o.dest, name), o.db, now, 0, None)
        rec.plan(backup_steps(o, os.path.join(o.dest, name + PARTIAL), planned.path))
        gone = retention_steps([planned, *sets], o, now)
        rec.plan(gone)
        backups, unverified = summary(sets, o.db, now)
        rec.result.update(
            path=planned.path,
            removed=[step.data["path"] for step in gone],
            removed_partial=[],
            backups=backups,
            unverified=unverified,
        )
        return
    failed = f"The backup of {o.db} failed and nothing was kept"
    with held(o.dest, o.db, o.lock_timeout, failed) as lock:
        if lock.stale:
            rec.result["stale_lock"] = lock.stale
            module.warn(f"A killed backup run left its lock ({lock.stale}); this run took it over.")
        leftovers = partial_steps(scan(o.dest)[1], o.db)
        rec.plan(leftovers)
        remove(leftovers)
        rec.result["removed_partial"] = [step.data["path"] for step in leftovers]
        name = new_set_name(o.dest, o.db, time.time())
        work, final = os.path.join(o.dest, name + PARTIAL), os.path.join(o.dest, name)
        rec.plan(backup_steps(o, work, final))
        try:
            os.mkdir(work, 0o700)
            manifest = take(tools, o, work, name)
            seal_set(work, final, o.dest, manifest)
        # Any failure, a Docker daemon that stopped answering too (ComposeError), leaves nothing behind.
        except (StackopsError, OSError) as exc:
            remove_tree(work)
            why = f"{exc}{no_space_hint(str(exc), o.dest)}"
            raise BackupError(f"{failed}: {why}") from None
        gone = retention_steps(scan(o.dest)[0], o, time.time())
        rec.plan(gone)
        remove(gone)
        fsync_path(o.dest)
    made(rec, o, final, manifest, removed=[step.data["path"] for step in gone])


# --- operation=adopt --------------------------------------------------------------------------------------------


def drop_leftovers(admin: t.Any) -> list[str]:
    """Scratch databases of adopt runs that were killed: no session holds their advisory lock any more."""
    gone = []
    for found in rows(admin, LEFTOVERS, (f"{SCRATCH_COMMENT}%",)):
        name = found["datname"]
        if rows(admin, SCRATCH_LOCK, (APPLICATION, name))[0]["pg_try_advisory_lock"]:
            drop_database(admin, name)
            gone.append(name)
    return gone


def trial(tools: Tools, o: Options, admin: t.Any, dump: PlainDump, scratch: str) -> None:
    """The dump restored into scratch, with the rows and sequences it holds; BackupError when not."""
    live = rows(admin, DATABASE_SETTINGS, (o.db,))
    options = database_options(dump, live[0] if live else {})
    create_database(admin, scratch, options, f"{SCRATCH_COMMENT} of {o.src}, pid {os.getpid()}")
    load_plain(tools, o.src, scratch)
    conn = must_connect(o.login, APPLICATION, scratch, error=BackupError)
    try:
        problems = compare(expected_of(dump), catalog(conn))
    finally:
        conn.close()
    if problems:
        raise BackupError(f"The trial restore does not hold what the dump does: {'; '.join(problems)}.")


def live_tables(o: Options, admin: t.Any) -> list[str] | None:
    """The tables of db on the server, None when there is no such database."""
    if not rows(admin, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (o.db,)):
        return None
    conn = must_connect(o.login, APPLICATION, o.db, read_only=True, error=BackupError)
    try:
        return [r["name"] for r in rows(conn, TABLE_NAMES)]
    finally:
        conn.close()


def adopt(module: t.Any, o: Options, rec: Recorder) -> None:
    """Checks the dump and the server, plans, and (not in check mode) converts; nothing changes on a refusal."""
    dump, origin = read_plain(o.src)
    dumped_at = os.path.getmtime(o.src)
    with connected(o.login, APPLICATION, error=BackupError) as admin:
        roles = {r["rolname"] for r in rows(admin, "SELECT rolname FROM pg_catalog.pg_roles")}
        why = refusal(o.src, dump, o, admin.server_version // 10000, live_tables(o, admin), roles)
        if why:
            raise BackupError(why)
        sets, _partials = scan(o.dest)
        backups, unverified = summary(sets, o.db, time.time())
        rec.result.update(
            adopted={**origin, **dump.facts(), "dumped_at": iso(dumped_at)}, backups=backups, unverified=unverified
        )
        done = adopted(sets, o.db, origin["sha256"])
        if done is not None:
            rec.result["path"] = done.path
            return
        scratch = f"stackops_adopt_{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_{os.getpid()}"
        name = new_set_name(o.dest, o.db, dumped_at)
        rec.result["path"] = os.path.join(o.dest, name)
        if rec.plan(adopt_steps(o.src, dump, scratch, name)):
            convert(module, o, rec, admin, dump, scratch)


def convert(module: t.Any, o: Options, rec: Recorder, admin: t.Any, dump: PlainDump, scratch: str) -> None:
    """The trial restore into scratch, and its backup as a set of db; scratch is always dropped again."""
    adoption = rec.result["adopted"]
    tools = Tools(module, o.login, o.client, APPLICATION)
    why = client_refusal("psql", tools.version("psql")[0], dump.dump_major, o.src, tools.where)
    if why:
        raise BackupError(why)
    with held(o.dest, o.db, o.lock_timeout, f"The adoption of {o.src} failed and nothing was kept"):
        done = adopted(scan(o.dest)[0], o.db, adoption["sha256"])
        if done is not None:
            # Another run adopted it while this one waited for the lock: this one did nothing after all.
            rec.commands.clear()
            rec.changed = False
            rec.result["path"] = done.path
            return
        rec.result["dropped"] = drop_leftovers(admin)
        rows(admin, SCRATCH_LOCK, (APPLICATION, scratch))
        name = new_set_name(o.dest, o.db, os.path.getmtime(o.src))
        work, final = os.path.join(o.dest, name + PARTIAL), os.path.join(o.dest, name)
        started = time.time()
        try:
            trial(tools, o, admin, dump, scratch)
            os.mkdir(work, 0o700)
            dumped_at = os.path.getmtime(o.src)
            manifest = take(
                tools,
                o,
                work,
                name,
                scratch,
                adopted_from=adoption,
                started_at=iso(dumped_at),
                finished_at=iso(dumped_at),
                started_epoch=dumped_at,
                finished_epoch=dumped_at,
                adopted_at=iso(started),
                duration_s=round(time.time() - started, 3),
            )
            seal_set(work, final, o.dest, manifest)
        except (StackopsError, OSError, DatabaseError) as exc:
            remove_tree(work)
            why = f"{str(exc).strip()}{no_space_hint(str(exc), o.dest)}"
            raise BackupError(f"Adopting {o.src} failed and nothing was kept: {why}") from None
        finally:
            drop_database(admin, scratch)
    made(rec, o, final, manifest)
