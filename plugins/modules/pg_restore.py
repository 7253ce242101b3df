#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_restore
short_description: Restore a pg_backup backup beside the live database, prove it, then swap names
version_added: 0.1.0
description:
  - Restores a backup taken by M(stackops.runbooks.pg_backup) so that a failure cannot harm the database in place.
  - First the backup is proven. Its manifest must check out and every file must have the size and sha256 the
    manifest records. An unfinished (C(.partial)), damaged or manifest-less backup is refused before the server is
    touched.
  - The roles the backup's C(globals.sql) has and the server lacks are created (O(restore_globals)); roles the
    server has are left as they are.
  - The dump is restored into a new database C(<db>_restore_<time>) with C(pg_restore --exit-on-error), so the
    first SQL error fails the run. The new database is analysed, and its exact row count of every table, its
    counts of tables, indexes, sequences and views, and its sequence values must equal the manifest's.
  - Only then are the names swapped, in one transaction. The database that was O(db) becomes
    C(<db>_pre_restore_<time>) and stays until a later run drops it (O(keep_previous)). On any failure before the
    swap, the new database is dropped and O(db) is as it was.
  - A target O(db) that holds tables is replaced only with O(force=true), and one with connected sessions only with
    O(terminate_connections=true); without them the run fails before it changes anything. One restore at a time
    per O(db) (an advisory lock on the server); new databases left by a killed run are found by their comment
    and dropped.
  - O(src) may also be a plain-SQL dump made by hand (C(pg_dump db > backup_YYYYMMDD.sql), gzipped or not). It is
    read to its end first and must be a complete C(pg_dump) plain dump (its closing line
    C(-- PostgreSQL database dump complete) present). It is run with C(psql -X -v ON_ERROR_STOP=1
    --single-transaction) in the new database, whose row counts and sequences must then equal the dump's C(COPY)
    data and C(setval) calls; the rest (checks, swap, the old database kept) is as for a backup. Statements about
    the database itself, which C(pg_dump -C) writes (C(CREATE/ALTER/DROP DATABASE), C(\connect)), are held back.
    The roles the dump gives objects to must exist. Owner, encoding and locale come from the dump when it was made
    with C(-C), else from the O(db) it replaces (else the server's defaults and O(login_user)).
  - A plain dump of another database is refused (O(accept_other_database)). One made with C(-C) names its
    database, which must be O(source_db) (O(db) when not set). One made without names none, and is refused when
    O(db) holds tables and the dump creates none of them.
  - A backup or dump of a newer PostgreSQL major version than the target server's (its server's or its
    C(pg_dump)'s) is refused before anything changes, naming both versions; restore it onto a server of that
    version or later. An older one (PostgreSQL 15 onto 17) is restored as usual.
  - O(operation=cleanup) restores nothing; it drops the C(<db>_pre_restore_*) databases beyond the newest
    O(keep_previous), and as many C(<db>_reverted_*) ones.
  - O(operation=revert) undoes the last restore when the application turns out not to work on it. The newest
    C(<db>_pre_restore_<time>) becomes O(db) again, in one transaction, and the restored database is kept as
    C(<db>_reverted_<time>).
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.postgres.tools
  - stackops.runbooks.compose.project
  - stackops.runbooks.attributes
options:
  src:
    description:
      - The backup, on the managed host. A backup directory (the one with C(manifest.json)) or a file in it, or,
        with O(pick=latest), the O(stackops.runbooks.pg_backup#module:dest) directory that holds backups.
      - Or a plain-SQL dump file (C(.sql), or gzipped C(.sql.gz), recognised by its content) that is not in a
        backup directory.
      - Required with O(operation=restore).
    type: path
  pick:
    description:
      - V(latest) restores the newest verified backup in O(src) (of O(source_db), when backups of several databases
        share the directory).
    type: str
    choices: [latest]
  source_db:
    description:
      - With O(pick), the database whose backups to pick from.
      - With a plain-SQL dump in O(src), the database it is of, when it is restored under another name (O(db)).
    type: str
  accept_other_database:
    description:
      - Restore a plain-SQL dump that seems to be of another database than O(source_db) (or O(db)); see the
        description for the rule.
    type: bool
    default: false
  db:
    description:
      - The database the backup becomes. It may be another name than the backed-up one, and another server (a
        restore drill). O(login_db) must be another database, since a session cannot rename the one it is in.
    type: str
    required: true
  operation:
    description:
      - V(restore) restores O(src) as O(db).
      - V(cleanup) drops the earlier copies C(<db>_pre_restore_<time>) beyond the newest O(keep_previous), and the
        C(<db>_reverted_<time>) ones beyond as many.
      - V(revert) puts the newest earlier copy back as O(db).
      - V(drill) proves the backup can be restored, and replaces nothing. It restores into C(<db>_restore_<time>),
        runs every check, and always drops that database again, also when a step fails. O(db) is only the name's
        base; a database of that name is never touched.
    type: str
    choices: [restore, drill, cleanup, revert]
    default: restore
  force:
    description:
      - Replace an O(db) that holds tables. It is not destroyed; it is kept as C(<db>_pre_restore_<time>).
    type: bool
    default: false
  terminate_connections:
    description:
      - End the sessions connected to O(db) right before the swap (and refuse new ones meanwhile). Without it, a
        connected O(db) fails the run before the restore starts; stop the application first.
    type: bool
    default: false
  keep_previous:
    description:
      - After a successful restore (or with O(operation=cleanup)), drop the C(<db>_pre_restore_<time>) databases
        beyond the newest this many. V(0) drops them all. Not set, they are all kept.
    type: int
  require_sentinel:
    description:
      - Fail when the backup has no sentinel row (taken without O(stackops.runbooks.pg_backup#module:sentinel)).
        Without it such a backup's sentinel check is reported as skipped. A backup with a sentinel always has it
        checked.
    type: bool
    default: false
  amcheck:
    description:
      - Before the swap (or the drill's drop), check every B-tree index with C(bt_index_check(index, true)), which
        also proves every table row is in its indexes, and every table with C(verify_heapam) (PostgreSQL 14 and
        later). The C(amcheck) extension is created in the restored database when missing. Asked for and unable to
        run (the extension cannot be created, or its functions may not be called, as for a login that is not a
        superuser or on a server without PostgreSQL's contrib modules), the C(amcheck) proof fails, naming the
        cause and the fix; it is never skipped.
    type: bool
    default: false
  smoke_queries:
    description:
      - Queries run read-only in the restored database before the swap, each C({name, query, expect}). With a
        list as C(expect), the rows must equal it; with a scalar, the first column of the first row must (compared
        as text); without C(expect), the query must succeed and return at least one row (C(expect=[]) says no rows
        is the answer). A failed query or answer fails the run before the swap. Names must differ, and C(name),
        C(query) and C(expect) are the only keys.
    type: list
    elements: dict
    default: []
  restore_globals:
    description:
      - Create the roles of the backup's C(globals.sql) that this server lacks, before the restore, so that owners
        and grants exist. Roles this server has are not changed (their passwords stay).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Verifies the backup and the target, and reports the plan (RV(plan)); changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each restore replaces O(db) and reports a change. O(operation=cleanup) changes only when there is
      something to drop.
  platform:
    platforms: posix
notes:
  - The backup must be on the managed host. In container mode it is copied into the service for the restore and
    removed afterwards; a plain dump is streamed into C(psql)'s standard input instead.
  - O(jobs) does not apply to a plain dump, which C(psql) runs in one session.
  - Database-level settings (C(ALTER DATABASE ... SET)) and grants on the database itself are not in a
    C(pg_dump) backup; the new database has the backed-up owner, encoding and locale.
seealso:
  - module: stackops.runbooks.pg_backup
"""

EXAMPLES = r"""
- name: Restore the newest backup over the live database, keeping the old one
  stackops.runbooks.pg_restore:
    src: /var/backups/postgres
    pick: latest
    db: app
    force: true
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    compose_project_src: /srv/app
  register: restored

- name: Drill - restore a given backup on another server under another name
  stackops.runbooks.pg_restore:
    src: /srv/drill/app-20261123T020000Z
    db: app_drill
    login_host: drill.internal
    login_password: "{{ drill_pg_password }}"

- name: Restore drill - prove the newest backup on a scratch server, with checks, and drop it again
  stackops.runbooks.pg_restore:
    operation: drill
    src: /srv/drill/copies/db1
    pick: latest
    db: db1_app
    login_host: drill.internal
    login_password: "{{ drill_pg_password }}"
    amcheck: true
    require_sentinel: true
    smoke_queries:
      - name: customers
        query: SELECT count(*) > 0 FROM app.customers
        expect: true
  register: drill

- name: A day later, drop the copies kept by earlier restores
  stackops.runbooks.pg_restore:
    operation: cleanup
    db: app
    keep_previous: 0
    login_password: "{{ pg_password }}"

- name: Restore a dump made by hand with pg_dump, beside the live database, then swap
  stackops.runbooks.pg_restore:
    src: /var/backups/postgres/legacy/backup_20240115.sql.gz
    db: app
    force: true
    terminate_connections: true
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    compose_project_src: /srv/app
"""

RETURN = r"""
src:
  description: The backup restored (or that would be).
  returned: with O(operation=restore)
  type: str
  sample: /var/backups/postgres/app-20261123T020000Z
restored_db:
  description:
    - The database that now holds the backup, or with O(operation=revert) the earlier copy (O(db)).
    - With O(operation=drill), the database the drill restored into and dropped.
  returned: with O(operation=restore), V(drill) or V(revert)
  type: str
  sample: app
previous_db:
  description: What the replaced O(db) is now called; null when O(db) did not exist.
  returned: with O(operation=restore) or V(revert)
  type: str
  sample: app_pre_restore_20261123101500
row_counts:
  description: Exact rows per table of the restored database, equal to the manifest's.
  returned: after a restore
  type: dict
  sample: {app.customers: 20000}
checks:
  description: What was proven before the swap.
  returned: with O(operation=restore)
  type: dict
  sample:
    files: 2 files match their sha256
    tables: 8 tables with the backup's row counts
    objects: {tables: 8, indexes: 18, sequences: 7, views: 1}
    sequences: 7 sequences at the backup's values
    analyze: true
    statistics_reset: true
plan:
  description: The steps, in order (those a real run would take, in check mode).
  returned: always
  type: list
  elements: str
proofs:
  description:
    - Every check, in order, as C({name, passed, detail}), each one comparison; C(passed) is null for a skipped
      one. Names are C(checksums), C(row_counts), C(objects), C(sequences), C(sentinel), C(amcheck) and
      C(smoke:<name>).
    - C(row_counts), C(objects) and C(sequences) each pass or fail on their own part of the comparison with the
      manifest; C(objects) is skipped for a plain dump, which records no object counts. The only other skipped
      check is the C(sentinel) of a backup without one, when O(require_sentinel) is false.
    - Also returned when the run fails, up to the failed check.
  returned: with O(operation=restore) or V(drill)
  type: list
  elements: dict
  sample:
    - name: sentinel
      passed: true
      detail: row app-20261123T020000Z written at 2026-11-23 02:00:00+00 before the backup is in the restored data
roles_created:
  description: Roles created from the backup's globals.
  returned: with O(operation=restore)
  type: list
  elements: str
dropped:
  description: Earlier C(<db>_pre_restore_*) copies, and new databases of killed runs, that were dropped.
  returned: always
  type: list
  elements: str
manifest:
  description:
    - The restored backup's manifest, without its file list.
    - For a plain-SQL dump, what restore read from it, C(plain) holding the file's path, sha256, size,
      compression, the versions it was dumped from and by, its database (with C(-C)) and the database-level
      statements held back.
  returned: with O(operation=restore)
  type: dict
elapsed:
  description:
    - Seconds spent verifying, restoring, checking and swapping; C(total) is their sum, the recovery time.
    - C(cleanup) is the time after the swap spent dropping earlier copies (O(keep_previous)).
  returned: after a restore
  type: dict
  sample: {verify: 0.1, restore: 3.2, check: 0.6, swap: 0.1, total: 4.1, cleanup: 0.0}
"""

import os
import re
import time
import typing as t
from dataclasses import dataclass, field

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import (
    MANIFEST,
    BackupError,
    newest,
    read_manifest,
    scan,
    verify_files,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import (
    DATABASE_SETTINGS,
    GLOBALS_TRAILER,
    TABLE_NAMES,
    PlainDump,
    Tools,
    catalog,
    client_refusal,
    create_database,
    database_options,
    database_refusal,
    drop_database,
    expected_of,
    load_plain,
    major_of,
    read_plain,
    role_statements,
    tools_argument_spec,
    version_refusal,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    DatabaseError,
    check_database_name,
    connected,
    connection_argument_spec,
    ensure_libs,
    must_connect,
    reset_statistics,
    rows,
    sql,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._proofs import (
    amcheck,
    check_smoke_spec,
    manifest_proofs,
    proof,
    sentinel,
    smoke,
)

APPLICATION = "stackops-pg_restore"
SCRATCH_COMMENT = "stackops.runbooks.pg_restore scratch"
MAX_NAME = 63
SESSIONS = (
    "SELECT pid, usename, application_name, client_addr::text AS client FROM pg_catalog.pg_stat_activity "
    "WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid() AND pid <> ALL(%s::int[])"
)
SCRATCHES = (
    "SELECT d.datname FROM pg_catalog.pg_database d JOIN pg_catalog.pg_shdescription s "
    "ON s.objoid = d.oid AND s.classoid = 'pg_catalog.pg_database'::regclass "
    "WHERE s.description LIKE %s AND d.datname LIKE %s"
)


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(tools_argument_spec())
    spec.update(
        src={"type": "path"},
        pick={"type": "str", "choices": ["latest"]},
        source_db={"type": "str"},
        db={"type": "str", "required": True},
        operation={"type": "str", "choices": ["restore", "drill", "cleanup", "revert"], "default": "restore"},
        force={"type": "bool", "default": False},
        terminate_connections={"type": "bool", "default": False},
        keep_previous={"type": "int"},
        restore_globals={"type": "bool", "default": True},
        require_sentinel={"type": "bool", "default": False},
        amcheck={"type": "bool", "default": False},
        smoke_queries={"type": "list", "elements": "dict", "default": []},
        accept_other_database={"type": "bool", "default": False},
    )
    return spec


@dataclass
class Target:
    """O(db) on the server as this run found it."""

    exists: bool
    tables: list[str] = field(default_factory=list)
    sessions: list[dict[str, t.Any]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # owner, encoding, collate, ctype


def like_literal(text: str) -> str:
    """text matched literally by LIKE: a database named `%` must not match every scratch database."""
    return re.sub(r"([\\%_])", r"\\\1", text)


def check_inputs(p: dict[str, t.Any]) -> None:
    check_database_name(p["db"], "db", new=True)
    if p["login_db"] == p["db"]:
        raise BackupError(
            f"login_db is {p['db']}, the database being replaced; a session cannot rename the database it is "
            "connected to. Set login_db to another database (postgres)."
        )
    if p["keep_previous"] is not None and p["keep_previous"] < 0:
        raise BackupError(f"keep_previous must be 0 or more, not {p['keep_previous']}.")
    if p["operation"] == "revert":
        return
    if p["operation"] == "cleanup":
        if p["keep_previous"] is None:
            raise BackupError("operation=cleanup needs keep_previous: how many earlier copies to keep (0 for none).")
        return
    if not p["src"]:
        raise BackupError(
            "src is required to restore: a backup directory, the backup folder with pick=latest, or a plain-SQL dump "
            "(.sql or .sql.gz)."
        )
    if p["source_db"] is not None:
        check_database_name(p["source_db"], "source_db")
    check_smoke_spec(p["smoke_queries"])
    if p["jobs"] < 1:
        raise BackupError(f"jobs must be 1 or more, not {p['jobs']}.")
    if len(f"{p['db']}_pre_restore_00000000000000".encode()) > MAX_NAME:
        raise BackupError(
            f"db {p['db']} is too long: with _pre_restore_<time> added it would pass PostgreSQL's {MAX_NAME}-byte "
            "limit on names."
        )


def locate(p: dict[str, t.Any]) -> str:
    """The backup directory src names."""
    src = p["src"]
    if not os.path.exists(src):
        raise BackupError(f"src {src} does not exist on this host.")
    if p["pick"] == "latest":
        sets, _partials = scan(src)
        databases = sorted({s.database for s in sets if s.verified and s.database})
        if p["source_db"] is None and len(databases) > 1:
            raise BackupError(f"{src} holds backups of {', '.join(databases)}; set source_db to pick among them.")
        best = newest(sets, p["source_db"])
        if best is None:
            raise BackupError(f"{src} holds no verified backup{' of ' + p['source_db'] if p['source_db'] else ''}.")
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


def inspect(p: dict[str, t.Any], admin: t.Any) -> Target:
    db = p["db"]
    found = rows(admin, DATABASE_SETTINGS, (db,))
    if not found:
        return Target(exists=False)
    conn = must_connect(p, APPLICATION, db, read_only=True, error=BackupError)
    try:
        tables = sorted(r["name"] for r in rows(conn, TABLE_NAMES))
        # The server ends this connection's backend a moment after close(): it is no session of anyone else's.
        own = [conn.get_backend_pid()]
    finally:
        conn.close()
    return Target(exists=True, tables=tables, sessions=rows(admin, SESSIONS, (db, own)), settings=found[0])


def plan_restore(
    p: dict[str, t.Any], root: str, target: Target, scratch: str, previous: str, roles: list[str], plain: bool = False
) -> list[str]:
    """The steps, or BackupError when the target may not be replaced; nothing has changed yet either way."""
    db = p["db"]
    if p["operation"] == "drill":
        target = Target(exists=False)  # a drill never touches a database of that name
    if target.tables and not p["force"]:
        shown = ", ".join(target.tables[:5]) + (" ..." if len(target.tables) > 5 else "")
        raise BackupError(
            f"Database {db} holds {len(target.tables)} tables ({shown}). Replacing it needs force=true; it would be "
            f"kept as {previous}. Nothing was changed."
        )
    if target.sessions and not p["terminate_connections"]:
        who = ", ".join(
            f"pid {s['pid']} {s['usename']}@{s['client'] or 'local'} ({s['application_name']})"
            for s in target.sessions[:5]
        )
        raise BackupError(
            f"{len(target.sessions)} sessions are connected to {db}: {who}. Stop the application first (the "
            "restore playbook does), or set terminate_connections=true. Nothing was changed."
        )
    if plain:
        steps = [
            f"read {root} to its end: a complete pg_dump plain dump",
            f"create database {scratch} and run the dump in it with psql -X -v ON_ERROR_STOP=1 --single-transaction",
            f"ANALYZE {scratch} and compare its row counts and sequences with the dump's COPY data and setval calls",
        ]
    else:
        steps = [f"verify {root} against its manifest"]
        if roles:
            steps.append(f"create the missing roles {', '.join(roles)}")
        steps += [
            f"create database {scratch} and restore the dump into it with pg_restore --exit-on-error",
            f"ANALYZE {scratch} and compare its row counts, objects and sequences with the manifest",
        ]
    extra = ["the sentinel row"] + (["amcheck"] if p["amcheck"] else [])
    extra += [f"smoke query {q['name']}" for q in p["smoke_queries"]]
    steps.append(f"check {', '.join(extra)}")
    if p["operation"] == "drill":
        return [*steps, f"drop {scratch}: a drill replaces nothing"]
    steps.append(f"reset {scratch}'s statistics counters: they count the restore's reads, not the site's")
    if target.sessions:
        steps.append(f"end the {len(target.sessions)} sessions connected to {db}")
    if target.exists:
        steps.append(f"in one transaction, rename {db} to {previous} and {scratch} to {db}")
    else:
        steps.append(f"rename {scratch} to {db}")
    if p["keep_previous"] is not None:
        steps.append(f"drop the earlier copies of {db} beyond the newest {p['keep_previous']}")
    return steps


class Restore:
    """One restore: the admin session (on login_db) holds the target's advisory lock throughout."""

    def __init__(self, module: AnsibleModule, p: dict[str, t.Any], admin: t.Any) -> None:
        self.module, self.p, self.admin = module, p, admin
        self.db: str = p["db"]

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
        args = ["--exit-on-error", "-j", str(self.p["jobs"]), *tools.conn_args, "-d", scratch]
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
        conn = must_connect(self.p, APPLICATION, scratch, error=BackupError)
        try:
            with conn.cursor() as cur:
                cur.execute("ANALYZE")
                found = catalog(conn)
                compared = manifest_proofs(manifest, found)
                proofs += compared
                problems = [p["detail"] for p in compared if p["passed"] is False]
                if problems:
                    raise BackupError(f"The restored data does not match the backup's manifest: {'; '.join(problems)}.")
                proofs.append(sentinel(cur, manifest, self.p["require_sentinel"]))
                if self.p["amcheck"]:
                    proofs.append(amcheck(cur))
            conn.set_session(readonly=True, autocommit=False)
            with conn.cursor() as cur:
                proofs += [smoke(cur, query) for query in self.p["smoke_queries"]]
            failed = [f"{p['name']}: {p['detail']}" for p in proofs if p["passed"] is False]
            if failed:
                raise BackupError(f"The restored database failed its checks: {'; '.join(failed)}.")
            reset = self.p["operation"] == "restore" and reset_statistics(conn)
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
        if previous and self.p["terminate_connections"]:
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
            if previous and self.p["terminate_connections"]:
                renamed = previous if self.exists(previous) else self.db
                self.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(renamed)))

    def exists(self, name: str) -> bool:
        return bool(rows(self.admin, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,)))

    def earlier_copies(self, kind: str = "pre_restore") -> list[str]:
        """`<db>_<kind>_<time>` databases, newest first."""
        pattern = re.compile(rf"^{re.escape(self.db)}_{kind}_\d{{14}}$")
        names = [r["datname"] for r in rows(self.admin, "SELECT datname FROM pg_catalog.pg_database")]
        return sorted((n for n in names if pattern.match(n)), reverse=True)

    def prune(self, keep: int) -> list[str]:
        """Drops the earlier copies, and the restored databases set aside by a revert, beyond the newest keep."""
        gone = self.earlier_copies("pre_restore")[keep:] + self.earlier_copies("reverted")[keep:]
        if not self.module.check_mode:
            for name in gone:
                self.drop(name)
        return gone


def majors(manifest: dict[str, t.Any]) -> tuple[int | None, int | None]:
    """The major versions of the server a backup came from and of the pg_dump that wrote it."""
    server = manifest.get("server_version_num")
    return (int(server) // 10000 if server else None), major_of(manifest.get("dump_version") or "")


def refuse_older_server(src: str, manifest: dict[str, t.Any], admin: t.Any, p: dict[str, t.Any]) -> None:
    """A backup of a newer PostgreSQL is refused before anything changes: see version_refusal."""
    server, dump = majors(manifest)
    why = version_refusal(src, server, dump, admin.server_version // 10000, f"{p['login_host']}:{p['login_port']}")
    if why:
        raise BackupError(why)


def client(module: AnsibleModule, p: dict[str, t.Any], src: str, manifest: dict[str, t.Any]) -> Tools:
    """The pg_restore (psql, for a plain dump) to use, refused when it is older than what the backup needs."""
    tools = Tools(module, p, APPLICATION)
    program = "psql" if manifest.get("plain") else "pg_restore"
    major, _text = tools.version(program)
    server, dump = majors(manifest)
    why = client_refusal(program, major, max(m for m in (server, dump, 0) if m is not None), src, tools.where)
    if why:
        raise BackupError(why)
    return tools


def missing_roles(
    p: dict[str, t.Any], root: str, manifest: dict[str, t.Any], admin: t.Any
) -> tuple[list[str], list[str]]:
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
    if p["restore_globals"] and manifest.get("globals"):
        with open(os.path.join(root, manifest["globals"]), encoding="utf-8") as handle:
            statements, roles = role_statements(handle.read(), existing)
    if manifest["owner"] not in existing | set(roles):
        raise BackupError(
            f"Role {manifest['owner']}, owner of the backed-up database, does not exist on this server; create it, or "
            "set restore_globals=true (with a backup that has globals). Nothing was changed."
        )
    return statements, roles


def plain_source(p: dict[str, t.Any]) -> str | None:
    """src when it is a plain-SQL dump: a file that is not part of a backup set (no manifest beside it)."""
    src = p["src"]
    if p["pick"] or not os.path.isfile(src) or os.path.isfile(os.path.join(os.path.dirname(src), MANIFEST)):
        return None
    return os.path.normpath(src)


def plain_manifest(path: str, dump: PlainDump, origin: dict[str, t.Any], target: Target) -> dict[str, t.Any]:
    """What restore() reads from a manifest, for a plain dump: what it declares, the rest from the live database
    it replaces (owner and locale, which a dump made without -C does not carry)."""
    return {
        "name": os.path.basename(path),
        "plain": {**origin, **dump.facts(), "roles": dump.roles},
        "dump": path,
        **database_options(dump, target.settings),
        "server_version_num": dump.server_major * 10000 if dump.server_major else None,
        "dump_version": f"pg_dump (PostgreSQL) {dump.dump_version}" if dump.dump_version else None,
        "sentinel": None,
        "globals": None,
        **expected_of(dump),
    }


def source_of(p: dict[str, t.Any], admin: t.Any, target: Target) -> tuple[str, dict[str, t.Any], dict[str, t.Any]]:
    """The backup (directory, or plain dump), its manifest and what proved it; refused before anything changes
    when it is damaged, of a newer server, or (a plain dump) of another database."""
    path = plain_source(p)
    if path is None:
        root = locate(p)
        manifest = read_manifest(root)
        checks = prove(root, manifest)
    else:
        dump, origin = read_plain(path)
        root, manifest = path, plain_manifest(path, dump, origin, target)
        expected = p["source_db"] or (None if p["operation"] == "drill" else p["db"])
        why = (
            ""
            if expected is None or p["accept_other_database"]
            else database_refusal(path, dump, expected, target.tables if target.exists else None)
        )
        if why:
            raise BackupError(why)
        checks = {"files": f"read to its end: a complete pg_dump plain dump, sha256 {origin['sha256']}"}
    refuse_older_server(root, manifest, admin, p)
    return root, manifest, checks


def restore(module: AnsibleModule, p: dict[str, t.Any], admin: t.Any) -> dict[str, t.Any]:
    started = time.monotonic()
    drill = p["operation"] == "drill"
    target = Target(exists=False) if drill else inspect(p, admin)
    root, manifest, checks = source_of(p, admin, target)
    verified = time.monotonic()
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    scratch, previous = f"{p['db']}_restore_{stamp}", f"{p['db']}_pre_restore_{stamp}"
    statements, roles = missing_roles(p, root, manifest, admin)
    steps = plan_restore(p, root, target, scratch, previous, roles, plain=bool(manifest.get("plain")))
    summary = {k: v for k, v in manifest.items() if k not in ("files", "tables", "sequences")}
    proofs = [proof("checksums", True, checks["files"])]
    result: dict[str, t.Any] = {
        "changed": True,
        "src": root,
        "restored_db": scratch if drill else p["db"],
        "previous_db": previous if target.exists else None,
        "plan": steps,
        "checks": checks,
        "proofs": proofs,
        "roles_created": roles,
        "manifest": summary,
        "dropped": [],
    }
    tools = client(module, p, root, manifest)
    if module.check_mode:
        return result
    run = Restore(module, p, admin)
    run.lock()
    result["dropped"] = run.drop_scratches()
    if statements:
        run.in_transaction("Creating the backup's roles", statements)
    run.create(scratch, manifest)
    timings = {"verify": verified - started}
    try:
        run.load(tools, root, manifest, scratch)
        timings["restore"] = time.monotonic() - started - sum(timings.values())
        more, counts = run.check(scratch, manifest, proofs)
        timings["check"] = time.monotonic() - started - sum(timings.values())
        if not drill:
            run.swap(scratch, previous if target.exists else None)
            timings["swap"] = time.monotonic() - started - sum(timings.values())
    except (StackopsError, DatabaseError) as exc:
        run.drop(scratch)
        what = "The drill of" if drill else "The restore of"
        kept = f"{scratch} was dropped" if drill else f"{p['db']} is as it was ({scratch} was dropped)"
        raise BackupError(
            f"{what} {root} failed and {kept}: {str(exc).strip()}",
            roles_created=roles,
            proofs=proofs,
            dropped=[*result["dropped"], scratch],
            elapsed={k: round(v, 3) for k, v in timings.items()},
        ) from None
    timings["total"] = sum(timings.values())
    done = time.monotonic()
    if drill:
        run.drop(scratch)
        result["dropped"].append(scratch)
    elif p["keep_previous"] is not None:
        result["dropped"] += run.prune(p["keep_previous"])
    timings["cleanup"] = time.monotonic() - done
    checks.update(more)
    result.update(row_counts=counts, elapsed={k: round(v, 3) for k, v in timings.items()})
    return result


def revert(module: AnsibleModule, p: dict[str, t.Any], admin: t.Any) -> dict[str, t.Any]:
    run = Restore(module, p, admin)
    copies = run.earlier_copies()
    if not copies:
        raise BackupError(f"There is no earlier copy of {p['db']} ({p['db']}_pre_restore_<time>) to put back.")
    target = inspect(p, admin)
    if target.sessions and not p["terminate_connections"]:
        raise BackupError(
            f"{len(target.sessions)} sessions are connected to {p['db']}; stop the application first, or set "
            "terminate_connections=true. Nothing was changed."
        )
    aside = f"{p['db']}_reverted_{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    steps = [f"in one transaction, rename {p['db']} to {aside} and {copies[0]} to {p['db']}"]
    result = {"changed": True, "plan": steps, "restored_db": p["db"], "previous_db": aside, "dropped": []}
    if not module.check_mode:
        run.lock()
        run.swap(copies[0], aside if target.exists else None)
    return result


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    ensure_libs(module)
    p = module.params
    check_inputs(p)
    with connected(p, APPLICATION, error=BackupError) as admin:
        if p["operation"] == "revert":
            return revert(module, p, admin)
        if p["operation"] == "cleanup":
            gone = Restore(module, p, admin).prune(p["keep_previous"])
            return {"changed": bool(gone), "dropped": gone, "plan": [f"drop database {name}" for name in gone]}
        return restore(module, p, admin)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
