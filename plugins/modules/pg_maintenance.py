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

import time
import typing as t
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_maintenance import (
    IDLE_STATES,
    REINDEX_KINDS,
    VACUUM_KINDS,
    FileEntry,
    Guc,
    SettingChange,
    TablePlan,
    TableStat,
    Thresholds,
    check_reindex,
    configured,
    lenient,
    literal,
    pick_sessions,
    plan_settings,
    plan_tables,
    show,
    split_list,
    with_library,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    DatabaseError,
    check_database_name,
    connected,
    connection_argument_spec,
    ensure_libs,
    redacted,
    rows,
    sql,
)

APPLICATION = "stackops-pg_maintenance"
LIBRARY = "pg_stat_statements"
SPL = "shared_preload_libraries"
RELOAD_WAIT_S = 10.0

SETTINGS = (
    "SELECT name, setting, unit, vartype, context, source, min_val, max_val, enumvals, boot_val, pending_restart "
    "FROM pg_catalog.pg_settings"
)
FILE_SETTINGS = "SELECT sourcefile, seqno, name, setting FROM pg_catalog.pg_file_settings WHERE sourcefile IS NOT NULL"
SESSIONS = (
    "SELECT pid, usename AS user, datname AS database, application_name AS application, "
    "host(client_addr) AS client, state, backend_type, state_change, "
    "extract(epoch FROM now() - state_change)::float AS idle_s, left(query, 200) AS query "
    "FROM pg_catalog.pg_stat_activity ORDER BY state_change"
)
RELATION = (
    "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)"
)
USER_TABLES = (
    "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname !~ '^pg_(toast|temp_)'"
)
TABLE_STATS = (
    "SELECT c.oid, n.nspname AS schema, c.relname AS name, coalesce(s.n_live_tup, 0) AS live, "
    "coalesce(s.n_dead_tup, 0) AS dead, coalesce(s.n_mod_since_analyze, 0) AS modified, "
    "pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes, "
    "pg_total_relation_size(c.oid) AS total_bytes, s.last_vacuum, s.last_autovacuum, s.last_analyze, "
    "s.last_autoanalyze FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = ANY(%s::oid[]) "
    "ORDER BY n.nspname, c.relname"
)
# Ends a session only while it is still in the idle spell it was picked in. From PostgreSQL 14 the call waits until the
# process is gone (or the time runs out, and answers false).
TERMINATE_WHERE = (
    "AS ended FROM pg_catalog.pg_stat_activity "
    "WHERE pid = %(pid)s AND state = %(state)s AND state_change = %(state_change)s"
)
TERMINATE = "SELECT pg_terminate_backend(pid) " + TERMINATE_WHERE
TERMINATE_WAITING = "SELECT pg_terminate_backend(pid, %(wait_ms)s) " + TERMINATE_WHERE
TERMINATE_WAIT_MS = 5000
# Indexes a failed REINDEX CONCURRENTLY leaves behind: the new copy (_ccnew) or the old one (_ccold), invalid.
LEFTOVER_INDEXES = (
    "SELECT n.nspname AS schema, c.relname AS name FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT i.indisvalid AND c.relname ~ '_cc(new|old)[0-9]*$'"
)


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


