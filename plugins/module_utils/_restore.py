# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""pg_restore's operations: restore (beside the live database, proven, then swapped in), drill, revert and cleanup.
Each reads the backup and the server, plans with the pure functions of _restore_plan.py, and carries the plan out
through one Recorder (module_utils/_operation), whose audit list is the result's `plan`; check mode stops after the
plan."""

from __future__ import annotations

import os
import time
import typing as t
from collections.abc import Mapping

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import (
    BackupError,
    newest,
    read_manifest,
    scan,
    verify_files,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder, Step
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import (
    DATABASE_SETTINGS,
    GLOBALS_TRAILER,
    TABLE_NAMES,
    Tools,
    catalog,
    client_refusal,
    create_database,
    database_refusal,
    drop_database,
    load_plain,
    read_plain,
    role_statements,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    DatabaseError,
    must_connect,
    reset_statistics,
    rows,
    sql,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._proofs import (
    amcheck,
    manifest_proofs,
    proof,
    sentinel,
    smoke,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._restore_plan import (
    Options,
    Target,
    beyond_kept,
    copy_to_revert,
    like_literal,
    majors,
    older_server_refusal,
    plain_manifest,
    plain_source,
    plan_cleanup,
    plan_restore,
    plan_revert,
)

APPLICATION = "stackops-pg_restore"
SCRATCH_COMMENT = "stackops.runbooks.pg_restore scratch"
SESSIONS = (
    "SELECT pid, usename, application_name, client_addr::text AS client FROM pg_catalog.pg_stat_activity "
    "WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid() AND pid <> ALL(%s::int[])"
)
SCRATCHES = (
    "SELECT d.datname FROM pg_catalog.pg_database d JOIN pg_catalog.pg_shdescription s "
    "ON s.objoid = d.oid AND s.classoid = 'pg_catalog.pg_database'::regclass "
    "WHERE s.description LIKE %s AND d.datname LIKE %s"
)


def stamp() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime())


class Laps:
    """The seconds of a restore's phases, one after the other (RV(elapsed)): each lap ends where the next starts."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.last = time.monotonic()

    def __call__(self, phase: str) -> None:
        now = time.monotonic()
        self.times[phase], self.last = now - self.last, now

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.times.items()}


# --- reading the backup and the server ------------------------------------------------------------------------------


def locate(o: Options) -> str:
    """The backup directory src names."""
    src = t.cast(str, o.src)
    if not os.path.exists(src):
        raise BackupError(f"src {src} does not exist on this host.")
    if o.pick == "latest":
        sets, _partials = scan(src)
        databases = sorted({s.database for s in sets if s.verified and s.database})
        if o.source_db is None and len(databases) > 1:
            raise BackupError(f"{src} holds backups of {', '.join(databases)}; set source_db to pick among them.")
        best = newest(sets, o.source_db)
        if best is None:
            raise BackupError(f"{src} holds no verified backup{' of ' + o.source_db if o.source_db else ''}.")
        return best.path
    return os.path.normpath(src if os.path.isdir(src) else os.path.dirname(src))


def prove(root: str, manifest: dict[str, t.Any]) -> dict[str, t.Any]:
    problems = verify_files(root, manifest)
    if manifest.get("globals"):
        with open(os.path.join(root, manifest["globals"]), encoding="utf-8", errors="replace") as handle:
            if GLOBALS_TRAILER not in handle.read():
                problems.append(f"{manifest['globals']} lacks pg_dumpall's closing line")
    if problems:
        raise BackupError(
            f"The backup {root} is refused, nothing was changed: {'; '.join(problems)}. "
            "Restore another backup (pick=latest skips none but the newest verified one; name one in src)."
        )
    return {"files": f"{len(manifest['files'])} files match their sha256"}


def inspect(o: Options, admin: t.Any) -> Target:
    found = rows(admin, DATABASE_SETTINGS, (o.db,))
    if not found:
        return Target(exists=False)
    conn = must_connect(o.login, APPLICATION, o.db, read_only=True, error=BackupError)
    try:
        tables = sorted(r["name"] for r in rows(conn, TABLE_NAMES))
        # The server ends this connection's backend a moment after close(): it is no session of anyone else's.
        own = [conn.get_backend_pid()]
    finally:
        conn.close()
    return Target(exists=True, tables=tables, sessions=rows(admin, SESSIONS, (o.db, own)), settings=found[0])


