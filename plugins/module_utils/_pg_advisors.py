# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""pg_health's advisors: read-only sections that judge the schema and the workload (unused and missing indexes, slow
statements, changed settings) and say what to do about each finding."""

from __future__ import annotations

import re
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._health import Advice, Finding
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import redacted, rows, sql
from ansible_collections.stackops.runbooks.plugins.module_utils._redact import MASK, redact_connection_strings

ADVISORS = ["unused_indexes", "missing_indexes", "slow_statements", "nondefault_settings"]
ADVISOR_DEFAULTS = {
    "unused_index_min_mb": 1,
    "unused_index_min_stats_days": 7,
    "missing_index_min_table_mb": 10,
    "missing_index_min_seq_scans": 100,
    "missing_index_seq_scan_pct": 50,
    "slow_statement_warning_ms": 1000,
    "slow_statement_critical_ms": 10000,
    "slow_statement_min_calls": 10,
}
MB = 1024 * 1024
DAY = 86400
# Settings whose values are secrets, or may hold one: by name, and every conninfo (primary_conninfo).
SECRET_NAME = re.compile(r"password(?!_encryption$)|secret|passphrase|_key$|token", re.IGNORECASE)
# In other values (archive_command, restore_command, ...): an option whose name says secret, and its value.
SECRET_ARGUMENT = re.compile(
    r"(?i)((?:passw(?:or)?d|secret|token|[-_]key)[\w-]*\s*[=:]\s*)(?!'?\*{8})('[^']*'?|\"[^\"]*\"?|\S+)"
)
# Changed settings that trade safety for speed, and what to do about them.
RISKY = {
    ("fsync", "off"): ("critical", "a crash can corrupt the whole cluster: set fsync = on"),
    ("full_page_writes", "off"): ("critical", "a crash can leave torn pages: set full_page_writes = on"),
    ("zero_damaged_pages", "on"): ("critical", "damaged pages are silently zeroed (data lost): set it off"),
    ("autovacuum", "off"): ("warning", "dead tuples pile up and wraparound nears: set autovacuum = on"),
    ("ignore_checksum_failure", "on"): ("warning", "checksum failures are ignored: set it off"),
}


class StatementColumns(t.NamedTuple):
    mean: str
    total: str
    read: str
    write: str


def statement_columns(extension_version: str) -> StatementColumns:
    """The timing columns of the installed pg_stat_statements: its view has the columns of the extension's version
    in this database (older after pg_upgrade until ALTER EXTENSION ... UPDATE), not of the server's. 1.8
    (PostgreSQL 13) renamed mean_time and total_time to mean_exec_time and total_exec_time; 1.11 (PostgreSQL 17)
    renamed blk_read_time and blk_write_time to shared_blk_read_time and shared_blk_write_time."""
    version = tuple(int(part) for part in re.findall(r"\d+", extension_version)[:2])
    timing = "exec_time" if version >= (1, 8) else "time"
    io = "shared_blk" if version >= (1, 11) else "blk"
    return StatementColumns(f"mean_{timing}", f"total_{timing}", f"{io}_read_time", f"{io}_write_time")


NOT_INSTALLED = (
    "pg_stat_statements is not installed in this database: add it to shared_preload_libraries and "
    "CREATE EXTENSION pg_stat_statements"
)


def statements_query(conn: t.Any, template: str) -> tuple[str | None, t.Any]:
    """The installed pg_stat_statements version (None when it is not installed) and template with its column
    names ({mean}, {total}, {read}, {write}) filled in."""
    installed = rows(conn, "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if not installed:
        return None, None
    version = installed[0]["extversion"]
    columns = statement_columns(version)._asdict()
    return version, sql.SQL(template).format(**{key: sql.Identifier(name) for key, name in columns.items()})


def stats_age(conn: t.Any) -> dict[str, t.Any]:
    """Since when the connected database's counters run (None: never reset, since the database was created or the
    last crash), and how long that is."""
    (found,) = rows(
        conn,
        "SELECT stats_reset, extract(epoch FROM now() - stats_reset)::float AS age_s "
        "FROM pg_stat_database WHERE datname = current_database()",
    )
    return {
        "stats_reset": found["stats_reset"].isoformat() if found["stats_reset"] else None,
        "stats_age_days": round(found["age_s"] / DAY, 1) if found["age_s"] is not None else None,
    }


UNUSED_INDEXES = (
    "SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index, "
    "quote_ident(s.schemaname) || '.' || quote_ident(s.indexrelname) AS qualified, s.idx_scan AS scans, "
    "pg_relation_size(s.indexrelid) AS bytes FROM pg_stat_user_indexes s "
    "JOIN pg_index i ON i.indexrelid = s.indexrelid "
    "WHERE s.idx_scan = 0 AND i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid) "
    "ORDER BY bytes DESC, 1, 2, 3"
)


def judge_unused(candidates: list[dict[str, t.Any]], age: dict[str, t.Any], th: dict[str, float]) -> list[Finding]:
    """Unused indexes are judged only when the counters are old enough to have seen the whole workload."""
    days = age["stats_age_days"]
    if days is not None and days < th["unused_index_min_stats_days"]:
        return []
    since = f"since the statistics were reset {days:g} days ago" if days is not None else "since statistics began"
    return [
        Advice(
            "unused_indexes",
            "warning",
            f"index {c['qualified']} on {c['table']} ({c['bytes'] // 1024} kB) was never scanned {since}",
            c["bytes"],
            th["unused_index_min_mb"] * MB,
            f"DROP INDEX CONCURRENTLY {c['qualified']}; after checking that no standby and no monthly job uses it "
            "(their scans are not counted here)",
        )
        for c in candidates
        if c["bytes"] >= th["unused_index_min_mb"] * MB
    ]


def read_unused_indexes(conn: t.Any, th: dict[str, float], top: int, _server: t.Any) -> tuple[dict, list[Finding]]:
    candidates = rows(conn, UNUSED_INDEXES)
    age = stats_age(conn)
    data = {
        **age,
        "count": len(candidates),
        "total_bytes": sum(c["bytes"] for c in candidates),
        "candidates": candidates[:top],
    }
    return data, judge_unused(candidates, age, th)[:top]


MISSING_INDEXES = (
    "SELECT schemaname AS schema, relname AS table, "
    "quote_ident(schemaname) || '.' || quote_ident(relname) AS qualified, "
    "seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan, n_live_tup AS live_rows, "
    "pg_relation_size(relid) AS bytes, seq_tup_read / greatest(seq_scan, 1) AS rows_per_seq_scan, "
    "round(100.0 * seq_scan / greatest(seq_scan + coalesce(idx_scan, 0), 1), 1)::float AS seq_scan_pct "
    "FROM pg_stat_user_tables WHERE seq_scan > 0 AND pg_relation_size(relid) >= %s "
    "ORDER BY seq_tup_read DESC, 1, 2 LIMIT %s"
)


def judge_missing(tables: list[dict[str, t.Any]], th: dict[str, float]) -> list[Finding]:
    return [
        Advice(
            "missing_indexes",
            "warning",
            f"table {x['qualified']} ({x['bytes'] // MB} MB) was read by {x['seq_scan']} sequential scans "
            f"({x['seq_scan_pct']:g}% of its scans, {x['rows_per_seq_scan']} rows each)",
            x["seq_scan_pct"],
            th["missing_index_seq_scan_pct"],
            f"find the statements that scan {x['qualified']} (slow_statements, EXPLAIN) and CREATE INDEX "
            "CONCURRENTLY on the columns they filter or join on",
        )
        for x in tables
        if x["seq_scan"] >= th["missing_index_min_seq_scans"] and x["seq_scan_pct"] >= th["missing_index_seq_scan_pct"]
    ]


def read_missing_indexes(conn: t.Any, th: dict[str, float], top: int, _server: t.Any) -> tuple[dict, list[Finding]]:
    tables = rows(conn, MISSING_INDEXES, (th["missing_index_min_table_mb"] * MB, top))
    return {**stats_age(conn), "tables": tables}, judge_missing(tables, th)


SLOW_STATEMENTS = (
    "SELECT queryid::text AS queryid, d.datname AS database, r.rolname AS user, calls, "
    "round({mean}::numeric, 2)::float AS mean_ms, round({total}::numeric, 2)::float AS total_ms, rows, "
    "left(query, 200) AS query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
    "LEFT JOIN pg_roles r ON r.oid = s.userid WHERE d.datname = current_database() "
    "AND {mean} >= %s AND calls >= %s ORDER BY {total} DESC LIMIT %s"
)


def judge_slow(statements: list[dict[str, t.Any]], th: dict[str, float]) -> list[Finding]:
    found: list[Finding] = []
    for s in statements:
        crit = s["mean_ms"] >= th["slow_statement_critical_ms"]
        found.append(
            Advice(
                "slow_statements",
                "critical" if crit else "warning",
                f"statement {s['queryid']} in {s['database']} takes {s['mean_ms']:g} ms on average over "
                f"{s['calls']} calls ({s['total_ms']:g} ms in all), at or above the "
                f"{'critical' if crit else 'warning'} threshold "
                f"{th['slow_statement_critical_ms' if crit else 'slow_statement_warning_ms']:g} ms",
                s["mean_ms"],
                th["slow_statement_critical_ms" if crit else "slow_statement_warning_ms"],
                "EXPLAIN (ANALYZE, BUFFERS) it with typical parameters: look for sequential scans of big tables "
                "(missing_indexes), sorts spilling to disk and rows read far above rows returned",
            )
        )
    return found


def read_slow_statements(conn: t.Any, th: dict[str, float], top: int, _server: t.Any) -> tuple[dict, list[Finding]]:
    version, query = statements_query(conn, SLOW_STATEMENTS)
    if version is None:
        return {"available": False, "note": NOT_INSTALLED}, []
    args = (th["slow_statement_warning_ms"], th["slow_statement_min_calls"], top)
    statements = redacted(rows(conn, query, args))
    return {"available": True, "extension_version": version, "statements": statements}, judge_slow(statements, th)


def mask_setting(name: str, value: str | None) -> str | None:
    """A setting's value for a report: whole secrets masked by name; in any other, the passwords of conninfos and
    URIs, and the values of options named like secrets (--repo1-s3-key=...)."""
    if not value:
        return value
    if SECRET_NAME.search(name):
        return MASK
    return SECRET_ARGUMENT.sub(rf"\1{MASK}", redact_connection_strings(value))


def judge_settings(settings: list[dict[str, t.Any]]) -> list[Finding]:
    found: list[Finding] = []
    for s in settings:
        risky = RISKY.get((s["name"], s["setting"]))
        if risky:
            severity, action = risky
            message = f"setting {s['name']} is {s['setting']} (from {s['source']})"
            found.append(Advice("nondefault_settings", severity, message, s["setting"], None, action))
    return found


def read_nondefault_settings(conn: t.Any, _th: dict[str, float], _top: int, _server: t.Any) -> tuple[dict, list]:
    settings = rows(
        conn,
        "SELECT name, setting, unit, source, boot_val AS default, pending_restart FROM pg_settings "
        "WHERE source NOT IN ('default', 'override') ORDER BY name",
    )
    for s in settings:
        s["setting"] = mask_setting(s["name"], s["setting"])
        s["default"] = mask_setting(s["name"], s["default"])
    return {"settings": settings, "count": len(settings)}, judge_settings(settings)


ADVISOR_READERS: dict[str, t.Callable[..., tuple[dict[str, t.Any], list[Finding]]]] = {
    "unused_indexes": read_unused_indexes,
    "missing_indexes": read_missing_indexes,
    "slow_statements": read_slow_statements,
    "nondefault_settings": read_nondefault_settings,
}
