# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""What proves a restored database holds the backed-up data, beyond exit codes: the sentinel row pg_backup wrote
just before its snapshot, amcheck over every B-tree index and table, and the user's smoke queries with their
expected answers. Each proof is {name, passed, detail}; passed is None when it was skipped and says why."""

from __future__ import annotations

import json
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import DatabaseError

SENTINEL_TABLE = "stackops.backup_sentinel"
# Written by pg_backup (sentinel=true) in its own transaction, right before the snapshot it dumps is taken.
SENTINEL_WRITE = (
    "CREATE SCHEMA IF NOT EXISTS stackops",
    "CREATE TABLE IF NOT EXISTS stackops.backup_sentinel "
    "(token text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())",
    "DELETE FROM stackops.backup_sentinel WHERE written_at < now() - interval '35 days'",
    "INSERT INTO stackops.backup_sentinel (token) VALUES (%s)",
)
BTREE_INDEXES = """
SELECT c.oid::regclass::text FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
JOIN pg_catalog.pg_am a ON a.oid = c.relam
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY 1
"""
HEAP_TABLES = """
SELECT c.oid::regclass::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY 1
"""


def proof(name: str, passed: bool | None, detail: str) -> dict[str, t.Any]:
    return {"name": name, "passed": passed, "detail": detail}


def check_smoke_spec(queries: list[dict[str, t.Any]]) -> None:
    for index, query in enumerate(queries):
        missing = [key for key in ("name", "query") if not query.get(key)]
        if missing:
            raise StackopsError(
                f"smoke_queries[{index}] lacks {', '.join(missing)}; each needs name, query and (optionally) expect."
            )


def sentinel(cur: t.Any, manifest: dict[str, t.Any], required: bool) -> dict[str, t.Any]:
    token = (manifest.get("sentinel") or {}).get("token")
    if not token:
        detail = "the backup was taken without a sentinel (pg_backup sentinel=true)"
        return proof("sentinel", False if required else None, detail)
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (SENTINEL_TABLE,))
    found = False
    if cur.fetchone()[0]:
        cur.execute("SELECT written_at::text FROM stackops.backup_sentinel WHERE token = %s", (token,))
        row = cur.fetchone()
        found = row is not None
    if found:
        return proof("sentinel", True, f"row {token} written at {row[0]} before the backup is in the restored data")
    return proof("sentinel", False, f"row {token}, written just before the backup, is missing from the restored data")


def amcheck(cur: t.Any) -> dict[str, t.Any]:
    """bt_index_check with heapallindexed on every B-tree index, and verify_heapam on every table (PG 14+)."""
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    except DatabaseError as exc:  # any refusal means amcheck is not available here
        cur.connection.rollback()
        return proof("amcheck", None, f"amcheck is not available on this server: {str(exc).strip()}")
    cur.execute(BTREE_INDEXES)
    indexes = [name for (name,) in cur.fetchall()]
    for name in indexes:
        cur.execute("SELECT bt_index_check(%s::regclass, true)", (name,))
    cur.execute("SELECT to_regproc('verify_heapam') IS NOT NULL")
    tables: list[str] = []
    problems = []
    if cur.fetchone()[0]:
        cur.execute(HEAP_TABLES)
        tables = [name for (name,) in cur.fetchall()]
        for name in tables:
            cur.execute("SELECT blkno, msg FROM verify_heapam(%s::regclass) LIMIT 3", (name,))
            problems += [f"{name} block {blkno}: {msg}" for blkno, msg in cur.fetchall()]
    if problems:
        return proof("amcheck", False, "; ".join(problems[:10]))
    return proof("amcheck", True, f"{len(indexes)} B-tree indexes (with heapallindexed) and {len(tables)} tables")


def normalised(value: t.Any) -> t.Any:
    """Rows as JSON would carry them: what a YAML `expect` can be compared with."""
    return json.loads(json.dumps(value, default=str))


def matches(rows: list[tuple], expect: t.Any) -> bool:
    if isinstance(expect, list):
        return normalised([list(row) for row in rows]) == normalised(expect)
    return bool(rows) and str(normalised(rows[0][0])) == str(expect)


def smoke(cur: t.Any, query: dict[str, t.Any]) -> dict[str, t.Any]:
    name = f"smoke:{query['name']}"
    try:
        cur.execute(query["query"])
        rows = cur.fetchall() if cur.description else []
    except DatabaseError as exc:  # the database's own error is the finding
        cur.connection.rollback()
        return proof(name, False, f"failed: {str(exc).strip()}")
    cur.connection.rollback()
    shown = json.dumps(normalised([list(row) for row in rows[:5]]))[:300]
    if "expect" not in query or query["expect"] is None:
        return proof(name, True, f"{len(rows)} rows: {shown}")
    if matches(rows, query["expect"]):
        return proof(name, True, f"answered {shown} as expected")
    return proof(name, False, f"answered {shown}, expected {json.dumps(normalised(query['expect']))[:300]}")