def source_of(o: Options, admin: t.Any, target: Target) -> tuple[str, dict[str, t.Any], dict[str, t.Any]]:
    """The backup (directory, or plain dump), its manifest and what proved it; refused before anything changes
    when it is damaged, of a newer server, or (a plain dump) of another database."""
    path = plain_source(t.cast(str, o.src), o.pick)
    if path is None:
        root = locate(o)
        manifest = read_manifest(root)
        checks = prove(root, manifest)
    else:
        dump, origin = read_plain(path)
        root, manifest = path, plain_manifest(path, dump, origin, target)
        expected = o.source_db or (None if o.drill else o.db)
        why = (
            ""
            if expected is None or o.accept_other_database
            else database_refusal(path, dump, expected, target.tables if target.exists else None)
        )
        if why:
            raise BackupError(why)
        checks = {"files": f"read to its end: a complete pg_dump plain dump, sha256 {origin['sha256']}"}
    why = older_server_refusal(o, root, manifest, admin.server_version // 10000)
    if why:
        raise BackupError(why)
    return root, manifest, checks


def client(module: t.Any, o: Options, src: str, manifest: dict[str, t.Any]) -> Tools:
    """The pg_restore (psql, for a plain dump) to use, refused when it is older than what the backup needs."""
    tools = Tools(module, o.login, o.client, APPLICATION)
    program = "psql" if manifest.get("plain") else "pg_restore"
    major, _text = tools.version(program)
    server, dump = majors(manifest)
    why = client_refusal(program, major, max(m for m in (server, dump, 0) if m is not None), src, tools.where)
    if why:
        raise BackupError(why)
    return tools


def missing_roles(o: Options, root: str, manifest: dict[str, t.Any], admin: t.Any) -> tuple[list[str], list[str]]:
    """The statements creating the backup's roles this server lacks, and their names; BackupError when the owner
    would still be missing."""
    existing = {r["rolname"] for r in rows(admin, "SELECT rolname FROM pg_catalog.pg_roles")}
    if manifest.get("plain"):
        needed = sorted(set(manifest["plain"]["roles"]) | ({manifest["owner"]} if manifest["owner"] else set()))
        absent = [role for role in needed if role not in existing]
        if absent:
            raise BackupError(
                f"The roles {', '.join(absent)}, which {root} gives objects to, do not exist on this server. Create "
                "them first (pg_dumpall --globals-only on the source server has them); nothing was changed."
            )
        return [], []
    statements: list[str] = []
    roles: list[str] = []
    if o.restore_globals and manifest.get("globals"):
        with open(os.path.join(root, manifest["globals"]), encoding="utf-8") as handle:
            statements, roles = role_statements(handle.read(), existing)
    if manifest["owner"] not in existing | set(roles):
        raise BackupError(
            f"Role {manifest['owner']}, owner of the backed-up database, does not exist on this server; create it, or "
            "set restore_globals=true (with a backup that has globals). Nothing was changed."
        )
    return statements, roles


# --- carrying it out ------------------------------------------------------------------------------------------------


class Restore:
    """The admin session (on login_db) of one run, which holds the target's advisory lock from lock() on."""

    def __init__(self, o: Options, admin: t.Any) -> None:
        self.o, self.admin = o, admin
        self.db = o.db

    def execute(self, query: t.Any, args: t.Any = None) -> None:
        with self.admin.cursor() as cur:
            cur.execute(query, args)

    def drop(self, name: str) -> None:
        drop_database(self.admin, name)

    def lock(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(
                "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext(%s), pg_catalog.hashtext(%s))",
                (APPLICATION, self.db),
            )
            if not cur.fetchone()[0]:
                raise BackupError(f"Another pg_restore of {self.db} is running on this server; wait for it to finish.")

    def drop_scratches(self) -> list[str]:
        """New databases of runs that were killed before they swapped or cleaned up (the lock says none runs)."""
        mine = f"{like_literal(self.db)}\\_restore\\_%"
        found = [r["datname"] for r in rows(self.admin, SCRATCHES, (f"{SCRATCH_COMMENT}%", mine))]
        for name in found:
            self.drop(name)
        return found

    def in_transaction(self, what: str, statements: list[t.Any]) -> None:
        """All the statements or none of them."""
        self.admin.autocommit = False
        try:
            with self.admin.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
            self.admin.commit()
        except DatabaseError as exc:
            self.admin.rollback()
            raise BackupError(f"{what} failed: {str(exc).strip()}") from None
        finally:
            self.admin.autocommit = True

    def create(self, scratch: str, manifest: dict[str, t.Any]) -> None:
        comment = f"{SCRATCH_COMMENT} for {self.db}, pid {os.getpid()}, from {manifest['name']}"
        create_database(self.admin, scratch, manifest, comment)

    def load(self, tools: Tools, root: str, manifest: dict[str, t.Any], scratch: str) -> None:
        path = os.path.join(root, manifest["dump"])
        if manifest.get("plain"):
            load_plain(tools, path, scratch)
            return
        args = ["--exit-on-error", "-j", str(self.o.jobs), *tools.conn_args, "-d", scratch]
        if tools.project is None:
            tools.must("pg_restore", *args, path, what="The restore")
            return
        with tools.place.temp_dir() as inside:
            tools.place.copy_in(path, f"{inside}/")
            tools.must("pg_restore", *args, f"{inside}/{os.path.basename(path)}", what="The restore")

    def check(
        self, scratch: str, manifest: dict[str, t.Any], proofs: list[dict[str, t.Any]]
    ) -> tuple[dict[str, t.Any], dict[str, int]]:
        """ANALYZE, then the manifest's counts, then the sentinel, amcheck and smoke queries as asked; every proof
        is appended to proofs, and the first failed one fails the run."""
        conn = must_connect(self.o.login, APPLICATION, scratch, error=BackupError)
        try:
            with conn.cursor() as cur:
                cur.execute("ANALYZE")
                found = catalog(conn)
                compared = manifest_proofs(manifest, found)
                proofs += compared
                problems = [p["detail"] for p in compared if p["passed"] is False]
                if problems:
                    raise BackupError(f"The restored data does not match the backup's manifest: {'; '.join(problems)}.")
                proofs.append(sentinel(cur, manifest, self.o.require_sentinel))
                if self.o.amcheck:
                    proofs.append(amcheck(cur))
            conn.set_session(readonly=True, autocommit=False)
            with conn.cursor() as cur:
                proofs += [smoke(cur, dict(query)) for query in self.o.smoke_queries]
            failed = [f"{p['name']}: {p['detail']}" for p in proofs if p["passed"] is False]
            if failed:
                raise BackupError(f"The restored database failed its checks: {'; '.join(failed)}.")
            reset = self.o.operation == "restore" and reset_statistics(conn)
        finally:
            conn.close()
        details = {p["name"]: p["detail"] for p in compared}
        return {
            "tables": details["row_counts"],
            "objects": found["objects"],
            "sequences": details["sequences"],
            "analyze": True,
            "statistics_reset": reset,
        }, found["tables"]

    def swap(self, scratch: str, previous: str | None) -> None:
        db = sql.Identifier(self.db)
        if previous and self.o.terminate_connections:
            self.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(db))
            self.execute(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()",
                (self.db,),
            )
        renames = [sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(scratch), db)]
        if previous:
            renames.insert(0, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(db, sql.Identifier(previous)))
        try:
            self.in_transaction(
                f"Swapping {scratch} in as {self.db}", [*renames, sql.SQL("COMMENT ON DATABASE {} IS NULL").format(db)]
            )
        finally:
            if previous and self.o.terminate_connections:
                renamed = previous if self.exists(previous) else self.db
                self.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(renamed)))

    def exists(self, name: str) -> bool:
        return bool(rows(self.admin, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,)))

    def databases(self) -> list[str]:
        return [r["datname"] for r in rows(self.admin, "SELECT datname FROM pg_catalog.pg_database")]

    def prune(self, keep: int) -> list[str]:
        gone = beyond_kept(self.db, self.databases(), keep)
        for name in gone:
            self.drop(name)
        return gone


