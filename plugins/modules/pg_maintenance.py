#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_maintenance
short_description: PostgreSQL maintenance - vacuum, analyze, reindex, idle sessions, settings, a missing database
version_added: 0.1.0
description:
  - The runbooks' database maintenance in one connection, each part asked for by its option. It replaces their
    C(psql -c) one-liners (C(VACUUM ANALYZE;), C(REINDEX DATABASE ...;), C(SELECT pg_terminate_backend(pid) ...),
    C(ALTER SYSTEM SET ...; SELECT pg_reload_conf();), C(CREATE DATABASE ...;)).
  - Everything asked is read and checked first; a bad value anywhere (an unknown table, setting or unit, a value
    out of range, a setting ALTER SYSTEM cannot change) fails the task before anything changes. The parts then run
    in this order - O(ensure_database), O(settings) and O(pg_stat_statements), O(terminate_idle) (ending idle
    transactions first lets the vacuum remove what they held back), O(vacuum) and O(analyze), O(reindex).
  - O(settings) are compared with the value the server will take at its next reload or restart (the last
    configuration file entry, C(postgresql.auto.conf) included, else the built-in default), after reading both
    as the server does (units, booleans, enum names, lists). V(256MB) equals V(262144) for a setting in kB,
    V(1min) equals V(60s), V(on) equals V(true). Only different ones are written with C(ALTER SYSTEM), then the
    configuration is reloaded (C(pg_reload_conf())) and the module waits until its own session has re-read it.
  - A setting of context C(postmaster) (C(max_connections), C(shared_buffers), C(shared_preload_libraries), ...)
    is not applied by a reload. The runbooks' C(ALTER SYSTEM SET max_connections = 200) followed by
    C(pg_reload_conf()) changes nothing until the server restarts. Every setting waiting for a restart is returned in
    RV(pending_restart), read from C(pg_settings) after the reload, with a warning. The module never restarts the
    server.
  - VACUUM, ANALYZE and REINDEX are actions. When one runs, the task reports a change (and in check mode, when one
    would run); RV(queries) lists the statements. To make a routine run change nothing when nothing needs doing,
    give thresholds. O(min_dead_pct) and O(min_dead_tuples) vacuum only the tables with that many dead tuples, and
    O(min_modified_pct) analyzes only those whose rows changed that much since the last analyze. A vacuumed table
    then has no dead tuples left and a fresh analyze, so the next run skips it. REINDEX has no such measure; it runs
    every time it is asked.
  - RV(tables) reports each table acted on, before and after (live and dead tuples, table, index and total bytes,
    last vacuum and analyze); RV(untouched) says why the others were left alone.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads and checks everything, and returns what a real run would do, with the same C(changed). The sessions
        it would end are listed in RV(terminated), the statements in RV(queries), and RV(pending_restart) is
        predicted.
  diff_mode:
    support: full
    details: Settings, the database, the extension and the sessions, before and after.
  idempotent:
    support: partial
    details:
      - Settings, the database, the extension and idle sessions change only what differs. VACUUM and ANALYZE are
        idempotent with thresholds (O(min_dead_pct), O(min_dead_tuples), O(min_modified_pct)); without them, and
        REINDEX always, they run and report a change on every run.
  platform:
    platforms: posix
