#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_health
short_description: Everything the runbooks check on PostgreSQL, in one connection, with a verdict
version_added: 0.1.0
description:
  - Connects once, read-only, and reads the server's health. It replaces the runbooks' list of
    C(psql -c "SELECT ... FROM pg_stat_activity ...") commands.
  - The sections are availability, version and recovery role; connections by state and by client against
    C(max_connections); idle-in-transaction sessions and long-running queries; blocked and blocking sessions;
    database and largest-table sizes; cache hit ratio; dead tuples and last (auto)vacuum and analyze;
    transaction-ID wraparound age; replication lag; C(pg_stat_statements) top queries; settings waiting for a
    restart.
  - Each reading is compared with O(thresholds). Every crossing is a finding with a reason, and the worst one
    gives RV(status) (V(ok), V(warning) or V(critical)). O(fail_on) says which status fails the task.
  - An unreachable server is a critical finding (RV(is_available=false)), not a crash. With O(fail_on=never) it
    is reported as data.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.health
  - stackops.runbooks.attributes
options:
  checks:
    description:
      - The sections to read. Availability, version and recovery role are always read. Default is every section.
      - A liveness probe can ask for V(connections) alone.
    type: list
    elements: str
    choices: [connections, activity, locks, sizes, cache, vacuum, wraparound, replication, statements, settings]
  thresholds:
    description:
      - Numbers that override the defaults. Unknown names are refused with the list of valid ones.
      - C(connections_warning_pct) 80 and C(connections_critical_pct) 95 (of C(max_connections)).
      - C(idle_in_transaction_warning_s) 60 and C(idle_in_transaction_critical_s) 600.
      - C(long_query_warning_s) 60 and C(long_query_critical_s) 300.
      - C(lock_wait_warning_s) 10 and C(lock_wait_critical_s) 60.
      - C(cache_hit_warning_pct) 90 and C(cache_hit_critical_pct) 80, below which it is a finding, judged only
        after C(cache_min_reads) 1000 block reads.
      - C(dead_tuples_warning_pct) 20 and C(dead_tuples_critical_pct) 50, for tables over
        C(dead_tuples_min_rows) 10000 rows.
      - C(wraparound_warning_pct) 50 and C(wraparound_critical_pct) 75 (of the 2^31 XID horizon).
      - C(replication_lag_warning_s) 30 and C(replication_lag_critical_s) 300.
    type: dict
    default: {}
  top:
    description:
      - How many rows the lists keep (largest tables, top statements, long queries).
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Check PostgreSQL, failing the task only when something is critical
  stackops.runbooks.pg_health:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    login_db: app
  register: pg

- name: A cheap liveness probe that never fails the task
  stackops.runbooks.pg_health:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    checks: [connections]
    fail_on: never

- name: Stricter on long queries for an OLTP database
  stackops.runbooks.pg_health:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    thresholds:
      long_query_warning_s: 5
      long_query_critical_s: 30
"""

RETURN = r"""
is_available:
  description: Whether the server accepted the connection.
  returned: always
  type: bool
  sample: true
status:
  description: The verdict, the worst severity among RV(findings).
  returned: always
  type: str
  sample: warning
findings:
  description: One entry per threshold crossed, each with a reason.
  returned: always
  type: list
  elements: dict
  sample:
    - check: activity
      severity: warning
      message: "idle in transaction for 75s (pid 4242, app, user app), at or above the warning threshold 60s"
      value: 75
      threshold: 60
conn_err_msg:
  description: Why the connection failed.
  returned: when RV(is_available) is false
  type: str
server:
  description: Version and role.
  returned: when available
  type: dict
  sample: {version: "15.18", version_num: 150018, in_recovery: false}
connections:
  description: Connections in use against C(max_connections), by state and by client address and user.
  returned: when the section was read
  type: dict
activity:
  description: The oldest idle-in-transaction sessions and the long-running queries (query text truncated).
  returned: when the section was read
  type: dict
locks:
  description: Sessions waiting for a lock, with who blocks them and for how long.
  returned: when the section was read
  type: dict
sizes:
  description: Database sizes and the largest tables.
  returned: when the section was read
  type: dict
cache:
  description: Block reads and hits of the connected database and the hit ratio.
  returned: when the section was read
  type: dict
vacuum:
  description: Tables with the most dead tuples, with their last (auto)vacuum and (auto)analyze times.
  returned: when the section was read
  type: dict
