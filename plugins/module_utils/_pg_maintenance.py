# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""The pure decisions of pg_maintenance: settings values read as the server reads them (units, booleans, enums,
lists) and compared, the sessions to end, the tables to vacuum or analyze, and the reindex plan. Nothing here talks
to a server, so every rule is table-tested."""

from __future__ import annotations

import difflib
import math
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError

# Factors to the smallest unit of each family, as guc.c's memory_unit_conversion_table and time_unit_... have them.
MEMORY_UNITS = {"TB": 1024**4, "GB": 1024**3, "MB": 1024**2, "kB": 1024, "B": 1}
TIME_UNITS = {"d": 86_400_000_000, "h": 3_600_000_000, "min": 60_000_000, "s": 1_000_000, "ms": 1000, "us": 1}
# Settings parsed as lists (GUC_LIST_INPUT in guc.c, PostgreSQL 12-17): ALTER SYSTEM takes one literal per item; a
# single 'a, b' literal would be one item named "a, b" (for shared_preload_libraries, a server that cannot start).
LIST_SETTINGS = frozenset(
    {
        "datestyle",
        "search_path",
        "temp_tablespaces",
        "shared_preload_libraries",
        "local_preload_libraries",
        "session_preload_libraries",
        "listen_addresses",
        "unix_socket_directories",
        "log_destination",
        "wal_consistency_checking",
        "debug_io_direct",
        "createrole_self_grant",
        "restrict_nonsystem_relation_kind",
    }
)
# ALTER SYSTEM refuses these whatever their context (GUC_DISALLOW_IN_AUTO_FILE).
NOT_BY_ALTER_SYSTEM = frozenset({"data_directory", "config_file"})
AUTO_CONF = "postgresql.auto.conf"
NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)?")
# parse_int() reads integers with strtol(..., 0): 0x1f is hex and 0640 octal, as SHOW prints the file modes
# (log_file_mode, unix_socket_permissions, data_directory_mode).
C_INTEGER = re.compile(r"([-+]?)(?:0[xX]([0-9a-fA-F]+)|0([0-7]+))\s*([A-Za-z]+)?")
# File modes, which SHOW prints in octal (their show hooks): written and shown the same way.
OCTAL_SETTINGS = frozenset(("log_file_mode", "unix_socket_permissions", "data_directory_mode"))

Value = t.Union[int, float, str, tuple]


@dataclass(frozen=True)
class Guc:
    """One row of pg_settings."""

    name: str
    setting: str | None
    unit: str | None
    vartype: str
    context: str
    source: str
    min_val: str | None = None
    max_val: str | None = None
    enumvals: tuple[str, ...] = ()
    boot_val: str | None = None
    pending_restart: bool = False

    @classmethod
    def from_row(cls, row: dict[str, t.Any]) -> Guc:
        return cls(
            name=row["name"],
            setting=row["setting"],
            unit=row["unit"],
            vartype=row["vartype"],
            context=row["context"],
            source=row["source"],
            min_val=row.get("min_val"),
            max_val=row.get("max_val"),
            enumvals=tuple(row.get("enumvals") or ()),
            boot_val=row.get("boot_val"),
            pending_restart=bool(row.get("pending_restart")),
        )


@dataclass(frozen=True)
class FileEntry:
    """One row of pg_file_settings: a setting as a configuration file has it."""

    sourcefile: str
    seqno: int
    name: str
    setting: str | None

    @property
    def in_auto_conf(self) -> bool:
        return self.sourcefile.rsplit("/", 1)[-1] == AUTO_CONF


def unit_family(unit: str | None) -> tuple[dict[str, int], int] | None:
    """The family of a pg_settings unit and its size in the family's smallest unit: '8kB' -> (memory, 8192)."""
    if not unit:
        return None
    match = re.fullmatch(r"(\d*)\s*([A-Za-z]+)", unit)
    if match is None:
        return None
    for family in (MEMORY_UNITS, TIME_UNITS):
        if match.group(2) in family:
            return family, int(match.group(1) or 1) * family[match.group(2)]
    return None


