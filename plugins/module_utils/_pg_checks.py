# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""What pg_health reads and how it judges it, shared with stack_health: one read-only connection, section by
section, each reading compared with the thresholds."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    Finding,
    HealthOptions,
    merge_thresholds,
    rate,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_advisors import (
    ADVISOR_DEFAULTS,
    ADVISOR_READERS,
    ADVISORS,
    NOT_INSTALLED,
    statements_query,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    DatabaseError,
    PgLogin,
    connect,
    redacted,
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
    "checkpoints",
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
    **ADVISOR_DEFAULTS,
}
# pg_health's options past the connection and the verdict, shared with stack_health's postgres option.
OPTIONS: dict[str, t.Any] = {
    "top": {"type": "int", "default": 10},
    "advisors": {"type": "list", "elements": "str", "choices": ADVISORS, "default": []},
}
XID_HORIZON = 2**31


class Server(t.TypedDict):
    version: str
    version_num: int
    in_recovery: bool


# Query texts are cut at 200 characters; the module's own session (pg_backend_pid) is never a finding.


def read_connections(
    conn: t.Any, th: dict[str, float], top: int, _server: Server
) -> tuple[dict[str, t.Any], list[Finding]]:
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


def read_activity(
    conn: t.Any, th: dict[str, float], top: int, _server: Server
) -> tuple[dict[str, t.Any], list[Finding]]:
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
    redacted(idle, "last_query")
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
    redacted(long)
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


def read_locks(conn: t.Any, th: dict[str, float], top: int, _server: Server) -> tuple[dict[str, t.Any], list[Finding]]:
    blocked = rows(
        conn,
        "SELECT pid, usename AS user, datname AS database, pg_blocking_pids(pid) AS blocked_by, "
        "round(extract(epoch FROM now() - query_start))::int AS seconds, "
        "left(query, 200) AS query FROM pg_stat_activity "
        "WHERE cardinality(pg_blocking_pids(pid)) > 0 ORDER BY query_start LIMIT %s",
        (top,),
    )
    redacted(blocked)
    found = []
    for b in blocked:
        label = (
            f"pid {b['pid']} ({b['user']}@{b['database']}) waits for a lock held by pid(s) "
            f"{', '.join(map(str, b['blocked_by']))} for {b['seconds']}s"
        )
        found += rate("locks", label, b["seconds"], th["lock_wait_warning_s"], th["lock_wait_critical_s"], "s")
    return {"blocked": blocked, "blocked_count": len(blocked)}, found


def read_sizes(conn: t.Any, _th: dict[str, float], top: int, _server: Server) -> tuple[dict[str, t.Any], list[Finding]]:
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


def read_cache(conn: t.Any, th: dict[str, float], _top: int, _server: Server) -> tuple[dict[str, t.Any], list[Finding]]:
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


def read_vacuum(conn: t.Any, th: dict[str, float], top: int, _server: Server) -> tuple[dict[str, t.Any], list[Finding]]:
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


def read_wraparound(
    conn: t.Any, th: dict[str, float], _top: int, _server: Server
) -> tuple[dict[str, t.Any], list[Finding]]:
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


def read_replication(conn: t.Any, th: dict[str, float], _top: int, server: Server) -> tuple[dict, list[Finding]]:
    if server["in_recovery"]:
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


TOP_STATEMENTS = (
    "SELECT queryid::text AS queryid, calls, round({mean}::numeric, 2)::float AS mean_ms, "
    "round({total}::numeric, 2)::float AS total_ms, rows, round({read}::numeric, 2)::float AS read_ms, "
    "round({write}::numeric, 2)::float AS write_ms, left(query, 200) AS query FROM pg_stat_statements "
    "ORDER BY {mean} DESC LIMIT %s"
)


def read_statements(
    conn: t.Any, _th: dict[str, float], top: int, _server: Server
) -> tuple[dict[str, t.Any], list[Finding]]:
    version, query = statements_query(conn, TOP_STATEMENTS)
    if version is None:
        return {"available": False, "note": NOT_INSTALLED}, []
    top_rows = redacted(rows(conn, query, (top,)))
    return {"available": True, "extension_version": version, "top_by_mean_time": top_rows}, []


