#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup
short_description: A PostgreSQL backup that counts only once it is written, synced, read back and checksummed
version_added: 0.1.0
description:
  - Takes a logical backup of one database with C(pg_dump) (custom or directory format) and, with O(globals), the
    roles with C(pg_dumpall --globals-only). The programs run on the managed host, or inside the compose
    postgres service (O(compose_project_src)), which always has the server's own version.
  - A backup is a directory C(<db>-<UTC time>) in O(dest) holding the dump, C(globals.sql) and C(manifest.json).
    It is built as C(<name>.partial); each file is synced, the dump is read back in full (C(pg_restore -f
    /dev/null), which catches a truncated dump where C(pg_restore --list) does not), every file gets a sha256,
    and the manifest is written last. Only then is the directory renamed to its final name. A run that fails or
    is killed leaves no directory that looks complete; the next run removes its C(.partial) remains.
  - The manifest records the database, its owner, encoding and locale, server and C(pg_dump) versions, format,
    files with size and sha256, start and end times, the host, and what a restore must reproduce. Row counts are
    exact, counted in the very snapshot C(pg_dump) exports, so they match the dump even while the application
    writes. The counts of tables, indexes, sequences and views, and each sequence's value, are recorded too.
  - One run at a time per database and O(dest) (a lock file, C(.<db>.lock)). A second run waits O(lock_timeout)
    seconds, then fails naming the holder. A lock left by a killed run is taken over and reported in
    RV(stale_lock).
  - Retention (O(retention_count), O(retention_days)) runs after a successful backup. It counts and removes only
    verified backups of this database, never the newest one; a backup whose manifest does not check out is
    reported in RV(unverified), never removed.
  - O(operation=check) takes no backup. It lists the backups in O(dest), re-verifies every file of the newest
    against its manifest (a failure fails the task), and warns when it is older than O(max_age_hours).
  - O(operation=adopt) turns a plain-SQL dump made by hand (C(pg_dump db > backup_YYYYMMDD.sql), gzipped or not)
    into a verified backup of O(db). The file O(src) is read to its end first; it must start like a C(pg_dump)
    plain dump and end with the line C(-- PostgreSQL database dump complete) that C(pg_dump) writes last (a
    truncated file lacks it). It is then restored with C(psql -X -v ON_ERROR_STOP=1 --single-transaction) into a
    scratch database C(stackops_adopt_<time>_<pid>), whose row counts and sequences must equal the dump's C(COPY)
    data and C(setval) calls; that database is backed up as a set like any other (same checks, manifest, files)
    and dropped again, also on failure. The manifest records the file's path, sha256, size, compression, the
    versions it was dumped from and by, and its time (the file's modification time, which is also the set's
    time, so that an adopted dump never counts as the newest backup of today). Adopting a file whose sha256 an
    adopted set of O(db) already records changes nothing. Retention does not run; that of later backups counts
    adopted sets like the others.
  - A dump is refused, before anything changes, when it was dumped from or by a newer PostgreSQL major version
    than the server's (C(pg_dump) output is not made for older servers), when one of the roles it gives objects
    to does not exist, and when it seems to be of another database (O(accept_other_database)). Statements about
    the database itself, which C(pg_dump -C) writes (C(CREATE/ALTER/DROP DATABASE), C(\connect)), are held back,
    as they would act on the live database.
  - With O(sentinel), a row written just before the snapshot marks the backup's moment in the data itself.
  - Files are C(0600), directories C(0700). The password reaches the programs through the environment (PGPASSWORD)
    only; a pgpass file (C(PGPASSFILE)) works when O(login_password) is not set.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.postgres.tools
  - stackops.runbooks.compose.project
  - stackops.runbooks.attributes
