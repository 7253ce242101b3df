# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The verdict of one production host's restore drill: its result in the report's schema
(docs/restore_drill_report.md), from what the drill read. The role records it through the drill_result filter; the
summary, the Markdown and HTML reports, the play's closing lines and the CLI all read the fields it sets."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

# The phases of pg_restore's elapsed times that the report keeps.
PHASES = ("verify", "restore", "check", "total")
# Jinja's truncate(200) with its default leeway and end, which the result's details have always used.
TRUNCATE_AT, TRUNCATE_LEEWAY, TRUNCATE_END = 200, 5, "..."
NO_RESULT = "no result: the host could not be reached, or its drill stopped before it could record one"


def _mapping(value: t.Any) -> Mapping[str, t.Any]:
    return value if isinstance(value, Mapping) else {}


def _truncate(text: str) -> str:
    """Jinja's truncate(200): whole words, "..." appended, left alone when at most 5 characters too long."""
    if len(text) <= TRUNCATE_AT + TRUNCATE_LEEWAY:
        return text
    return text[: TRUNCATE_AT - len(TRUNCATE_END)].rsplit(" ", 1)[0] + TRUNCATE_END


def _rto_check(rto: float, max_rto_s: t.Any) -> dict[str, t.Any]:
    return {
        "name": "rto",
        "passed": rto <= float(max_rto_s),
        "detail": f"{rto:.1f} s to verify, restore and check (limit {max_rto_s} s)",
    }


def _rpo_check(rpo: float, max_rpo_hours: t.Any) -> dict[str, t.Any]:
    return {
        "name": "rpo",
        "passed": rpo <= float(max_rpo_hours),
        "detail": f"the backup was {rpo:.2f} h old (limit {max_rpo_hours} h)",
    }


def _negative_check(negative: Mapping[str, t.Any]) -> dict[str, t.Any]:
    # pg_restore refuses a damaged dump by its checksum: only that refusal proves the drill would catch one.
    message = str(negative.get("msg") or "")
    if "sha256" not in message:
        return {"name": "negative_control", "passed": False, "detail": "a dump with one byte flipped was NOT refused"}
    detail = f"a dump with one byte flipped was refused: {_truncate(message)}"
    return {"name": "negative_control", "passed": True, "detail": detail}


def _backup(manifest: Mapping[str, t.Any] | None, fresh_backup: bool) -> dict[str, t.Any] | None:
    if manifest is None:
        return None
    fields = ("name", "finished_at", "size", "sha256")
    return {**{key: manifest.get(key) for key in fields}, "fresh": fresh_backup}


def drill_result(
    restored: t.Any,
    host: str,
    database: str,
    drill_host: str | None,
    max_rto_s: t.Any,
    max_rpo_hours: t.Any,
    backup: t.Any = None,
    negative: t.Any = None,
    failed: str = "",
    fresh_backup: bool = False,
    unreachable: bool = False,
) -> dict[str, t.Any]:
    """One host's result: restored is pg_restore's drill result (proofs, elapsed, row_counts, dropped), backup the
    pg_backup check of the backup drilled (manifest, age_hours), negative the refused restore of the damaged copy
    (None or skipped when the negative control did not run), failed the message of the task that stopped the drill.
    Any of them may be missing: the result of a drill that stopped early still says how far it got. unreachable is a
    host that recorded no result (it could not be reached, or stopped before it could): its status says so, with
    failed (or a default) as the reason."""
    restored, backup_check = _mapping(restored), _mapping(backup)
    manifest = backup_check.get("manifest")
    elapsed = _mapping(restored.get("elapsed"))
    rto, rpo = elapsed.get("total"), backup_check.get("age_hours")
    checks = list(restored.get("proofs") or [])
    if rto is not None:
        checks.append(_rto_check(rto, max_rto_s))
    if rpo is not None:
        checks.append(_rpo_check(rpo, max_rpo_hours))
    if isinstance(negative, Mapping) and not negative.get("skipped"):
        checks.append(_negative_check(negative))
    failed_checks = [check.get("name") for check in checks if check.get("passed") is False]
    reason = failed or (f"failed checks: {', '.join(map(str, failed_checks))}" if failed_checks else None)
    if unreachable:
        reason = failed or NO_RESULT
    row_counts = restored.get("row_counts")
    return {
        "host": host,
        "database": database,
        "drill_host": drill_host,
        "status": "unreachable" if unreachable else "fail" if reason else "pass",
        "reason": reason,
        "backup": _backup(manifest if isinstance(manifest, Mapping) else None, bool(fresh_backup)),
        "rpo_hours": rpo,
        "rto_s": rto,
        "elapsed": {key: value for key, value in elapsed.items() if key in PHASES},
        "rows": None if row_counts is None else sum(_mapping(row_counts).values()),
        "tables": None if row_counts is None else len(row_counts),
        "checks": checks,
        "cleanup": {"dropped": restored.get("dropped", []), "files_removed": False},
    }
