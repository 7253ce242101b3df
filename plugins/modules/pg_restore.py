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

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import tools_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    connected,
    connection_argument_spec,
    ensure_libs,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._restore import APPLICATION, OPERATIONS
from ansible_collections.stackops.runbooks.plugins.module_utils._restore_plan import check_inputs


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


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    ensure_libs(module)
    o = check_inputs(module.params)
    rec = Recorder(check=module.check_mode, audit="plan")
    with connected(o.login, APPLICATION, error=BackupError) as admin:
        OPERATIONS[o.operation](module, o, admin, rec)
    # pg_restore reports its times in `elapsed` (restore phases and their total), set by the restore itself.
    return rec.outcome(False, timed=False)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