options:
  db:
    description: The database to back up.
    type: str
    required: true
  dest:
    description:
      - The backup directory on the managed host, created C(0700) when missing. Keep one O(dest) per database
        server; the backups of several databases may share it.
    type: path
    required: true
  operation:
    description:
      - V(backup) takes a new backup, then applies retention.
      - V(check) takes none. It reports the backups, verifies the newest, and judges its age.
      - V(adopt) makes a verified backup of O(db) from the plain-SQL dump O(src).
    type: str
    choices: [backup, check, adopt]
    default: backup
  src:
    description:
      - With O(operation=adopt), the plain-SQL dump on the managed host, C(.sql) or gzipped C(.sql.gz) (recognised
        by its content), as an absolute path.
    type: path
  accept_other_database:
    description:
      - With O(operation=adopt), adopt a dump that seems to be of another database than O(db). A dump made with
        C(pg_dump -C) names its database, which must be O(db). One made without it names none; it is taken for
        another database's when O(db) exists on the server with tables and the dump creates none of them (same
        schema and name). Without a database O(db) on the server there is nothing to compare with.
    type: bool
    default: false
  format:
    description:
      - V(custom) is one compressed file (C(pg_dump -Fc)). V(directory) is a directory of files, the only format
        C(pg_dump) can write with several O(jobs).
    type: str
    choices: [custom, directory]
    default: custom
  globals:
    description:
      - Also save the roles and tablespaces (C(pg_dumpall --globals-only)) as C(globals.sql), which a restore on
        another server needs for the owners. It needs a superuser.
    type: bool
    default: true
  retention_count:
    description:
      - Keep at least this many of the newest verified backups of O(db). When O(retention_days) is set too, a
        backup is kept while either rule keeps it. Without either, nothing is removed.
    type: int
  retention_days:
    description: Keep the verified backups of O(db) younger than this many days.
    type: float
  max_age_hours:
    description:
      - With O(operation=check), warn (and set RV(stale)) when the newest verified backup of O(db) is older than
        this, or when there is none.
    type: float
  lock_timeout:
    description: Seconds to wait for another run on the same database and O(dest) to finish.
    type: int
    default: 0
  sentinel:
    description:
      - Write a row into C(stackops.backup_sentinel) of O(db) (the schema and table are created if missing; rows
        older than 35 days are deleted) right before the snapshot is taken, and record its token in the manifest.
        A restore drill (M(stackops.runbooks.pg_restore) O(stackops.runbooks.pg_restore#module:operation=drill))
        then proves the restored data reaches up to the moment of the backup.
      - This writes to the database, so it is off by default.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reports the backup it would take (RV(path)) and what retention would remove, or the adoption's plan
      (RV(plan)) after reading and checking the dump; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each run with O(operation=backup) takes a new backup and reports a change. O(operation=check) never does.
      O(operation=adopt) changes nothing when the file was adopted before.
  platform:
    platforms: posix
notes:
  - Container mode runs C(docker compose exec -T) in the service; the module's own connection (for the snapshot
    and the counts) goes from the managed host to O(login_host), so the server must be reachable at the same
    address from both. O(ca_cert) applies to host mode only.
  - C(pg_dump) does not save database-level settings (C(ALTER DATABASE ... SET)); keep them in configuration
    management.
seealso:
  - module: stackops.runbooks.pg_restore
  - name: pg_dump
    description: The program that writes the dump, and its formats.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
"""

EXAMPLES = r"""
- name: Nightly backup from inside the compose postgres service, keeping a week
  stackops.runbooks.pg_backup:
    db: app
    dest: /var/backups/postgres
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    compose_project_src: /srv/app
    retention_count: 7
  register: backup

- name: Parallel dump in directory format with the host's pg_dump
  stackops.runbooks.pg_backup:
    db: app
    dest: /var/backups/postgres
    login_host: db.internal
    login_password: "{{ pg_password }}"
    format: directory
    jobs: 4

- name: Warn when the newest backup is more than 26 hours old
  stackops.runbooks.pg_backup:
    db: app
    dest: /var/backups/postgres
    operation: check
    max_age_hours: 26
  register: backups

- name: Adopt a dump made by hand the way the runbook did, as a verified backup
  stackops.runbooks.pg_backup:
    operation: adopt
    src: /var/backups/postgres/legacy/backup_20240115.sql.gz
    db: app
    dest: /var/backups/postgres
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    compose_project_src: /srv/app
"""

RETURN = r"""
path:
  description:
    - The backup's directory (the one it would have, in check mode).
    - With O(operation=adopt), the set adopted from O(src), made now or before.
  returned: with O(operation=backup) or V(adopt)
  type: str
  sample: /var/backups/postgres/app-20261123T020000Z
sha256:
  description:
    - The dump's sha256. For V(directory) format, the sha256 of the C(sha256sum)-style list of its files.
  returned: with O(operation=backup) or V(adopt), when a set was made (not in check mode)
  type: str
size:
  description: Bytes of all the backup's files.
  returned: with O(operation=backup) or V(adopt), when a set was made (not in check mode)
  type: int
manifest:
  description: The backup's manifest, as written to C(manifest.json); with O(operation=check), the newest one's.
  returned: with O(operation=backup) (not in check mode), and with O(operation=check) when there is a backup
  type: dict
  sample:
    database: app
    format: custom
    server_version: "15.18"
    tables: {app.customers: 20000}
    duration_s: 1.4
removed:
  description: Backups retention removed (would remove, in check mode).
  returned: with O(operation=backup)
  type: list
  elements: str
removed_partial:
  description: Unfinished C(.partial) directories of earlier failed or killed runs that were removed.
  returned: with O(operation=backup)
  type: list
  elements: str
stale_lock:
  description: The record of a killed run whose lock this run took over.
  returned: when there was one
  type: dict
  sample: {pid: 4242, host: db1, started_at: "2026-11-23T02:00:01Z"}
backups:
  description: The backups of O(db) in O(dest), newest first, each with its age and whether its manifest checks out.
  returned: always
  type: list
  elements: dict
unverified:
  description: Backup directories whose manifest is missing or does not check out. They are never removed.
  returned: always
  type: list
  elements: str
newest:
  description: The newest verified backup of O(db).
  returned: with O(operation=check), when there is one
  type: dict
age_hours:
  description: Hours since the newest verified backup of O(db) finished.
  returned: with O(operation=check), when there is one
  type: float
stale:
  description: Whether the newest verified backup is older than O(max_age_hours) (or missing).
  returned: with O(operation=check) and O(max_age_hours)
  type: bool
adopted:
  description: What O(src) is and declares; the manifest of an adopted set records the same as C(adopted_from).
  returned: with O(operation=adopt)
  type: dict
  sample:
    path: /var/backups/postgres/legacy/backup_20240115.sql.gz
    sha256: 0e0b41f8c11000f9200e3ffec1eed780713c1c5d311ae7cd16fee5e06386fd2c
    size: 3628720
    compressed: true
    dumped_from: 15.18 (Debian 15.18-0+deb12u1)
    dumped_by: 15.18 (Debian 15.18-0+deb12u1)
    dumped_at: "2024-01-15T02:00:00Z"
    database: null
    encoding: UTF8
    tables: 8
    rows: 390503
    database_statements_held_back: 0
plan:
  description: With O(operation=adopt), the steps (those a real run would take, in check mode); empty when the file
    was adopted before.
  returned: with O(operation=adopt)
  type: list
  elements: str
dropped:
  description: Scratch databases of earlier adopt runs that were killed, dropped by this one.
  returned: with O(operation=adopt), when a set was made
  type: list
  elements: str
"""

import os
import socket
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

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
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute
from ansible_collections.stackops.runbooks.plugins.module_utils._files import fsync_path, fsync_tree
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import (
    DATABASE_SETTINGS,
    GLOBALS_TRAILER,
    TABLE_NAMES,
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


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(tools_argument_spec())
    spec.update(
        db={"type": "str", "required": True},
        dest={"type": "path", "required": True},
        operation={"type": "str", "choices": ["backup", "check", "adopt"], "default": "backup"},
        src={"type": "path"},
        accept_other_database={"type": "bool", "default": False},
        format={"type": "str", "choices": ["custom", "directory"], "default": "custom"},
        globals={"type": "bool", "default": True},
        retention_count={"type": "int"},
        retention_days={"type": "float"},
        max_age_hours={"type": "float"},
        lock_timeout={"type": "int", "default": 0},
        sentinel={"type": "bool", "default": False},
    )
    return spec


def check_inputs(p: dict[str, t.Any]) -> None:
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


def summary(sets: list[BackupSet], db: str, now: float) -> tuple[list[dict[str, t.Any]], list[str]]:
    mine = [s.as_dict(now) for s in sets if s.database == db]
    return mine, [s.path for s in sets if not s.verified]


def check(module: AnsibleModule, p: dict[str, t.Any]) -> dict[str, t.Any]:
    now = time.time()
    sets, _partials = scan(p["dest"])
    backups, unverified = summary(sets, p["db"], now)
    result: dict[str, t.Any] = {"changed": False, "backups": backups, "unverified": unverified}
    best = newest(sets, p["db"])
    age = None if best is None else (now - (best.finished or now)) / 3600
    if best is not None:
        manifest = read_manifest(best.path)
        problems = verify_files(best.path, manifest)
        if problems:
            raise BackupError(f"The newest backup {best.path} is damaged: {'; '.join(problems)}.", **result)
        result.update(newest=best.as_dict(now), age_hours=round(age or 0.0, 4), manifest=manifest)
    if p["max_age_hours"] is not None:
        result["stale"] = age is None or age > p["max_age_hours"]
        if best is None:
            module.warn(f"There is no verified backup of {p['db']} in {p['dest']}.")
        elif result["stale"]:
            module.warn(
                f"The newest backup of {p['db']} ({best.name}) is {result['age_hours']} hours old, "
                f"over max_age_hours {p['max_age_hours']}."
            )
    return result


def dump(tools: Tools, p: dict[str, t.Any], work: str, snapshot: str, source: str) -> tuple[str, dict[str, str | None]]:
    """Writes the dump of database source into work and reads it back in full. Returns its path relative to work,
    and the sha256 of the files whose checksum was taken on the way (no need to read them again)."""
    base = ["--snapshot", snapshot, *tools.conn_args, "-d", source]
    name = label(p["db"])
    if p["format"] == "custom":
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
        tools.must("pg_dump", "-Fd", "-j", str(p["jobs"]), *base, "-f", os.path.join(work, rel), what="The dump")
        tools.must("pg_restore", "-f", "/dev/null", os.path.join(work, rel), what="Reading the dump back")
        return rel, {}
    # pg_dump in the container writes its directory there; it is read back there, copied out, and the copy must
    # have the checksums the container computed.
    with tools.place.temp_dir() as scratch:
        inside = f"{scratch}/{rel}"
        tools.must("pg_dump", "-Fd", "-j", str(p["jobs"]), *base, "-f", inside, what="The dump")
        tools.must("pg_restore", "-f", "/dev/null", inside, what="Reading the dump back")
        sums = tools.output("sh", "-c", 'cd "$1" && find . -type f -exec sha256sum {} +', "sh", inside)
        tools.place.copy_out(inside, os.path.join(work, rel))
    expected = {line.split(None, 1)[1].strip()[2:]: line.split(None, 1)[0] for line in sums.splitlines() if line}
    copied = {path: sha256_file(os.path.join(work, rel, path)) for path in files_under(os.path.join(work, rel))}
    if copied != expected:
        raise BackupError(f"The dump copied out of {tools.where} does not match the checksums computed inside it.")
    known: dict[str, str | None] = {f"{rel}/{path}": digest for path, digest in copied.items()}
    return rel, known


def take(
    tools: Tools, p: dict[str, t.Any], work: str, name: str, source: str | None = None, **extra: t.Any
) -> dict[str, t.Any]:
    """The backup of database source (db by default) into work, recorded as a backup of db; extra goes into the
    manifest."""
    started = time.time()
    dump_major, dump_version = tools.version("pg_dump")
    conn = must_connect(p, APPLICATION, source or p["db"], error=BackupError)
    try:
        if dump_major < conn.server_version // 10000:
            raise BackupError(
                f"pg_dump {dump_major} in {tools.where} cannot dump a PostgreSQL {conn.server_version // 10000} "
                "server; install the matching client, or run it inside the compose service (compose_project_src)."
            )
        if p["sentinel"]:
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
                rel, known = dump(tools, p, work, snapshot, source or p["db"])
            except BackupError:
                conn.cancel()  # the counts are not needed any more, and may wait on the same lock the dump did
                raise
            recorded = counting.result()
    except DatabaseError as exc:
        raise BackupError(f"Reading database {p['db']} failed: {str(exc).strip()}") from None
    finally:
        conn.close()
    globals_rel = None
    if p["globals"]:
        globals_rel = "globals.sql"
        try:
            known[globals_rel] = tools.must(
                "pg_dumpall",
                "--globals-only",
                *tools.conn_args,
                "-l",
                p["login_db"],
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
            "database": p["db"],
            "owner": owner,
            "encoding": encoding,
            "collate": collate,
            "ctype": ctype,
            "source": {
                "host": socket.gethostname(),
                "server": f"{p['login_unix_socket'] or p['login_host']}:{p['login_port']}",
                "mode": "host" if tools.project is None else "container",
                "service": tools.service if tools.project else None,
            },
            "server_version": version,
            "server_version_num": int(version_num),
            "dump_version": dump_version,
            "format": p["format"],
            "jobs": p["jobs"],
            "dump": rel,
            "globals": globals_rel,
            "files": entries,
            "size": sum(e["size"] for e in entries),
            "sha256": dump_entries[0]["sha256"] if p["format"] == "custom" else combined_sha256(dump_entries),
            "started_at": iso(started),
            "finished_at": iso(finished),
            "started_epoch": started,
            "finished_epoch": finished,
            "duration_s": round(finished - started, 3),
            "verified": ["pg_restore -f /dev/null (full read)", "sha256 of every file"],
            "sentinel": {"table": SENTINEL_TABLE, "token": name} if p["sentinel"] else None,
            **recorded,
            **extra,
        }
    )


def backup(module: AnsibleModule, p: dict[str, t.Any]) -> dict[str, t.Any]:
    dest, db = p["dest"], p["db"]
    # Where the tools run, and that the database is there, are checked before dest, its lock or a partial exist;
    # check mode checks them too, so that it fails where a real run would.
    try:
        tools = Tools(module, p, APPLICATION)
        must_connect(p, APPLICATION, db, read_only=True, error=BackupError).close()
    except StackopsError as exc:
        raise BackupError(f"The backup of {db} failed and nothing was kept: {exc}") from None
    now = time.time()
    sets, _partials = scan(dest)
    name = new_set_name(dest, db, now)
    if module.check_mode:
        planned = BackupSet(name, os.path.join(dest, name), db, now, 0, None)
        backups, unverified = summary(sets, db, now)
        gone = expired([planned, *sets], db, p["retention_count"], p["retention_days"], now)
        return {
            "changed": True,
            "path": planned.path,
            "removed": [s.path for s in gone],
            "removed_partial": [],
            "backups": backups,
            "unverified": unverified,
        }
    result: dict[str, t.Any] = {"changed": True}
    failed = f"The backup of {db} failed and nothing was kept"
    with held(dest, db, p["lock_timeout"], failed) as lock:
        if lock.stale:
            result["stale_lock"] = lock.stale
            module.warn(f"A killed backup run left its lock ({lock.stale}); this run took it over.")
        _sets, partials = scan(dest)
        mine = partials_of(partials, db)
        for path in mine:
            remove_tree(path)
        result["removed_partial"] = mine
        name = new_set_name(dest, db, time.time())
        work = os.path.join(dest, name + PARTIAL)
        final = os.path.join(dest, name)
        try:
            os.mkdir(work, 0o700)
            manifest = take(tools, p, work, name)
            write_manifest(work, manifest)
            os.rename(work, final)
            fsync_path(dest)
        # Any failure, a Docker daemon that stopped answering too (ComposeError), leaves nothing behind.
        except (StackopsError, OSError) as exc:
            remove_tree(work)
            why = f"{exc}{no_space_hint(str(exc), dest)}"
            raise BackupError(f"{failed}: {why}") from None
        sets, _partials = scan(dest)
        gone = expired(sets, db, p["retention_count"], p["retention_days"], time.time())
        for item in gone:
            remove_tree(item.path)
        fsync_path(dest)
    sets, _partials = scan(dest)
    backups, unverified = summary(sets, db, time.time())
    result.update(
        path=final,
        sha256=manifest["sha256"],
        size=manifest["size"],
        manifest=manifest,
        removed=[s.path for s in gone],
        backups=backups,
        unverified=unverified,
    )
    return result


def adopted(sets: list[BackupSet], db: str, sha256: str) -> BackupSet | None:
    """The verified set of db already adopted from the file with this sha256."""
    return next((s for s in sets if s.verified and s.database == db and s.origin == sha256), None)


def refusal(
    src: str, dump: PlainDump, p: dict[str, t.Any], server_major: int, live: list[str] | None, roles: set[str]
) -> str:
    """Why the dump may not be adopted as a backup of db on this server (empty when it may); pure."""
    where = f"{p['login_unix_socket'] or p['login_host']}:{p['login_port']}"
    why = version_refusal(src, dump.server_major, dump.dump_major, server_major, where)
    if not why and not p["accept_other_database"]:
        why = database_refusal(src, dump, p["db"], live)
    absent = [role for role in dump.roles if role not in roles]
    if not why and absent:
        why = (
            f"The roles {', '.join(absent)}, which {src} gives objects to, do not exist on this server. Create them "
            "first (pg_dumpall --globals-only on the source server has them); nothing was changed."
        )
    return why


def plan_adopt(src: str, dump: PlainDump, scratch: str, path: str) -> list[str]:
    return [
        f"read {src} to its end: a complete pg_dump plain dump of {len(dump.tables)} tables",
        f"create database {scratch} and run the dump in it with psql -X -v ON_ERROR_STOP=1 --single-transaction",
        f"compare {scratch}'s row counts and sequences with the dump's COPY data and setval calls",
        f"back {scratch} up as {path}, verified like every backup, recording {src}'s sha256",
        f"drop {scratch}",
    ]


def drop_leftovers(admin: t.Any) -> list[str]:
    """Scratch databases of adopt runs that were killed: no session holds their advisory lock any more."""
    gone = []
    for found in rows(admin, LEFTOVERS, (f"{SCRATCH_COMMENT}%",)):
        name = found["datname"]
        if rows(admin, SCRATCH_LOCK, (APPLICATION, name))[0]["pg_try_advisory_lock"]:
            drop_database(admin, name)
            gone.append(name)
    return gone


def trial(tools: Tools, p: dict[str, t.Any], admin: t.Any, src: str, dump: PlainDump, scratch: str) -> None:
    """The dump restored into scratch, with the rows and sequences it holds; BackupError when not."""
    live = rows(admin, DATABASE_SETTINGS, (p["db"],))
    options = database_options(dump, live[0] if live else {})
    create_database(admin, scratch, options, f"{SCRATCH_COMMENT} of {src}, pid {os.getpid()}")
    load_plain(tools, src, scratch)
    conn = must_connect(p, APPLICATION, scratch, error=BackupError)
    try:
        problems = compare(expected_of(dump), catalog(conn))
    finally:
        conn.close()
    if problems:
        raise BackupError(f"The trial restore does not hold what the dump does: {'; '.join(problems)}.")


def live_tables(p: dict[str, t.Any], admin: t.Any) -> list[str] | None:
    """The tables of db on the server, None when there is no such database."""
    if not rows(admin, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (p["db"],)):
        return None
    conn = must_connect(p, APPLICATION, p["db"], read_only=True, error=BackupError)
    try:
        return [r["name"] for r in rows(conn, TABLE_NAMES)]
    finally:
        conn.close()


def adopt(module: AnsibleModule, p: dict[str, t.Any]) -> dict[str, t.Any]:
    """Checks the dump and the server, plans, and (not in check mode) converts; nothing changes on a refusal."""
    src, dest, db = os.path.normpath(p["src"]), p["dest"], p["db"]
    dump, origin = read_plain(src)
    dumped_at = os.path.getmtime(src)
    with connected(p, APPLICATION, error=BackupError) as admin:
        roles = {r["rolname"] for r in rows(admin, "SELECT rolname FROM pg_catalog.pg_roles")}
        why = refusal(src, dump, p, admin.server_version // 10000, live_tables(p, admin), roles)
        if why:
            raise BackupError(why)
        adoption = {**origin, **dump.facts(), "dumped_at": iso(dumped_at)}
        sets, _partials = scan(dest)
        backups, unverified = summary(sets, db, time.time())
        result: dict[str, t.Any] = {"changed": False, "adopted": adoption, "backups": backups, "unverified": unverified}
        done = adopted(sets, db, origin["sha256"])
        if done is not None:
            return {**result, "path": done.path, "plan": []}
        scratch = f"stackops_adopt_{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_{os.getpid()}"
        name = new_set_name(dest, db, dumped_at)
        result.update(changed=True, path=os.path.join(dest, name), plan=plan_adopt(src, dump, scratch, name))
        if module.check_mode:
            return result
        return convert(module, p, admin, dump, scratch, result)


def convert(
    module: AnsibleModule, p: dict[str, t.Any], admin: t.Any, dump: PlainDump, scratch: str, result: dict[str, t.Any]
) -> dict[str, t.Any]:
    """The trial restore into scratch, and its backup as a set of db; scratch is always dropped again."""
    src, dest, db, adoption = os.path.normpath(p["src"]), p["dest"], p["db"], result["adopted"]
    tools = Tools(module, p, APPLICATION)
    why = client_refusal("psql", tools.version("psql")[0], dump.dump_major, src, tools.where)
    if why:
        raise BackupError(why)
    with held(dest, db, p["lock_timeout"], f"The adoption of {src} failed and nothing was kept"):
        done = adopted(scan(dest)[0], db, adoption["sha256"])
        if done is not None:  # another run adopted it while this one waited for the lock
            return {**result, "changed": False, "path": done.path, "plan": []}
        result["dropped"] = drop_leftovers(admin)
        rows(admin, SCRATCH_LOCK, (APPLICATION, scratch))
        name = new_set_name(dest, db, os.path.getmtime(src))
        work, final = os.path.join(dest, name + PARTIAL), os.path.join(dest, name)
        started = time.time()
        try:
            trial(tools, p, admin, src, dump, scratch)
            os.mkdir(work, 0o700)
            dumped_at = os.path.getmtime(src)
            manifest = take(
                tools,
                p,
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
            write_manifest(work, manifest)
            os.rename(work, final)
            fsync_path(dest)
        except (StackopsError, OSError, DatabaseError) as exc:
            remove_tree(work)
            why = f"{str(exc).strip()}{no_space_hint(str(exc), dest)}"
            raise BackupError(f"Adopting {src} failed and nothing was kept: {why}") from None
        finally:
            drop_database(admin, scratch)
    backups, unverified = summary(scan(dest)[0], db, time.time())
    result.update(
        path=final,
        sha256=manifest["sha256"],
        size=manifest["size"],
        manifest=manifest,
        backups=backups,
        unverified=unverified,
    )
    return result


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    p = module.params
    check_inputs(p)
    if p["operation"] == "check":
        return check(module, p)
    ensure_libs(module)
    return adopt(module, p) if p["operation"] == "adopt" else backup(module, p)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