options:
  vacuum:
    description:
      - V(true) vacuums the whole connected database (O(login_db)). Without thresholds this is one C(VACUUM)
        statement, the system catalogs included; with thresholds, each user table that crosses them.
      - A list names the tables, schema-qualified when they are not on the search path.
      - VACUUM takes a C(SHARE UPDATE EXCLUSIVE) lock, which lets reads and writes go on and blocks only schema
        changes and other vacuums.
    type: raw
    default: false
  full:
    description:
      - C(VACUUM FULL), which rewrites each table into new files and gives the space back to the operating system.
      - It takes an C(ACCESS EXCLUSIVE) lock on each table while it is rewritten - no reads or writes - and needs
        free disk space for a full copy of the table and its indexes. Run it in a maintenance window; the module
        warns whenever it runs it.
      - It always analyzes too (C(VACUUM (FULL, ANALYZE))), since VACUUM FULL leaves the dead-tuple count of the
        statistics as it was, and a rewritten table needs fresh statistics anyway.
    type: bool
    default: false
  analyze:
    description:
      - V(true) analyzes the whole connected database (or, with O(min_modified_pct), each user table that crosses
        it); a list names the tables.
      - A table that is vacuumed and also to be analyzed gets one C(VACUUM (ANALYZE)).
      - ANALYZE takes a C(SHARE UPDATE EXCLUSIVE) lock, like VACUUM.
    type: raw
    default: false
  min_dead_pct:
    description:
      - Vacuum a table only when its dead tuples are at least this percentage of its tuples (live and dead).
      - With a threshold, a table without dead tuples is never vacuumed.
    type: float
  min_dead_tuples:
    description:
      - Vacuum a table only when it has at least this many dead tuples (with O(min_dead_pct), both must hold).
    type: int
  min_modified_pct:
    description:
      - Analyze a table only when the rows inserted, updated or deleted since its last analyze are at least this
        percentage of its live rows.
    type: float
  reindex:
    description:
      - V(true) rebuilds every index of the connected database (C(REINDEX DATABASE)).
      - A list names tables (all their indexes are rebuilt) and indexes, schema-qualified when they are not on the
        search path.
      - RV(reindexed) reports the index bytes before and after.
    type: raw
    default: false
  concurrently:
    description:
      - Rebuild with C(REINDEX ... CONCURRENTLY) (PostgreSQL 12 or later), which takes a C(SHARE UPDATE EXCLUSIVE)
        lock and lets reads and writes go on. It takes longer, and waits for the transactions that write to the
        table. When it fails, the module drops the invalid C(_ccnew) index it left, or names it when it cannot yet
        (a transaction still writes to the table).
      - V(false) takes a C(SHARE) lock on the table, which blocks writes, and an C(ACCESS EXCLUSIVE) lock on each
        index, which blocks the reads that use it, until the rebuild ends. The system catalogs can only be rebuilt
        this way (C(REINDEX DATABASE ... CONCURRENTLY) skips them).
      - On a server older than 12 the module refuses V(true) rather than take the stronger locks unasked.
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds each maintenance statement may wait for its lock before it fails (C(lock_timeout)); V(0) waits
        forever. A statement waiting for a strong lock (VACUUM FULL, REINDEX without CONCURRENTLY) makes every
        later query on the table wait behind it, so give a limit when running online.
    type: int
    default: 0
  terminate_idle:
    description:
      - End client sessions that have been in one of O(states) for at least O(idle_for) seconds, optionally only
        those matching O(session_filter) (C(pg_terminate_backend)).
      - Never the module's own session, never a background process (autovacuum, WAL sender, ...), never a session of
        this collection's modules (application names C(stackops-*), such as a backup holding its snapshot).
      - A session is ended only if it is still in the same idle spell as when it was listed; one that became
        active in between is left alone.
    type: bool
    default: false
  idle_for:
    description: Seconds a session must have been in its state (since C(state_change)) to be ended.
    type: int
    default: 300
  states:
    description: The session states that count as idle.
    type: list
    elements: str
    choices: [idle, idle in transaction, idle in transaction (aborted)]
    default: [idle, idle in transaction, idle in transaction (aborted)]
  session_filter:
    description: Only sessions matching every list given here are ended (exact names).
    type: dict
    suboptions:
      databases:
        description: Database names.
        type: list
        elements: str
      users:
        description: Role names.
        type: list
        elements: str
      applications:
        description: Application names (C(application_name)).
        type: list
        elements: str
  settings:
    description:
      - Server settings to write with C(ALTER SYSTEM) (into C(postgresql.auto.conf)), then reload. A value in a
        unit the setting takes (V(256MB), V(30s)), a number in the setting's own unit, a boolean, an enum name, or a
        list for list settings (C(shared_preload_libraries)).
      - A null value removes the setting from C(postgresql.auto.conf) (C(ALTER SYSTEM RESET)), so the
        configuration files or the default apply again.
      - Slow-query logging is C(log_min_duration_statement) (V(1s) logs every statement that takes a second or more;
        V(-1) turns it off). It applies on reload.
      - Units are case-sensitive, as the server reads them (V(MB), not V(mb)).
    type: dict
  pg_stat_statements:
    description:
      - Install the C(pg_stat_statements) extension in the connected database (C(CREATE EXTENSION IF NOT EXISTS)),
        and add it to C(shared_preload_libraries) (through O(settings)) when the configuration lacks it.
      - The library is loaded only at server start; until a restart it is reported in RV(pending_restart) and the
        view answers an error.
    type: bool
    default: false
  ensure_database:
    description:
      - Create the database when it does not exist (the runbooks' fix for C(FATAL database "app" does not exist)).
        When it exists with another owner than O(ensure_database.owner), the owner is changed. Encoding and locale
        of an existing database cannot change; a difference is reported as a warning.
      - Connect to a database that exists (O(login_db), V(postgres) by default).
    type: dict
    suboptions:
      name:
        description: The database.
        type: str
        required: true
      owner:
        description: Its owner, a role that exists; by default the login role.
        type: str
      template:
        description: The database to copy (V(template1) by default; V(template0) for an encoding or locale unlike it).
        type: str
      encoding:
        description: Its encoding, such as V(UTF8).
        type: str
      lc_collate:
        description: Its collation (C(LC_COLLATE)).
        type: str
      lc_ctype:
        description: Its character classification (C(LC_CTYPE)).
        type: str
notes:
  - Changing settings, the extension and ending other roles' sessions need a superuser (or, from PostgreSQL 15, the
    C(ALTER SYSTEM) privilege on each parameter, and C(pg_signal_backend)); reading the configuration files
    (C(pg_file_settings)) needs a superuser or C(pg_read_all_settings).
  - A setting given on the server's command line (C(postgres -c name=value), common in compose files) overrides
    C(ALTER SYSTEM); the module refuses it and says where to change it.
  - Nothing checks that a library in C(shared_preload_libraries) exists; a wrong name stops the server from
    starting at its next restart.