wraparound:
  description: The oldest transaction ID age per database, and as a percentage of the 2^31 horizon.
  returned: when the section was read
  type: dict
replication:
  description: On a primary, each standby's state and lag; on a standby, its replay lag.
  returned: when the section was read
  type: dict
statements:
  description: The top statements by mean time from pg_stat_statements, or a note saying why there are none.
  returned: when the section was read
  type: dict
settings:
  description: Settings changed but waiting for a restart.
  returned: when the section was read
  type: dict
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    Finding,
    finish,
    health_argument_spec,
    merge_thresholds,
    rate,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    DatabaseError,
    connect,
    connection_argument_spec,
    ensure_libs,
    rows,
)

SECTIONS = [
    "connections",
    "activity",
    "locks",
    "sizes",
    "cache",
    "vacuum",
    "wraparound",
    "replication",
    "statements",
    "settings",
]
DEFAULTS = {
    "connections_warning_pct": 80,
    "connections_critical_pct": 95,
    "idle_in_transaction_warning_s": 60,
    "idle_in_transaction_critical_s": 600,
    "long_query_warning_s": 60,
    "long_query_critical_s": 300,
    "lock_wait_warning_s": 10,
    "lock_wait_critical_s": 60,
    "cache_hit_warning_pct": 90,
    "cache_hit_critical_pct": 80,
    "cache_min_reads": 1000,
    "dead_tuples_warning_pct": 20,
    "dead_tuples_critical_pct": 50,
    "dead_tuples_min_rows": 10000,
    "wraparound_warning_pct": 50,
    "wraparound_critical_pct": 75,
    "replication_lag_warning_s": 30,
    "replication_lag_critical_s": 300,
}
XID_HORIZON = 2**31
# Query texts are cut at 200 characters; the module's own session (pg_backend_pid) is never a finding.


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(health_argument_spec(SECTIONS))
    spec["top"] = {"type": "int", "default": 10}
    return spec