def _bool(guc: Guc, value: t.Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    # parse_bool_with_len(): unique prefixes of true/false/yes/no, "on", "of(f)", 1 and 0.
    if text and ("true".startswith(text) or "yes".startswith(text) or text in ("on", "1")):
        return "on"
    if text and ("false".startswith(text) or "no".startswith(text) or text in ("of", "off", "0")):
        return "off"
    raise StackopsError(f"{guc.name} {value!r} is not a boolean (use on or off, true or false, yes or no, 1 or 0)")


def _enum(guc: Guc, value: t.Any) -> str:
    text = ("on" if value else "off") if isinstance(value, bool) else str(value).strip()
    for choice in guc.enumvals:
        if choice.lower() == text.lower():
            return choice
    raise StackopsError(f"{guc.name} {value!r} is not one of its values ({', '.join(guc.enumvals)})")


def _number(guc: Guc, value: t.Any) -> int | float:
    kind = "an integer" if guc.vartype == "integer" else "a number"
    if isinstance(value, bool):
        raise StackopsError(f"{guc.name} {value!r} is not {kind}")
    if isinstance(value, (int, float)):
        number, unit = float(value), None
    else:
        text = str(value).strip()
        based = C_INTEGER.fullmatch(text) if guc.vartype == "integer" else None
        match = NUMBER.fullmatch(text)
        if based is not None:
            sign, hexadecimal, octal, unit = based.groups()
            number = float(int(f"{sign}{hexadecimal or octal}", 16 if hexadecimal else 8))
        elif match is not None:
            number, unit = float(match.group(1)), match.group(2)
        else:
            raise StackopsError(f"{guc.name} {value!r} is not {kind}{valid_units(guc)}")
    if unit:
        family = unit_family(guc.unit)
        if family is None:
            raise StackopsError(f"{guc.name} {value!r} has a unit, but {guc.name} takes none (give a plain number)")
        units, size = family
        if unit not in units:
            raise StackopsError(f"{guc.name} {value!r} has an unknown unit {unit!r}{valid_units(guc)}")
        number = number * units[unit] / size
    result: int | float = round(number) if guc.vartype == "integer" else number
    low = float(guc.min_val) if guc.min_val not in (None, "") else -math.inf
    high = float(guc.max_val) if guc.max_val not in (None, "") else math.inf
    if not low <= result <= high:
        unit_text = f" {guc.unit}" if guc.unit else ""
        raise StackopsError(
            f"{guc.name} {value!r} is outside its range {guc.min_val}..{guc.max_val}{unit_text} "
            f"({show(guc, result)} asked)"
        )
    return result


def valid_units(guc: Guc) -> str:
    family = unit_family(guc.unit)
    if family is None:
        return ""
    return f" (the units of {guc.name} are {', '.join(family[0])}, case matters, or none for {guc.unit})"


def split_list(value: t.Any) -> tuple[str, ...]:
    """A list setting's items: from a YAML list, or a comma-separated string as postgresql.conf holds it."""
    if isinstance(value, (list, tuple)):
        return tuple(str(item).strip() for item in value if str(item).strip())
    items, current, quoted = [], "", False
    for char in str(value):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return tuple(item.strip() for item in items if item.strip())


def normalise(guc: Guc, value: t.Any) -> Value:
    """The value as the server would hold it, in the setting's own unit; StackopsError when it would refuse it."""
    if guc.vartype == "bool":
        return _bool(guc, value)
    if guc.vartype == "enum":
        return _enum(guc, value)
    if guc.vartype in ("integer", "real"):
        return _number(guc, value)
    if guc.name.lower() in LIST_SETTINGS:
        return split_list(value)
    if isinstance(value, (list, tuple, dict)):
        raise StackopsError(f"{guc.name} takes one string, not {type(value).__name__} {value!r}")
    return str(value)


def lenient(guc: Guc, value: t.Any) -> Value:
    """normalise() for values the server already holds; one it would not parse stays as its text."""
    try:
        return normalise(guc, value)
    except StackopsError:
        return str(value)


def same(left: Value, right: Value) -> bool:
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    return left == right


def literal(guc: Guc, value: Value) -> list[str]:
    """What ALTER SYSTEM SET is given: one literal, or one per item of a list setting. Integers with a unit are
    written in the largest unit that is exact, as SHOW prints them ("256MB", "1min")."""
    if isinstance(value, tuple):
        return list(value) or [""]
    if isinstance(value, float):
        return [repr(value)]
    if isinstance(value, int) and guc.name.lower() in OCTAL_SETTINGS:
        return [f"{value:04o}"]
    if isinstance(value, int):
        family = unit_family(guc.unit)
        if family is None or value <= 0:
            return [str(value)]
        units, size = family
        total = value * size
        name = next(name for name, factor in units.items() if total % factor == 0)
        return [f"{total // units[name]}{name}"]
    return [value]


def show(guc: Guc, value: Value | None) -> str | None:
    """A value as a person reads it: "256MB", "on", "pg_stat_statements, auto_explain"."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, float):
        return f"{value:g}{guc.unit or ''}"
    return literal(guc, value)[0]


def configured(guc: Guc, entries: list[FileEntry], without_auto_conf: bool = False) -> Value:
    """The value the server takes at its next reload or restart: the last file entry (postgresql.auto.conf is read
    last), else the built-in default. The session's own value is no guide: ALTER ROLE/DATABASE SET change it."""
    chosen = [e for e in entries if not (without_auto_conf and e.in_auto_conf)]
    if chosen:
        return lenient(guc, max(chosen, key=lambda e: e.seqno).setting)
    if guc.source in ("default", "override") and not without_auto_conf:
        return lenient(guc, guc.setting)
    return lenient(guc, guc.boot_val)


@dataclass
class SettingChange:
    name: str
    context: str
    before: str | None
    after: str | None
    values: list[str] | None  # literals for ALTER SYSTEM SET; None for ALTER SYSTEM RESET
    changed: bool
    restart: bool  # a restart is needed before the running server has the new value

    def report(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
            "context": self.context,
            "needs_restart": self.restart,
        }


def suggest(name: str, known: t.Iterable[str]) -> str:
    close = difflib.get_close_matches(name.lower(), list(known), n=3, cutoff=0.75)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def plan_settings(
    wanted: dict[str, t.Any],
    gucs: dict[str, Guc],
    files: dict[str, list[FileEntry]],
    not_allowed: t.Collection[str] = (),
) -> list[SettingChange]:
    """One change per wanted setting (a value, or None for ALTER SYSTEM RESET), or StackopsError listing every bad
    one: a bad value must stop the run before any setting is written. gucs and files are keyed by lower-case name."""
    problems, plan = [], []
    for given, value in wanted.items():
        key = given.lower()
        guc = gucs.get(key)
        if guc is None:
            problems.append(f"{given} is not a setting of this server{suggest(given, gucs)}")
            continue
        if guc.context == "internal" or key in NOT_BY_ALTER_SYSTEM:
            problems.append(
                f"{guc.name} cannot be set with ALTER SYSTEM (it is fixed when the server is built or starts)"
            )
            continue
        if guc.source in ("command line", "environment variable"):
            problems.append(
                f"{guc.name} is given on the server's {guc.source}, which overrides ALTER SYSTEM (change it where "
                "the server is started, such as the compose service's command)"
            )
            continue
        if key in not_allowed:
            problems.append(
                f"the login role may not ALTER SYSTEM {guc.name} (connect as a superuser, or "
                f"GRANT ALTER SYSTEM ON PARAMETER {guc.name} to it)"
            )
            continue
        entries = files.get(key, [])
        before = configured(guc, entries)
        try:
            after = configured(guc, entries, without_auto_conf=True) if value is None else normalise(guc, value)
        except StackopsError as exc:
            problems.append(str(exc))
            continue
        changed = any(e.in_auto_conf for e in entries) if value is None else not same(before, after)
        running = lenient(guc, guc.setting)
        plan.append(
            SettingChange(
                name=guc.name,
                context=guc.context,
                before=show(guc, before),
                after=show(guc, after),
                values=None if value is None else literal(guc, after),
                changed=changed,
                restart=guc.context == "postmaster" and not same(running, after),
            )
        )
    if problems:
        raise StackopsError(f"Bad settings, nothing was changed: {'; '.join(problems)}.")
    return plan


def with_library(items: tuple[str, ...], library: str) -> tuple[str, ...] | None:
    """shared_preload_libraries with library added, or None when it is there already."""
    return None if library in items else (*items, library)


# --- sessions ---------------------------------------------------------------------------------------------------

IDLE_STATES = ("idle", "idle in transaction", "idle in transaction (aborted)")
# Sessions of this collection's own modules are never ended: a backup holds its snapshot in one that is idle in
# transaction while pg_dump runs.
OWN_APPLICATIONS = "stackops-"


def pick_sessions(
    sessions: list[dict[str, t.Any]],
    own_pid: int,
    states: t.Collection[str],
    idle_for: float,
    databases: t.Collection[str] = (),
    users: t.Collection[str] = (),
    applications: t.Collection[str] = (),
) -> list[dict[str, t.Any]]:
    """The client sessions to end: in one of states for at least idle_for seconds, matching every filter given."""
    return [
        s
        for s in sessions
        if s["pid"] != own_pid
        and s["backend_type"] == "client backend"
        and s["state"] in states
        and s["idle_s"] is not None
        and s["idle_s"] >= idle_for
        and (not databases or s["database"] in databases)
        and (not users or s["user"] in users)
        and (not applications or s["application"] in applications)
        and not (s["application"] or "").startswith(OWN_APPLICATIONS)
    ]


# --- tables -----------------------------------------------------------------------------------------------------


@dataclass
class TableStat:
    """A table's size and activity counters (pg_stat_all_tables, pg_*_size)."""

    oid: int
    schema: str
    name: str
    live: int = 0
    dead: int = 0
    modified: int = 0
    table_bytes: int = 0
    index_bytes: int = 0
    total_bytes: int = 0
    last_vacuum: str | None = None
    last_autovacuum: str | None = None
    last_analyze: str | None = None
    last_autoanalyze: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def dead_pct(self) -> float:
        return round(100.0 * self.dead / max(self.live + self.dead, 1), 2)

    @property
    def modified_pct(self) -> float:
        return round(100.0 * self.modified / max(self.live, 1), 2)

    def report(self) -> dict[str, t.Any]:
        return {
            "live": self.live,
            "dead": self.dead,
            "dead_pct": self.dead_pct,
            "modified_since_analyze": self.modified,
            "table_bytes": self.table_bytes,
            "index_bytes": self.index_bytes,
            "total_bytes": self.total_bytes,
            "last_vacuum": self.last_vacuum,
            "last_autovacuum": self.last_autovacuum,
            "last_analyze": self.last_analyze,
            "last_autoanalyze": self.last_autoanalyze,
        }


@dataclass
class Thresholds:
    min_dead_pct: float | None = None
    min_dead_tuples: int | None = None
    min_modified_pct: float | None = None

    @property
    def for_vacuum(self) -> bool:
        return self.min_dead_pct is not None or self.min_dead_tuples is not None

    def vacuum_reason(self, table: TableStat) -> str | None:
        """Why a table does not need a vacuum, or None when it does."""
        if not self.for_vacuum:
            return None
        if table.dead == 0:
            return "no dead tuples"
        if self.min_dead_tuples is not None and table.dead < self.min_dead_tuples:
            return f"{table.dead} dead tuples, under min_dead_tuples {self.min_dead_tuples}"
        if self.min_dead_pct is not None and table.dead_pct < self.min_dead_pct:
            return f"{table.dead_pct:g}% dead tuples, under min_dead_pct {self.min_dead_pct:g}"
        return None

    def analyze_reason(self, table: TableStat) -> str | None:
        """Why a table's statistics need no refresh, or None when they do."""
        if self.min_modified_pct is None:
            return None
        if table.modified == 0:
            return "no rows changed since the last analyze"
        if table.modified_pct < self.min_modified_pct:
            return f"{table.modified_pct:g}% of rows changed since the last analyze, under min_modified_pct"
        return None


@dataclass
class TableAction:
    table: TableStat
    vacuum: bool
    analyze: bool
    full: bool = False

    @property
    def label(self) -> str:
        if not self.vacuum:
            return "ANALYZE"
        options = [name for name, on in (("FULL", self.full), ("ANALYZE", self.analyze)) if on]
        return f"VACUUM ({', '.join(options)})" if options else "VACUUM"


@dataclass
class TablePlan:
    actions: list[TableAction] = field(default_factory=list)
    untouched: list[dict[str, t.Any]] = field(default_factory=list)
    # One statement for the whole database (the runbooks' "VACUUM ANALYZE;"), system catalogs included.
    database_wide: bool = False


def plan_tables(
    stats: list[TableStat],
    vacuum: t.Collection[int],
    analyze: t.Collection[int],
    full: bool,
    thresholds: Thresholds,
    database_wide: bool = False,
) -> TablePlan:
    """What each table gets: VACUUM where the dead-tuple thresholds say so (all asked, without thresholds), ANALYZE
    where the modified-rows threshold says so, both in one VACUUM (ANALYZE) when a vacuumed table is also to be
    analyzed. vacuum and analyze are the oids asked for."""
    plan = TablePlan(database_wide=database_wide)
    for table in stats:
        if table.oid not in vacuum and table.oid not in analyze:
            continue
        why_not_vacuum = thresholds.vacuum_reason(table) if table.oid in vacuum else "not asked"
        do_vacuum = why_not_vacuum is None
        why_not_analyze = thresholds.analyze_reason(table) if table.oid in analyze else "not asked"
        do_analyze = table.oid in analyze and (do_vacuum or why_not_analyze is None)
        if do_vacuum or do_analyze:
            # VACUUM FULL leaves the dead-tuple counter as it was (PostgreSQL 15); its ANALYZE resets it, so the
            # next run's thresholds see the rewritten table.
            full_vacuum = full and do_vacuum
            plan.actions.append(TableAction(table, do_vacuum, do_analyze or full_vacuum, full_vacuum))
        else:
            reasons = [r for r in (why_not_vacuum, why_not_analyze) if r and r != "not asked"]
            plan.untouched.append({"table": table.qualified, "reason": "; ".join(reasons), **table.report()})
    return plan


# --- reindex ----------------------------------------------------------------------------------------------------

REINDEX_KINDS = {"i": "INDEX", "I": "INDEX", "r": "TABLE", "m": "TABLE", "p": "TABLE", "t": "TABLE"}
VACUUM_KINDS = ("r", "m", "p")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def check_reindex(targets: list[dict[str, t.Any]], concurrently: bool, server_version: int) -> None:
    """StackopsError when a REINDEX as asked cannot run: CONCURRENTLY before PostgreSQL 12, or on a catalog."""
    if not targets or not concurrently:
        return
    if server_version < 120000:
        raise StackopsError(
            f"REINDEX CONCURRENTLY needs PostgreSQL 12 or later; this server is {server_version // 10000}. "
            "Set concurrently=false to reindex with locks that block writes (in a maintenance window)."
        )
    catalogs = [f"{item['schema']}.{item['name']}" for item in targets if item.get("schema") in SYSTEM_SCHEMAS]
    if catalogs:
        raise StackopsError(
            f"System catalogs cannot be reindexed concurrently ({', '.join(catalogs)}); set concurrently=false for "
            "them (in a maintenance window), or leave them out."
        )