def read_settings(
    conn: t.Any, _th: dict[str, float], _top: int, _server: Server
) -> tuple[dict[str, t.Any], list[Finding]]:
    pending = rows(conn, "SELECT name, setting, unit, source FROM pg_settings WHERE pending_restart ORDER BY name")
    found = [
        Finding(
            "settings", "warning", f"setting {p['name']} was changed but needs a server restart to apply", p["setting"]
        )
        for p in pending
    ]
    return {"pending_restart": pending}, found


def checkpoint_query(version_num: int) -> str:
    """The checkpointer's counters: PostgreSQL 17 moved them from pg_stat_bgwriter (which no longer has them) to
    pg_stat_checkpointer, with new names."""
    if version_num >= 170000:
        return (
            "SELECT 'pg_stat_checkpointer' AS source, num_timed AS timed, num_requested AS requested, "
            "write_time::float AS write_ms, sync_time::float AS sync_ms, buffers_written, stats_reset "
            "FROM pg_stat_checkpointer"
        )
    return (
        "SELECT 'pg_stat_bgwriter' AS source, checkpoints_timed AS timed, checkpoints_req AS requested, "
        "checkpoint_write_time::float AS write_ms, checkpoint_sync_time::float AS sync_ms, "
        "buffers_checkpoint AS buffers_written, stats_reset FROM pg_stat_bgwriter"
    )


def read_checkpoints(
    conn: t.Any, _th: dict[str, float], _top: int, server: Server
) -> tuple[dict[str, t.Any], list[Finding]]:
    """Reported, not judged: a share of requested checkpoints says max_wal_size is small for the write load, but
    restores and CREATE DATABASE request them too."""
    (found,) = rows(conn, checkpoint_query(server["version_num"]))
    total = found["timed"] + found["requested"]
    found["requested_pct"] = round(100.0 * found["requested"] / total, 1) if total else None
    found["stats_reset"] = found["stats_reset"].isoformat() if found["stats_reset"] else None
    return found, []


READERS: dict[str, t.Callable[..., tuple[dict[str, t.Any], list[Finding]]]] = {
    **ADVISOR_READERS,
    "connections": read_connections,
    "activity": read_activity,
    "locks": read_locks,
    "sizes": read_sizes,
    "cache": read_cache,
    "vacuum": read_vacuum,
    "wraparound": read_wraparound,
    "replication": read_replication,
    "statements": read_statements,
    "settings": read_settings,
    "checkpoints": read_checkpoints,
}


@dataclass(frozen=True)
class Health(HealthOptions):
    """pg_health's options (stack_health's postgres option) once checked: what one health read takes."""

    login: PgLogin
    advisors: tuple[str, ...]
    top: int


def check_inputs(params: Mapping[str, t.Any]) -> Health:
    thresholds = merge_thresholds(DEFAULTS, params["thresholds"])
    if params["top"] < 1:
        raise StackopsError(f"top must be at least 1, not {params['top']}.")
    return options_of(
        Health, params, login=PgLogin.of(params), thresholds=thresholds, fail_on=params.get("fail_on", "critical")
    )


def read_health(o: Health, application: str) -> tuple[dict[str, t.Any], list[Finding]]:
    """The result sections and the findings of one health read; an unreachable server is a critical finding."""
    conn, error = connect(o.login, application, read_only=True)
    if conn is None:
        finding = Finding("availability", "critical", f"PostgreSQL at {o.login.target} is not available: {error}")
        return {"is_available": False, "conn_err_msg": error}, [finding]
    th = dict(o.thresholds)
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
        for section in dict.fromkeys((*(o.checks or SECTIONS), *o.advisors)):
            try:
                data, found = READERS[section](conn, th, o.top, server)
            except DatabaseError as exc:
                # One unreadable section (a missing privilege, a timeout) must not hide the others.
                message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
                data, found = {"error": message}, [Finding(section, "warning", f"could not read {section}: {message}")]
            result[section] = data
            findings += found
    finally:
        conn.close()
    return result, findings