def carry_out(
    run: Restore,
    steps: list[Step],
    tools: Tools,
    source: tuple[str, dict[str, t.Any]],
    names: tuple[str, str | None],
    rec: Recorder,
    laps: Laps,
) -> None:
    """The restore's or drill's plan (its steps' phases, in order). A failure after the new database is created
    drops it again and leaves O(db) as it was."""
    (root, manifest), (scratch, previous), o = source, names, run.o
    phases: dict[str, Mapping[str, t.Any]] = {}
    for step in steps:
        if "phase" in step.data:
            phases.setdefault(step.data["phase"], step.data)
    result = rec.result
    run.lock()
    result["dropped"] = run.drop_scratches()
    if "roles" in phases:
        run.in_transaction("Creating the backup's roles", list(phases["roles"]["sql"]))
    run.create(scratch, manifest)
    try:
        run.load(tools, root, manifest, scratch)
        laps("restore")
        more, counts = run.check(scratch, manifest, result["proofs"])
        laps("check")
        if "swap" in phases:
            run.swap(scratch, previous)
            laps("swap")
    except (StackopsError, DatabaseError) as exc:
        run.drop(scratch)
        what = "The drill of" if o.drill else "The restore of"
        kept = f"{scratch} was dropped" if o.drill else f"{o.db} is as it was ({scratch} was dropped)"
        raise BackupError(
            f"{what} {root} failed and {kept}: {str(exc).strip()}",
            roles_created=result["roles_created"],
            proofs=result["proofs"],
            dropped=[*result["dropped"], scratch],
            elapsed=laps.rounded(),
        ) from None
    laps.times["total"] = sum(laps.times.values())
    if "drop" in phases:
        run.drop(scratch)
        result["dropped"].append(scratch)
    if "prune" in phases:
        result["dropped"] += run.prune(t.cast(int, o.keep_previous))
    laps("cleanup")
    result["checks"].update(more)
    result.update(row_counts=counts, elapsed=laps.rounded())


