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
timings:
  description: >-
    Seconds the operation (V(backup), V(check) or V(adopt)) took, everything after the check of the options.
  returned: always
  type: dict
  sample: {backup: 3.412}
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_backup_operations import (
    adopt,
    backup,
    check,
    check_inputs,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import tools_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import connection_argument_spec, ensure_libs

OPERATIONS = {"backup": backup, "check": check, "adopt": adopt}


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


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    if o.operation != "check":
        ensure_libs(module)
    # The audit list is adopt's plan; the other operations return what they did in their own fields.
    rec = Recorder(check=module.check_mode, audit="plan")
    with rec.timed(o.operation):
        OPERATIONS[o.operation](module, o, rec)
    result = rec.outcome(False)
    if o.operation != "adopt":
        del result["plan"]
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