seealso:
  - module: stackops.runbooks.pg_health
  - name: Routine vacuuming
    description: What VACUUM and ANALYZE do, and the locks each statement takes.
    link: https://www.postgresql.org/docs/current/routine-vacuuming.html
  - name: ALTER SYSTEM
    description: How settings are written to postgresql.auto.conf, and which need a restart.
    link: https://www.postgresql.org/docs/current/sql-altersystem.html
"""

EXAMPLES = r"""
- name: Vacuum and analyze the tables that need it (dead tuples over 10 % and at least 1000), online
  stackops.runbooks.pg_maintenance:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    login_db: app
    vacuum: true
    analyze: true
    min_dead_pct: 10
    min_dead_tuples: 1000
    min_modified_pct: 10
    lock_timeout: 30
  register: maintenance

- name: The runbooks' "VACUUM ANALYZE;" on the whole database, every time
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    login_db: app
    vacuum: true
    analyze: true

- name: Give the space of two bloated tables back, in a maintenance window (ACCESS EXCLUSIVE locks)
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    login_db: app
    vacuum: [audit.events, app.order_items]
    full: true
    analyze: true

- name: Rebuild the indexes of a table without blocking writes
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    login_db: app
    reindex: [app.orders]

- name: End the app's sessions idle in a transaction for more than 10 minutes
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    terminate_idle: true
    idle_for: 600
    states: [idle in transaction, idle in transaction (aborted)]
    session_filter:
      databases: [app]
      users: [app]
  register: ended

- name: Turn on slow-query logging (statements of a second or more) and pg_stat_statements
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    login_db: app
    settings:
      log_min_duration_statement: 1s
    pg_stat_statements: true
  register: tuned

- name: The runbooks' max_connections increase; it needs a restart, which the result says
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    settings:
      max_connections: 200
  register: tuned

- name: Restart PostgreSQL when a setting waits for it
  stackops.runbooks.compose_service:
    project_src: /srv/app
    services: [postgres]
    state: restarted
  when: tuned.pending_restart | length > 0

- name: Undo settings written earlier (ALTER SYSTEM RESET)
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    settings:
      max_connections: null
      log_min_duration_statement: null

- name: Create the app's database when it is missing
  stackops.runbooks.pg_maintenance:
    login_password: "{{ pg_password }}"
    ensure_database:
      name: app
      owner: app
      encoding: UTF8
      template: template0
"""

RETURN = r"""
server:
  description: The server's version.
  returned: always
  type: dict
  sample: {version: "15.18", version_num: 150018, database: app}
queries:
  description: The statements run (in check mode, those a real run would run), in order.
  returned: always
  type: list
  elements: str
  sample:
    - ALTER SYSTEM SET "log_min_duration_statement" = '1s'
    - SELECT pg_reload_conf()
    - VACUUM (ANALYZE) "app"."orders"
timings:
  description: >-
    Seconds each operation that ran took to carry out (database, settings, pg_stat_statements, sessions, tables,
    reindex); reading and planning, done first for all of them, are not included.
  returned: always
  type: dict
  sample: {settings: 0.061, tables: 2.304}
database:
  description: The database of O(ensure_database) as it is after the run (as it would be, in check mode).
  returned: with O(ensure_database)
  type: dict
  sample: {name: app, existed: false, created: true, owner: app, encoding: UTF8, collate: C.UTF-8, ctype: C.UTF-8}