def read_connections(conn: t.Any, th: dict[str, float], top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    (limits,) = rows(
        conn,
        "SELECT current_setting('max_connections')::int AS max_connections, "
        "current_setting('superuser_reserved_connections')::int AS reserved",
    )
    states = rows(
        conn,
        "SELECT coalesce(state, 'background') AS state, count(*) AS count FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC",
    )
    clients = rows(
        conn,
        "SELECT coalesce(host(client_addr), 'local') AS client, usename AS user, "
        "datname AS database, count(*) AS count FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT %s",
        (top,),
    )
    used = sum(s["count"] for s in states)
    pct = round(100.0 * used / limits["max_connections"], 1)
    data = {
        "used": used,
        "max_connections": limits["max_connections"],
        "superuser_reserved": limits["reserved"],
        "used_pct": pct,
        "by_state": {s["state"]: s["count"] for s in states},
        "by_client": clients,
    }
    label = f"{used} of {limits['max_connections']} connections in use ({pct:g}%)"
    found = rate("connections", label, pct, th["connections_warning_pct"], th["connections_critical_pct"], "%")
    return data, found


def read_activity(conn: t.Any, th: dict[str, float], top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    idle = rows(
        conn,
        "SELECT pid, usename AS user, datname AS database, application_name AS application, "
        "round(extract(epoch FROM now() - state_change))::int AS seconds, "
        "left(query, 200) AS last_query FROM pg_stat_activity "
        "WHERE state IN ('idle in transaction', 'idle in transaction (aborted)') "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
        "ORDER BY state_change LIMIT %s",
        (top,),
    )
    long = rows(
        conn,
        "SELECT pid, usename AS user, datname AS database, application_name AS application, "
        "round(extract(epoch FROM now() - query_start))::int AS seconds, wait_event_type, "
        "left(query, 200) AS query FROM pg_stat_activity "
        "WHERE state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
        "AND now() - query_start > %s * interval '1 second' "
        "ORDER BY query_start LIMIT %s",
        (th["long_query_warning_s"], top),
    )
    found = []
    for s in idle:
        label = f"session pid {s['pid']} ({s['user']}@{s['database']}) idle in transaction for {s['seconds']}s"
        found += rate(
            "activity",
            label,
            s["seconds"],
            th["idle_in_transaction_warning_s"],
            th["idle_in_transaction_critical_s"],
            "s",
        )
    for q in long:
        label = f"query of pid {q['pid']} ({q['user']}@{q['database']}) running for {q['seconds']}s"
        found += rate("activity", label, q["seconds"], th["long_query_warning_s"], th["long_query_critical_s"], "s")
    return {"idle_in_transaction": idle, "long_queries": long}, found


def read_locks(conn: t.Any, th: dict[str, float], top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    blocked = rows(
        conn,
        "SELECT pid, usename AS user, datname AS database, pg_blocking_pids(pid) AS blocked_by, "
        "round(extract(epoch FROM now() - query_start))::int AS seconds, "
        "left(query, 200) AS query FROM pg_stat_activity "
        "WHERE cardinality(pg_blocking_pids(pid)) > 0 ORDER BY query_start LIMIT %s",
        (top,),
    )
    found = []
    for b in blocked:
        label = (
            f"pid {b['pid']} ({b['user']}@{b['database']}) waits for a lock held by pid(s) "
            f"{', '.join(map(str, b['blocked_by']))} for {b['seconds']}s"
        )
        found += rate("locks", label, b["seconds"], th["lock_wait_warning_s"], th["lock_wait_critical_s"], "s")
    return {"blocked": blocked, "blocked_count": len(blocked)}, found


def read_sizes(conn: t.Any, _th: dict[str, float], top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    databases = rows(
        conn,
        "SELECT datname AS database, pg_database_size(datname) AS bytes FROM pg_database "
        "WHERE datallowconn ORDER BY 2 DESC",
    )
    tables = rows(
        conn,
        "SELECT n.nspname AS schema, c.relname AS table, pg_total_relation_size(c.oid) AS bytes, "
        "c.reltuples::bigint AS estimated_rows FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 3 DESC LIMIT %s",
        (top,),
    )
    return {"databases": databases, "largest_tables": tables}, []


def read_cache(conn: t.Any, th: dict[str, float], _top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    (stats,) = rows(
        conn, "SELECT blks_hit AS hits, blks_read AS reads FROM pg_stat_database WHERE datname = current_database()"
    )
    total = stats["hits"] + stats["reads"]
    ratio = round(100.0 * stats["hits"] / total, 2) if total else None
    data = {**stats, "hit_pct": ratio}
    if ratio is None or total < th["cache_min_reads"]:
        return data, []
    return data, rate(
        "cache",
        "cache hit ratio",
        ratio,
        th["cache_hit_warning_pct"],
        th["cache_hit_critical_pct"],
        "%",
        higher_is_worse=False,
    )


def read_vacuum(conn: t.Any, th: dict[str, float], top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    tables = rows(
        conn,
        "SELECT schemaname AS schema, relname AS table, n_live_tup AS live, n_dead_tup AS dead, "
        "round(100.0 * n_dead_tup / greatest(n_live_tup + n_dead_tup, 1), 1)::float AS dead_pct, "
        "last_vacuum, last_autovacuum, last_analyze, last_autoanalyze FROM pg_stat_user_tables "
        "ORDER BY n_dead_tup DESC LIMIT %s",
        (top,),
    )
    for table in tables:
        for key in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"):
            table[key] = table[key].isoformat() if table[key] else None
    found = []
    for table in tables:
        if table["live"] + table["dead"] >= th["dead_tuples_min_rows"]:
            label = f"{table['schema']}.{table['table']} has {table['dead_pct']:g}% dead tuples ({table['dead']})"
            found += rate(
                "vacuum", label, table["dead_pct"], th["dead_tuples_warning_pct"], th["dead_tuples_critical_pct"], "%"
            )
    return {"tables": tables}, found


def read_wraparound(conn: t.Any, th: dict[str, float], _top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    databases = rows(
        conn, "SELECT datname AS database, age(datfrozenxid)::bigint AS xid_age FROM pg_database ORDER BY 2 DESC"
    )
    for db in databases:
        db["pct"] = round(100.0 * db["xid_age"] / XID_HORIZON, 2)
    found = []
    if databases:
        worst = databases[0]
        found = rate(
            "wraparound",
            f"transaction ID age of {worst['database']} ({worst['xid_age']})",
            worst["pct"],
            th["wraparound_warning_pct"],
            th["wraparound_critical_pct"],
            "% of the horizon",
        )
    return {"databases": databases}, found


def read_replication(conn: t.Any, th: dict[str, float], _top: int, standby: bool) -> tuple[dict, list[Finding]]:
    if standby:
        (state,) = rows(
            conn,
            "SELECT pg_last_wal_receive_lsn()::text AS received, "
            "pg_last_wal_replay_lsn()::text AS replayed, "
            "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float AS lag_s",
        )
        label = "replay lag of this standby"
        return {"role": "standby", **state}, rate(
            "replication", label, state["lag_s"], th["replication_lag_warning_s"], th["replication_lag_critical_s"], "s"
        )
    standbys = rows(
        conn,
        "SELECT application_name AS name, host(client_addr) AS client, state, sync_state, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes, "
        "extract(epoch FROM replay_lag)::float AS lag_s FROM pg_stat_replication",
    )
    found = []
    for s in standbys:
        found += rate(
            "replication",
            f"replay lag of standby {s['name']} ({s['client']})",
            s["lag_s"],
            th["replication_lag_warning_s"],
            th["replication_lag_critical_s"],
            "s",
        )
    return {"role": "primary", "standbys": standbys}, found


def read_statements(conn: t.Any, _th: dict[str, float], top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    installed = rows(conn, "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if not installed:
        return {
            "available": False,
            "note": "pg_stat_statements is not installed in this database: add it to "
            "shared_preload_libraries and CREATE EXTENSION pg_stat_statements",
        }, []
    top_rows = rows(
        conn,
        "SELECT queryid::text AS queryid, calls, round(mean_exec_time::numeric, 2)::float AS mean_ms, "
        "round(total_exec_time::numeric, 2)::float AS total_ms, rows, "
        "left(query, 200) AS query FROM pg_stat_statements "
        "ORDER BY mean_exec_time DESC LIMIT %s",
        (top,),
    )
    return {"available": True, "top_by_mean_time": top_rows}, []


def read_settings(conn: t.Any, _th: dict[str, float], _top: int) -> tuple[dict[str, t.Any], list[Finding]]:
    pending = rows(conn, "SELECT name, setting, unit, source FROM pg_settings WHERE pending_restart ORDER BY name")
    found = [
        Finding(
            "settings", "warning", f"setting {p['name']} was changed but needs a server restart to apply", p["setting"]
        )
        for p in pending
    ]
    return {"pending_restart": pending}, found


READERS: dict[str, t.Callable[..., tuple[dict[str, t.Any], list[Finding]]]] = {
    "connections": read_connections,
    "activity": read_activity,
    "locks": read_locks,
    "sizes": read_sizes,
    "cache": read_cache,
    "vacuum": read_vacuum,
    "wraparound": read_wraparound,
    "statements": read_statements,
    "settings": read_settings,
}


def run_module(module: t.Any) -> dict[str, t.Any]:
    ensure_libs(module)
    params = module.params
    th = merge_thresholds(DEFAULTS, params["thresholds"])
    if params["top"] < 1:
        raise StackopsError(f"top must be at least 1, not {params['top']}.")
    conn, error = connect(params, "stackops-pg_health", read_only=True)
    if conn is None:
        target = params["login_unix_socket"] or f"{params['login_host']}:{params['login_port']}"
        finding = Finding("availability", "critical", f"PostgreSQL at {target} is not available: {error}")
        return finish(module, [finding], {"is_available": False, "conn_err_msg": error})
    try:
        with conn.cursor() as cur:
            # A health check must never hang on a sick server, nor hold locks.
            cur.execute("SET statement_timeout = '10s'; SET lock_timeout = '1s'")
        (server,) = rows(
            conn,
            "SELECT current_setting('server_version') AS version, "
            "current_setting('server_version_num')::int AS version_num, "
            "pg_is_in_recovery() AS in_recovery",
        )
        result: dict[str, t.Any] = {"is_available": True, "server": server}
        findings: list[Finding] = []
        for section in params["checks"] or SECTIONS:
            try:
                if section == "replication":
                    data, found = read_replication(conn, th, params["top"], server["in_recovery"])
                else:
                    data, found = READERS[section](conn, th, params["top"])
            except DatabaseError as exc:
                # One unreadable section (a missing privilege, a timeout) must not hide the others.
                message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
                data, found = {"error": message}, [Finding(section, "warning", f"could not read {section}: {message}")]
            result[section] = data
            findings += found
    finally:
        conn.close()
    return finish(module, findings, result)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