def restore(module: t.Any, o: Options, admin: t.Any, rec: Recorder) -> None:
    """operation=restore or drill."""
    laps = Laps()
    target = Target(exists=False) if o.drill else inspect(o, admin)
    root, manifest, checks = source_of(o, admin, target)
    laps("verify")
    when = stamp()
    scratch, previous = f"{o.db}_restore_{when}", f"{o.db}_pre_restore_{when}"
    statements, roles = missing_roles(o, root, manifest, admin)
    plain = bool(manifest.get("plain"))
    steps = plan_restore(o, root, target, scratch, previous, roles, plain, statements)
    rec.result.update(
        src=root,
        restored_db=scratch if o.drill else o.db,
        previous_db=previous if target.exists else None,
        checks=checks,
        proofs=[proof("checksums", True, checks["files"])],
        roles_created=roles,
        manifest={k: v for k, v in manifest.items() if k not in ("files", "tables", "sequences")},
        dropped=[],
    )
    tools = client(module, o, root, manifest)
    if rec.plan(steps):
        replaced = previous if target.exists else None
        carry_out(Restore(o, admin), steps, tools, (root, manifest), (scratch, replaced), rec, laps)


def revert(module: t.Any, o: Options, admin: t.Any, rec: Recorder) -> None:
    """operation=revert: the newest earlier copy becomes O(db) again; O(db) is kept as `<db>_reverted_<time>`."""
    run = Restore(o, admin)
    copy = copy_to_revert(o.db, run.databases())
    target = inspect(o, admin)
    aside = f"{o.db}_reverted_{stamp()}"
    steps = plan_revert(o, copy, target, aside)
    rec.result.update(restored_db=o.db, previous_db=aside, dropped=[])
    if rec.plan(steps):
        run.lock()
        run.swap(copy, aside if target.exists else None)


def cleanup(module: t.Any, o: Options, admin: t.Any, rec: Recorder) -> None:
    """operation=cleanup: drops the earlier copies beyond the newest O(keep_previous)."""
    run = Restore(o, admin)
    steps = plan_cleanup(beyond_kept(o.db, run.databases(), t.cast(int, o.keep_previous)))
    rec.result["dropped"] = [step.data["name"] for step in steps]
    if rec.plan(steps):
        for step in steps:
            run.drop(step.data["name"])


OPERATIONS: dict[str, t.Callable[[t.Any, Options, t.Any, Recorder], None]] = {
    "restore": restore,
    "drill": restore,
    "revert": revert,
    "cleanup": cleanup,
}
