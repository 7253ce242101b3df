# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""What proves a restored database holds the backed-up data, beyond exit codes: the sentinel row pg_backup wrote
just before its snapshot, amcheck over every B-tree index and table, and the user's smoke queries with their
expected answers. Each proof is {name, passed, detail}, one comparison each; passed is None when it was skipped and
says why. A proof that was asked for and could not be made fails: it proved nothing."""

from __future__ import annotations

import json
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import differences
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
# bt_index_check returns void and reports what it finds by raising; verify_heapam returns rows.
INDEX_CHECK = "SELECT NULL, NULL FROM bt_index_check(%s::regclass, true) WHERE false"
HEAP_CHECK = "SELECT blkno, msg FROM verify_heapam(%s::regclass) LIMIT 3"
INSUFFICIENT_PRIVILEGE = "42501"
UNDEFINED_FUNCTION = "42883"
SMOKE_KEYS = ("name", "query", "expect")


def proof(name: str, passed: bool | None, detail: str) -> dict[str, t.Any]:
    return {"name": name, "passed": passed, "detail": detail}


def check_smoke_spec(queries: list[dict[str, t.Any]]) -> None:
    """Refuses what would prove less than it seems: a query without its name or SQL, a key other than name, query
    and expect (a misspelt `expected` would leave the answer unchecked), and a name given twice (two answers, one
    proof name)."""
    seen: set[str] = set()
    for index, query in enumerate(queries):
        missing = [key for key in ("name", "query") if not query.get(key)]
        if missing:
            raise StackopsError(
                f"smoke_queries[{index}] lacks {', '.join(missing)}; each needs name, query and (optionally) expect."
            )
        unknown = sorted(set(query) - set(SMOKE_KEYS))
        if unknown:
            raise StackopsError(
                f"smoke_queries[{index}] ({query['name']}) has {', '.join(unknown)}, which is not an option; each "
                "takes name, query and expect."
            )
        if query["name"] in seen:
            raise StackopsError(
                f"smoke_queries[{index}] is named {query['name']} like an earlier one; each query's answer is its own "
                "proof, smoke:<name>, so give each a name of its own."
            )
        seen.add(query["name"])


def manifest_proofs(expected: dict[str, t.Any], found: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """row_counts, objects and sequences: each passes or fails on its own comparison with the backup's record, and
    objects is skipped when the backup has no record of them (a plain dump)."""
    found_differences = differences(expected, found)
    matched = {
        "row_counts": f"{len(expected['tables'])} tables with the backup's row counts",
        "objects": (", ".join(f"{n} {kind}" for kind, n in sorted(found["objects"].items())) or "no relations")
        + " as in the backup",
        "sequences": f"{len(expected['sequences'])} sequences at the backup's values",
    }
    proofs = []
    for name, problems in found_differences.items():
        if problems is None:
            proofs.append(proof(name, None, "not compared: the backup (a plain dump) records no object counts"))
        else:
            proofs.append(proof(name, not problems, "; ".join(problems) if problems else matched[name]))
    return proofs


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


def first_line(exc: Exception) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def amcheck_unavailable(step: str, exc: Exception) -> dict[str, t.Any]:
    """The failed proof of an amcheck that was asked for and could not run, with its cause and what to do."""
    code = getattr(exc, "pgcode", None)
    if code == INSUFFICIENT_PRIVILEGE:
        fix = "Log in as a superuser (login_user): amcheck is not a trusted extension and its functions are not public"
    elif code == UNDEFINED_FUNCTION:
        fix = "Put amcheck in a schema on the login's search_path (it is installed elsewhere, or an old version)"
    else:
        fix = "Install PostgreSQL's contrib modules on the server (amcheck is one of them)"
    return proof(
        "amcheck",
        False,
        f"amcheck was asked for but could not run: {step} failed: {first_line(exc)}. {fix}, or set amcheck=false "
        "(restore_drill_amcheck in a drill) to go without it.",
    )


def amcheck_findings(cur: t.Any, statement: str, name: str) -> list[str]:
    """What one amcheck function found wrong with one relation: the rows it returned, or the error it raised (how
    bt_index_check reports corruption). A refusal to run it at all is raised for the caller."""
    try:
        cur.execute(statement, (name,))
    except DatabaseError as exc:
        if getattr(exc, "pgcode", None) in (INSUFFICIENT_PRIVILEGE, UNDEFINED_FUNCTION):
            raise
        cur.connection.rollback()
        return [f"{name}: {first_line(exc)}"]
    return [f"{name} block {blkno}: {msg}" for blkno, msg in cur.fetchall()]


def amcheck(cur: t.Any) -> dict[str, t.Any]:
    """bt_index_check with heapallindexed on every B-tree index, and verify_heapam on every table (PG 14+). Asked
    for, it passes only when it ran on every one of them and found nothing."""
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    except DatabaseError as exc:
        cur.connection.rollback()
        return amcheck_unavailable("CREATE EXTENSION amcheck", exc)
    cur.execute(BTREE_INDEXES)
    indexes = [name for (name,) in cur.fetchall()]
    cur.execute("SELECT to_regproc('verify_heapam') IS NOT NULL")
    tables: list[str] = []
    if cur.fetchone()[0]:
        cur.execute(HEAP_TABLES)
        tables = [name for (name,) in cur.fetchall()]
    problems: list[str] = []
    checks = [(INDEX_CHECK, "bt_index_check", name) for name in indexes]
    checks += [(HEAP_CHECK, "verify_heapam", name) for name in tables]
    for statement, function, name in checks:
        try:
            problems += amcheck_findings(cur, statement, name)
        except DatabaseError as exc:
            cur.connection.rollback()
            return amcheck_unavailable(f"{function}({name})", exc)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        return proof("amcheck", False, "; ".join(problems[:10]) + more)
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
        if not rows:
            return proof(
                name,
                False,
                "returned no rows; a smoke query without expect must return at least one. If no rows is the right "
                "answer, say so with expect: []",
            )
        return proof(name, True, f"{len(rows)} rows: {shown}")
    if matches(rows, query["expect"]):
        return proof(name, True, f"answered {shown} as expected")
    return proof(name, False, f"answered {shown}, expected {json.dumps(normalised(query['expect']))[:300]}")