settings:
  description: Each setting asked for (and C(shared_preload_libraries) for O(pg_stat_statements)), with the value
    the server takes at its next reload or restart before and after, and whether it needs a restart.
  returned: with O(settings) or O(pg_stat_statements)
  type: list
  elements: dict
  sample:
    - {name: max_connections, before: "100", after: "200", changed: true, context: postmaster, needs_restart: true}
pending_restart:
  description:
    - Every setting of the server that is changed in the configuration but waits for a restart, read from
      C(pg_settings) after the reload (predicted, in check mode), with the running and the configured value.
  returned: with O(settings) or O(pg_stat_statements)
  type: list
  elements: dict
  sample: [{name: max_connections, running: "100", configured: "200"}]
pg_stat_statements:
  description: The extension in the connected database, and whether the server has loaded its library.
  returned: with O(pg_stat_statements)
  type: dict
  sample: {database: app, installed: true, created: true, preloaded: false, configured: true}
terminated:
  description:
    - The sessions ended (that would be ended, in check mode), with their idle time and last query (cut at 200
      characters, password literals replaced by C(********)).
  returned: with O(terminate_idle)
  type: list
  elements: dict
  sample:
    - {pid: 4242, user: app, database: app, application: api, client: 10.0.0.5, state: idle in transaction,
       idle_s: 731, query: "UPDATE orders SET ..."}
not_terminated:
  description: Sessions picked but not ended, with the reason (it became active, or ending it was not allowed).
  returned: with O(terminate_idle)
  type: list
  elements: dict
tables:
  description:
    - Each table vacuumed or analyzed (to be, in check mode), with the statement and its counters and sizes before
      and after (after only in a real run).
  returned: with O(vacuum) or O(analyze)
  type: list
  elements: dict
  sample:
    - table: app.orders
      action: VACUUM (ANALYZE)
      before: {live: 100000, dead: 25000, dead_pct: 20.0, table_bytes: 9003008, index_bytes: 2260992}
      after: {live: 100000, dead: 0, dead_pct: 0.0, table_bytes: 9003008, index_bytes: 2260992}
untouched:
  description: The tables asked for that needed nothing, each with the reason and its counters.
  returned: with O(vacuum) or O(analyze)
  type: list
  elements: dict
  sample: [{table: app.customers, reason: "0.4% dead tuples, under min_dead_pct 10", dead: 80}]
reindexed:
  description: Each REINDEX run (to be run, in check mode), with the index bytes before and after.
  returned: with O(reindex)
  type: list
  elements: dict
  sample: [{target: app.orders, kind: TABLE, concurrently: true, before_bytes: 4505600, after_bytes: 2260992}]
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_maintenance import IDLE_STATES
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_operations import Maintenance, check_inputs
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    connected,
    connection_argument_spec,
    ensure_libs,
)

APPLICATION = "stackops-pg_maintenance"


def argument_spec() -> dict[str, t.Any]:
    names = {"type": "list", "elements": "str"}
    spec = connection_argument_spec()
    spec.update(
        vacuum={"type": "raw", "default": False},
        full={"type": "bool", "default": False},
        analyze={"type": "raw", "default": False},
        min_dead_pct={"type": "float"},
        min_dead_tuples={"type": "int"},
        min_modified_pct={"type": "float"},
        reindex={"type": "raw", "default": False},
        concurrently={"type": "bool", "default": True},
        lock_timeout={"type": "int", "default": 0},
        terminate_idle={"type": "bool", "default": False},
        idle_for={"type": "int", "default": 300},
        states={"type": "list", "elements": "str", "choices": list(IDLE_STATES), "default": list(IDLE_STATES)},
        session_filter={"type": "dict", "options": {"databases": names, "users": names, "applications": names}},
        settings={"type": "dict"},
        pg_stat_statements={"type": "bool", "default": False},
        ensure_database={
            "type": "dict",
            "options": {
                "name": {"type": "str", "required": True},
                "owner": {"type": "str"},
                "template": {"type": "str"},
                "encoding": {"type": "str"},
                "lc_collate": {"type": "str"},
                "lc_ctype": {"type": "str"},
            },
        },
    )
    return spec


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    ensure_libs(module)
    asked = check_inputs(module.params)
    with connected(asked.login, APPLICATION) as conn:
        work = Maintenance(module, conn, asked)
        work.plan()
        work.apply()
        return work.finish()


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