def scope(option: str, value: t.Any) -> bool | list[str]:
    """vacuum, analyze and reindex: true/false, or the names of tables (and indexes)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, str):
        try:
            return boolean(value, strict=True)
        except TypeError:
            value = value.split(",")
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        found = [item.strip() for item in value if item.strip()]
        if found:
            return found
    raise StackopsError(f"{option} must be true, false or a list of table names, not {value!r}.")


@dataclass
class Asked:
    vacuum: bool | list[str]
    analyze: bool | list[str]
    reindex: bool | list[str]
    thresholds: Thresholds


def check_inputs(p: dict[str, t.Any]) -> Asked:
    asked = Asked(
        scope("vacuum", p["vacuum"]),
        scope("analyze", p["analyze"]),
        scope("reindex", p["reindex"]),
        Thresholds(p["min_dead_pct"], p["min_dead_tuples"], p["min_modified_pct"]),
    )
    for name in ("min_dead_pct", "min_dead_tuples", "min_modified_pct", "lock_timeout", "idle_for"):
        if p[name] is not None and p[name] < 0:
            raise StackopsError(f"{name} must be 0 or more, not {p[name]}.")
    for name in ("min_dead_pct", "min_modified_pct"):
        if p[name] is not None and p[name] > 100:
            raise StackopsError(f"{name} is a percentage of the table's rows: 0 to 100, not {p[name]:g}.")
    if p["ensure_database"]:
        check_database_name(p["ensure_database"]["name"], "ensure_database.name", new=True)
        if p["ensure_database"]["template"]:
            check_database_name(p["ensure_database"]["template"], "ensure_database.template")
    if p["full"] and not asked.vacuum:
        raise StackopsError("full=true rewrites the tables that vacuum names; set vacuum too (true or a list).")
    if p["terminate_idle"] and not p["states"]:
        raise StackopsError(f"states is empty, so terminate_idle would end nothing; give some of {list(IDLE_STATES)}.")
    if p["settings"] is not None and not p["settings"]:
        raise StackopsError("settings is empty; give the settings to write, or leave the option out.")
    return asked


def stamp(value: t.Any) -> t.Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class Maintenance:
    """Reads and checks everything first (plan), then makes the changes in order (apply)."""

    def __init__(self, module: AnsibleModule, conn: t.Any, asked: Asked) -> None:
        self.module = module
        self.p = module.params
        self.conn = conn
        self.asked = asked
        self.check = module.check_mode
        self.queries: list[str] = []
        self.result: dict[str, t.Any] = {}
        self.diff: dict[str, dict[str, t.Any]] = {"before": {}, "after": {}}
        self.changed = False
        # What plan() finds, for apply(); None where the part was not asked for.
        self.gucs: dict[str, Guc] = {}
        self.files: dict[str, list[FileEntry]] = {}
        self.database_plan: dict[str, t.Any] | None = None
        self.settings_plan: list[SettingChange] | None = None
        self.extension: dict[str, t.Any] | None = None
        self.sessions: list[dict[str, t.Any]] | None = None
        self.tables: TablePlan | None = None
        self.reindex: list[dict[str, t.Any]] | None = None
        (server,) = rows(
            conn,
            "SELECT current_setting('server_version') AS version, "
            "current_setting('server_version_num')::int AS version_num, current_database() AS database, "
            "pg_backend_pid() AS pid",
        )
        self.pid = server.pop("pid")
        self.version = server["version_num"]
        self.result["server"] = server
        self.db = server["database"]

    # --- running statements -------------------------------------------------------------------------------------

    def run(self, statement: t.Any) -> None:
        """Records a changing statement; runs it unless in check mode."""
        self.queries.append(statement.as_string(self.conn) if hasattr(statement, "as_string") else statement)
        if not self.check:
            with self.conn.cursor() as cur:
                cur.execute(statement)

    def fail(self, what: str, exc: Exception, note: str = "") -> t.NoReturn:
        """A statement failed midway: say what, and return what was done before it."""
        message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        done = {key: value for key, value in self.result.items() if key != "server"}
        raise StackopsError(f"{what} failed: {message}.{note}", queries=self.queries, **done)

    # --- the plan -----------------------------------------------------------------------------------------------

    def plan(self) -> None:
        if self.p["ensure_database"]:
            self.database_plan = self.plan_database()
        if self.p["settings"] or self.p["pg_stat_statements"]:
            self.settings_plan = self.plan_settings()
        if self.p["pg_stat_statements"]:
            self.extension = self.plan_extension()
        if self.p["terminate_idle"]:
            self.sessions = self.plan_sessions()
        if self.asked.vacuum or self.asked.analyze:
            self.tables = self.plan_tables()
        if self.asked.reindex:
            self.reindex = self.plan_reindex()

    def plan_database(self) -> dict[str, t.Any]:
        spec = self.p["ensure_database"]
        found = self.database(spec["name"])
        owner = spec["owner"]
        problems = []
        if owner and not rows(self.conn, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (owner,)):
            problems.append(f"the owner role {owner} does not exist (create it first, or give another owner)")
        if found is None:
            template = spec["template"]
            if template and self.database(template) is None:
                problems.append(f"the template database {template} does not exist (use template1 or template0)")
            encoding = spec["encoding"]
            if encoding and rows(self.conn, "SELECT pg_char_to_encoding(%s) < 0 AS bad", (encoding,))[0]["bad"]:
                problems.append(f"{encoding} is not an encoding PostgreSQL knows (use one such as UTF8)")
        if problems:
            raise StackopsError(f"ensure_database {spec['name']}: {'; '.join(problems)}. Nothing was changed.")
        return {"found": found, "owner": owner}

    def database(self, name: str) -> dict[str, t.Any] | None:
        found = rows(
            self.conn,
            "SELECT datname AS name, pg_catalog.pg_get_userbyid(datdba) AS owner, "
            "pg_catalog.pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype "
            "FROM pg_catalog.pg_database WHERE datname = %s",
            (name,),
        )
        return found[0] if found else None

    def read_settings(self) -> tuple[dict[str, Guc], dict[str, list[FileEntry]]]:
        gucs = {row["name"].lower(): Guc.from_row(row) for row in rows(self.conn, SETTINGS)}
        try:
            entries = rows(self.conn, FILE_SETTINGS)
        except DatabaseError as exc:
            raise StackopsError(
                f"Cannot read the configuration files (pg_file_settings) as {self.p['login_user']}: "
                f"{str(exc).strip().splitlines()[0]}. Connect as a superuser, or grant it pg_read_all_settings."
            ) from None
        files: dict[str, list[FileEntry]] = {}
        for row in entries:
            files.setdefault(row["name"].lower(), []).append(FileEntry(**row))
        return gucs, files

    def plan_settings(self) -> list[SettingChange]:
        gucs, files = self.read_settings()
        wanted = dict(self.p["settings"] or {})
        if self.p["pg_stat_statements"]:
            given = next((key for key in wanted if key.lower() == SPL), None)
            if given is not None:
                wanted[given] = with_library(split_list(wanted[given] or ""), LIBRARY) or wanted[given]
            else:
                libraries = configured(gucs[SPL], files.get(SPL, []))
                added = with_library(libraries if isinstance(libraries, tuple) else (), LIBRARY)
                if added is not None:
                    wanted[SPL] = list(added)
        known = [key.lower() for key in wanted if key.lower() in gucs]
        self.gucs, self.files = gucs, files
        return plan_settings(wanted, gucs, files, self.not_allowed(known))

    def not_allowed(self, names: list[str]) -> list[str]:
        """The settings the login role may not ALTER SYSTEM: per parameter from 15, else all but for a superuser."""
        if not names:
            return []
        if self.version >= 150000:
            query = (
                "SELECT name FROM unnest(%s::text[]) AS name WHERE NOT has_parameter_privilege(name, 'ALTER SYSTEM')"
            )
            return [row["name"] for row in rows(self.conn, query, (names,))]
        (role,) = rows(self.conn, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user")
        return [] if role["rolsuper"] else names

    def plan_extension(self) -> dict[str, t.Any]:
        found = rows(
            self.conn,
            "SELECT installed_version FROM pg_catalog.pg_available_extensions WHERE name = %s",
            (LIBRARY,),
        )
        if not found:
            raise StackopsError(
                f"The {LIBRARY} extension is not available on this server; install PostgreSQL's contrib modules "
                "(Debian's postgresql-NN package has them; elsewhere postgresql-contrib)."
            )
        return {"installed": found[0]["installed_version"] is not None}

    def plan_sessions(self) -> list[dict[str, t.Any]]:
        flt = self.p["session_filter"] or {}
        return pick_sessions(
            redacted(rows(self.conn, SESSIONS)),
            self.pid,
            self.p["states"],
            self.p["idle_for"],
            flt.get("databases") or (),
            flt.get("users") or (),
            flt.get("applications") or (),
        )

    def resolve(self, option: str, names: list[str], kinds: t.Collection[str]) -> list[dict[str, t.Any]]:
        """Each name as the server resolves it (search path, quoting), or StackopsError naming every bad one."""
        found, problems = [], []
        for name in names:
            try:
                relation = rows(self.conn, RELATION, (name,))
            except DatabaseError as exc:
                problems.append(f"{name!r} is not a valid relation name ({str(exc).strip().splitlines()[0]})")
                continue
            if not relation:
                problems.append(f"{name} was not found in database {self.db}")
            elif relation[0]["relkind"] not in kinds:
                what = "an index" if relation[0]["relkind"] in ("i", "I") else "not a table"
                problems.append(f"{name} is {what}")
            else:
                found.append(relation[0])
        if problems:
            raise StackopsError(
                f"{option}: {'; '.join(problems)}. Give tables{' or indexes' if option == 'reindex' else ''} of "
                f"{self.db}, schema-qualified when they are not on the search path. Nothing was changed."
            )
        return found

    def stats(self, oids: list[int]) -> list[TableStat]:
        found = rows(self.conn, TABLE_STATS, (oids,))
        return [TableStat(**{key: stamp(value) for key, value in row.items()}) for row in found]

    def plan_tables(self) -> TablePlan:
        vacuum, analyze = self.asked.vacuum, self.asked.analyze
        every = [row["oid"] for row in rows(self.conn, USER_TABLES)] if True in (vacuum, analyze) else []

        def oids(value: bool | list[str], option: str) -> list[int]:
            if value is True:
                return every
            return [row["oid"] for row in self.resolve(option, value or [], VACUUM_KINDS)]

        vacuum_oids, analyze_oids = oids(vacuum, "vacuum"), oids(analyze, "analyze")
        th = self.asked.thresholds
        whole = (
            not isinstance(vacuum, list)
            and not isinstance(analyze, list)
            and not th.for_vacuum
            and th.min_modified_pct is None
        )
        stats = self.stats(sorted(set(vacuum_oids) | set(analyze_oids)))
        return plan_tables(stats, set(vacuum_oids), set(analyze_oids), self.p["full"], th, database_wide=whole)

    def plan_reindex(self) -> list[dict[str, t.Any]]:
        if self.asked.reindex is True:
            targets = [{"kind": "DATABASE", "schema": None, "name": self.db, "oid": None}]
        else:
            found = self.resolve("reindex", t.cast("list[str]", self.asked.reindex), REINDEX_KINDS)
            targets = [{**row, "kind": REINDEX_KINDS[row.pop("relkind")]} for row in found]
        check_reindex([item for item in targets if item["schema"]], self.p["concurrently"], self.version)
        for item in targets:
            item["before_bytes"] = self.index_bytes(item)
        return targets

    def index_bytes(self, item: dict[str, t.Any]) -> int:
        if item["kind"] == "DATABASE":
            query = "SELECT coalesce(sum(pg_relation_size(oid)), 0)::bigint AS bytes FROM pg_class WHERE relkind = 'i'"
            return rows(self.conn, query)[0]["bytes"]
        # REINDEX CONCURRENTLY gives an index a new oid: look it up by name again.
        name = f"{sql.Identifier(item['schema'], item['name']).as_string(self.conn)}"
        query = (
            "SELECT CASE WHEN c.relkind IN ('i', 'I') THEN pg_relation_size(c.oid) ELSE pg_indexes_size(c.oid) END "
            "AS bytes FROM pg_catalog.pg_class c WHERE c.oid = to_regclass(%s)"
        )
        found = rows(self.conn, query, (name,))
        return found[0]["bytes"] if found else 0

    # --- the changes --------------------------------------------------------------------------------------------

    def apply(self) -> None:
        if self.p["lock_timeout"]:
            with self.conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", (self.p["lock_timeout"] * 1000,))
        if self.database_plan is not None:
            self.apply_database(self.database_plan)
        if self.settings_plan is not None:
            self.apply_settings(self.settings_plan)
        if self.extension is not None:
            self.apply_extension(self.extension)
        if self.sessions is not None:
            self.apply_sessions(self.sessions)
        if self.tables is not None:
            self.apply_tables(self.tables)
        if self.reindex is not None:
            self.apply_reindex(self.reindex)

    def apply_database(self, plan: dict[str, t.Any]) -> None:
        spec, found, owner = self.p["ensure_database"], plan["found"], plan["owner"]
        try:
            if found is None:
                self.run(create_database(spec))
            elif owner and found["owner"] != owner:
                self.run(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(spec["name"]), sql.Identifier(owner))
                )
        except DatabaseError as exc:
            self.fail(f"ensure_database {spec['name']}", exc)
        for key, label in (("encoding", "encoding"), ("lc_collate", "collate"), ("lc_ctype", "ctype")):
            if found is not None and spec[key] and spec[key].lower() != str(found[label]).lower():
                self.module.warn(
                    f"Database {spec['name']} exists with {label} {found[label]}, not {spec[key]}, which cannot "
                    "change in place (dump it, create it anew and restore)."
                )
        if self.check:
            after = dict(found or {"name": spec["name"], "encoding": spec["encoding"]})
            after["owner"] = owner or after.get("owner") or self.p["login_user"]
        else:
            after = self.database(spec["name"]) or {}
        self.changed |= found is None or (bool(owner) and found["owner"] != owner)
        self.result["database"] = {**after, "existed": found is not None, "created": found is None}
        self.diff["before"]["database"] = found
        self.diff["after"]["database"] = after

    def apply_settings(self, plan: list[SettingChange]) -> None:
        changes = [c for c in plan if c.changed]
        written: list[SettingChange] = []
        for change in changes:
            name = sql.Identifier(*change.name.split("."))
            if change.values is None:
                statement = sql.SQL("ALTER SYSTEM RESET {}").format(name)
            else:
                values = sql.SQL(", ").join(sql.Literal(v) for v in change.values)
                statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(name, values)
            try:
                self.run(statement)
            except DatabaseError as exc:
                self.undo_settings(written)
                self.fail(f"ALTER SYSTEM of {change.name} (the settings written before it were put back)", exc)
            written.append(change)
        if changes:
            self.reload()
        self.changed |= bool(changes)
        self.result["settings"] = [c.report() for c in plan]
        self.result["pending_restart"] = self.pending(plan)
        if self.result["pending_restart"]:
            names = ", ".join(p["name"] for p in self.result["pending_restart"])
            self.module.warn(
                f"PostgreSQL needs a restart to apply {names}: a reload does not change them, so the server still "
                "runs with the old values. Restart it (in a maintenance window)."
            )
        self.diff["before"]["settings"] = {c.name: c.before for c in changes}
        self.diff["after"]["settings"] = {c.name: c.after for c in changes}

    def undo_settings(self, written: list[SettingChange]) -> None:
        """Puts postgresql.auto.conf back as it was for the settings written before a failure."""
        for change in written:
            key = change.name.lower()
            entries = [e for e in self.files.get(key, []) if e.in_auto_conf]
            name = sql.Identifier(*change.name.split("."))
            if entries:
                guc = self.gucs[key]
                value = lenient(guc, entries[-1].setting)
                literals = sql.SQL(", ").join(sql.Literal(v) for v in literal(guc, value))
                statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(name, literals)
            else:
                statement = sql.SQL("ALTER SYSTEM RESET {}").format(name)
            with self.conn.cursor() as cur:
                cur.execute(statement)

    def reload(self) -> None:
        (before,) = rows(self.conn, "SELECT pg_conf_load_time() AS at")
        self.run("SELECT pg_reload_conf()")
        if self.check:
            return
        # The reload is a signal: wait until this session has re-read the files, so pg_settings is current.
        deadline = time.monotonic() + RELOAD_WAIT_S
        while rows(self.conn, "SELECT pg_conf_load_time() AS at")[0]["at"] <= before["at"]:
            if time.monotonic() > deadline:
                self.module.warn(f"The server had not re-read its configuration {RELOAD_WAIT_S:g}s after the reload.")
                return
            time.sleep(0.05)

    def pending(self, plan: list[SettingChange]) -> list[dict[str, t.Any]]:
        """Settings waiting for a restart: from pg_settings after the reload, or predicted in check mode."""
        if self.check:
            gucs, files = self.gucs, self.files
            names = {g.name for g in gucs.values() if g.pending_restart}
            for change in plan:
                if change.changed:
                    (names.add if change.restart else names.discard)(change.name)
            after = {c.name.lower(): c.after for c in plan if c.changed}
        else:
            gucs, files = self.read_settings()
            names = {g.name for g in gucs.values() if g.pending_restart}
            after = {}
        found = []
        for name in sorted(names, key=str.lower):
            guc = gucs[name.lower()]
            target = after.get(name.lower()) or show(guc, configured(guc, files.get(name.lower(), [])))
            found.append({"name": guc.name, "running": show(guc, lenient(guc, guc.setting)), "configured": target})
        return found

    def apply_extension(self, plan: dict[str, t.Any]) -> None:
        if not plan["installed"]:
            try:
                self.run(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(LIBRARY)))
            except DatabaseError as exc:
                self.fail(f"CREATE EXTENSION {LIBRARY} in {self.db}", exc)
            self.changed = True
        running = lenient(self.gucs[SPL], self.gucs[SPL].setting)
        configured_now = next((s for s in self.settings_plan or [] if s.name == SPL), None)
        self.result["pg_stat_statements"] = {
            "database": self.db,
            "installed": True,
            "created": not plan["installed"],
            "preloaded": isinstance(running, tuple) and LIBRARY in running,
            "configured": True if configured_now is None else LIBRARY in split_list(configured_now.after or ""),
        }
        self.diff["before"]["pg_stat_statements"] = {"installed": plan["installed"]}
        self.diff["after"]["pg_stat_statements"] = {"installed": True}

    def apply_sessions(self, picked: list[dict[str, t.Any]]) -> None:
        ended, kept = [], []
        kill = TERMINATE_WAITING if self.version >= 140000 else TERMINATE
        for session in picked:
            report: dict[str, t.Any] = {
                k: session[k] for k in ("pid", "user", "database", "application", "client", "state", "query")
            }
            report["idle_s"] = int(session["idle_s"])
            self.queries.append(f"SELECT pg_terminate_backend({session['pid']})")
            if self.check:
                ended.append(report)
                continue
            try:
                found = rows(self.conn, kill, {**session, "wait_ms": TERMINATE_WAIT_MS})
            except DatabaseError as exc:
                kept.append({**report, "reason": str(exc).strip().splitlines()[0]})
                continue
            if found and found[0]["ended"]:
                ended.append(report)
            else:
                kept.append(
                    {**report, "reason": "it left that idle spell (became active or ended) before it was ended"}
                )
        if any("reason" in k and "permission" in k["reason"] for k in kept):
            self.module.warn("Some sessions could not be ended (see not_terminated): the login role lacks the right.")
        self.changed |= bool(ended)
        self.result["terminated"] = ended
        self.result["not_terminated"] = kept
        left = {k["pid"] for k in kept}
        self.diff["before"]["sessions"] = [describe(s) for s in picked]
        self.diff["after"]["sessions"] = [describe(s) for s in picked if s["pid"] in left]

    def apply_tables(self, plan: TablePlan) -> None:
        if any(action.full for action in plan.actions):
            self.module.warn(
                "VACUUM FULL takes an ACCESS EXCLUSIVE lock on each table while it rewrites it: no reads or writes "
                "until it is done. It needs free disk space for a copy of the table; run it in a maintenance window."
            )
        if plan.database_wide:
            analyze = self.asked.analyze is True or self.p["full"]
            options = [o for o, on in (("FULL", self.p["full"]), ("ANALYZE", analyze)) if on]
            if self.asked.vacuum is True:
                text = f"VACUUM ({', '.join(options)})" if options else "VACUUM"
            else:
                text = "ANALYZE"
            try:
                self.run(text)
            except DatabaseError as exc:
                self.fail(f"{text} of database {self.db}", exc)
        else:
            for action in plan.actions:
                statement = sql.SQL(f"{action.label} {{}}").format(
                    sql.Identifier(action.table.schema, action.table.name)
                )
                try:
                    self.run(statement)
                except DatabaseError as exc:
                    self.record_tables(plan, done=plan.actions.index(action))
                    self.fail(f"{action.label} of {action.table.qualified}", exc)
        self.record_tables(plan)

    def record_tables(self, plan: TablePlan, done: int | None = None) -> None:
        actions = plan.actions if done is None else plan.actions[:done]
        after = {} if self.check else {s.oid: s for s in self.stats([a.table.oid for a in actions])}
        report = []
        for action in actions:
            entry = {"table": action.table.qualified, "action": action.label, "before": action.table.report()}
            if action.table.oid in after:
                entry["after"] = after[action.table.oid].report()
            report.append(entry)
        self.changed |= bool(actions) or plan.database_wide
        self.result["tables"] = report
        self.result["untouched"] = plan.untouched

    def apply_reindex(self, targets: list[dict[str, t.Any]]) -> None:
        concurrently = self.p["concurrently"] and self.version >= 120000
        if not concurrently:
            self.module.warn(
                "REINDEX without CONCURRENTLY blocks writes to each table, and reads that use its indexes, until it "
                "ends."
            )
        done: list[dict[str, t.Any]] = []
        for item in targets:
            if item["kind"] == "DATABASE":
                name = sql.Identifier(item["name"])
            else:
                name = sql.Identifier(item["schema"], item["name"])
            how = " CONCURRENTLY" if concurrently else ""
            statement = sql.SQL(f"REINDEX {item['kind']}{how} {{}}").format(name)
            label = item["name"] if item["kind"] == "DATABASE" else f"{item['schema']}.{item['name']}"
            leftovers = {(r["schema"], r["name"]) for r in rows(self.conn, LEFTOVER_INDEXES)} if concurrently else set()
            try:
                self.run(statement)
            except DatabaseError as exc:
                note = self.drop_leftovers(leftovers) if concurrently else ""
                self.result["reindexed"] = done
                self.fail(f"REINDEX {item['kind']}{how} {label}", exc, note)
            report = {"target": label, "kind": item["kind"], "concurrently": concurrently}
            report["before_bytes"] = item["before_bytes"]
            if not self.check:
                report["after_bytes"] = self.index_bytes(item)
            done.append(report)
        self.changed |= bool(done)
        self.result["reindexed"] = done

    def drop_leftovers(self, earlier: set[tuple[str, str]]) -> str:
        """Drops the invalid indexes a failed REINDEX CONCURRENTLY of this run left; says what it did."""
        dropped, left = [], []
        for row in rows(self.conn, LEFTOVER_INDEXES):
            if (row["schema"], row["name"]) in earlier:
                continue
            name = f"{row['schema']}.{row['name']}"
            try:
                with self.conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                            sql.Identifier(row["schema"], row["name"])
                        )
                    )
            except DatabaseError as exc:
                left.append(f"{name} ({str(exc).strip().splitlines()[0]})")
                continue
            dropped.append(name)
        note = f" The invalid indexes it left were dropped: {', '.join(dropped)}." if dropped else ""
        if left:
            note += (
                f" It left invalid indexes that could not be dropped now: {', '.join(left)}. Drop them with DROP INDEX "
                "CONCURRENTLY once the transactions writing to the table have ended."
            )
        return note

    def finish(self) -> dict[str, t.Any]:
        result = {"changed": self.changed, "queries": self.queries, **self.result}
        if self.module._diff:
            result["diff"] = self.diff
        return result


def create_database(spec: dict[str, t.Any]) -> t.Any:
    parts = [sql.SQL("CREATE DATABASE {}").format(sql.Identifier(spec["name"]))]
    if spec["owner"]:
        parts.append(sql.SQL("OWNER {}").format(sql.Identifier(spec["owner"])))
    if spec["template"]:
        parts.append(sql.SQL("TEMPLATE {}").format(sql.Identifier(spec["template"])))
    for option, key in (("ENCODING", "encoding"), ("LC_COLLATE", "lc_collate"), ("LC_CTYPE", "lc_ctype")):
        if spec[key]:
            parts.append(sql.SQL(f"{option} {{}}").format(sql.Literal(spec[key])))
    return sql.SQL(" ").join(parts)


def describe(session: dict[str, t.Any]) -> str:
    return f"pid {session['pid']} {session['user']}@{session['database']} {session['state']}"


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    ensure_libs(module)
    asked = check_inputs(module.params)
    with connected(module.params, APPLICATION) as conn:
        work = Maintenance(module, conn, asked)
        work.plan()
        work.apply()
        return work.finish()


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
