"""The pure decisions of pg_maintenance: settings values read as PostgreSQL reads them (units, booleans, enums,
lists) over pg_settings and pg_file_settings recorded from the lab's PostgreSQL 15.18, the settings plan, which
sessions are ended, which tables are vacuumed or analyzed, and the input checks."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from psycopg2 import sql as psql

from ansible_collections.stackops.runbooks.plugins.module_utils import _pg_operations as pg_maintenance
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_maintenance import (
    FileEntry,
    Guc,
    TableStat,
    Thresholds,
    check_reindex,
    configured,
    literal,
    normalise,
    pick_sessions,
    plan_settings,
    plan_tables,
    show,
    split_list,
    with_library,
)
from ansible_collections.stackops.runbooks.plugins.modules.pg_maintenance import argument_spec

# Recorded on lab1: SELECT ... FROM pg_settings / pg_file_settings (PostgreSQL 15.18, Debian 12).
RECORDED = json.loads((Path(__file__).parent / "fixtures" / "pg" / "settings-15.18.json").read_text())
GUCS = {row["name"].lower(): Guc.from_row(row) for row in RECORDED["pg_settings"]}
AUTO = "/var/lib/postgresql/data/postgresql.auto.conf"


def files(*extra: tuple[str, str]) -> dict[str, list[FileEntry]]:
    """The recorded configuration files, plus postgresql.auto.conf entries (name, value) read after them."""
    found: dict[str, list[FileEntry]] = {}
    entries = [FileEntry(**row) for row in RECORDED["pg_file_settings"]]
    last = max(e.seqno for e in entries)
    entries += [FileEntry(AUTO, last + n, name, value) for n, (name, value) in enumerate(extra, 1)]
    for entry in entries:
        found.setdefault(entry.name.lower(), []).append(entry)
    return found


def guc(recorded: str, **changed: t.Any) -> Guc:
    """A recorded setting with some of its columns changed."""
    row = {**next(r for r in RECORDED["pg_settings"] if r["name"].lower() == recorded.lower()), **changed}
    return Guc.from_row(row)


# --- values read as the server reads them ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # memory, in kB
        ("maintenance_work_mem", "256MB", 262144),
        ("maintenance_work_mem", "256 MB", 262144),
        ("maintenance_work_mem", 262144, 262144),
        ("maintenance_work_mem", "262144", 262144),
        ("maintenance_work_mem", "1GB", 1048576),
        ("maintenance_work_mem", "1048576kB", 1048576),
        # memory, in 8kB pages and in MB
        ("shared_buffers", "128MB", 16384),
        ("shared_buffers", 16384, 16384),
        ("shared_buffers", "256kB", 32),
        ("max_wal_size", "2GB", 2048),
        # time, in ms, s and min
        ("log_min_duration_statement", "1s", 1000),
        ("log_min_duration_statement", "1min", 60000),
        ("log_min_duration_statement", "250ms", 250),
        ("log_min_duration_statement", "1.5s", 1500),
        ("log_min_duration_statement", -1, -1),
        ("log_min_duration_statement", "-1", -1),
        ("checkpoint_timeout", "1min", 60),
        ("checkpoint_timeout", "60s", 60),
        ("checkpoint_timeout", "1h", 3600),
        ("checkpoint_timeout", "90000ms", 90),
        ("checkpoint_timeout", "31500ms", 32),  # rounded to the nearest, as the server does
        ("log_rotation_age", "1d", 1440),
        # plain integers and reals
        ("max_connections", 200, 200),
        ("max_connections", "200", 200),
        ("vacuum_cost_delay", "2ms", 2.0),
        ("vacuum_cost_delay", "500us", 0.5),
        ("vacuum_cost_delay", 0.5, 0.5),
        ("autovacuum_vacuum_scale_factor", 0.05, 0.05),
        ("autovacuum_vacuum_scale_factor", "5e-2", 0.05),
        # booleans: YAML's, and the server's spellings and prefixes
        ("log_checkpoints", True, "on"),
        ("log_checkpoints", "true", "on"),
        ("log_checkpoints", "ON", "on"),
        ("log_checkpoints", "yes", "on"),
        ("log_checkpoints", "t", "on"),
        ("log_checkpoints", 1, "on"),
        ("log_checkpoints", "1", "on"),
        ("log_checkpoints", False, "off"),
        ("log_checkpoints", "of", "off"),
        ("log_checkpoints", "no", "off"),
        ("log_checkpoints", "0", "off"),
        # enums: case-insensitive, and YAML's on/off (parsed as booleans) taken as the names
        ("synchronous_commit", "LOCAL", "local"),
        ("synchronous_commit", False, "off"),
        ("huge_pages", True, "on"),
        ("wal_compression", "lz4", "lz4"),
        # strings, and list settings as items
        ("log_line_prefix", "%m [%p] ", "%m [%p] "),
        ("shared_preload_libraries", "pg_stat_statements, auto_explain", ("pg_stat_statements", "auto_explain")),
        ("shared_preload_libraries", ["pg_stat_statements"], ("pg_stat_statements",)),
        ("shared_preload_libraries", "", ()),
        ("search_path", '"$user", public', ("$user", "public")),
        ("DateStyle", "ISO, MDY", ("ISO", "MDY")),
    ],
)
def test_values_are_read_as_the_server_reads_them(name: str, value: t.Any, expected: t.Any) -> None:
    assert normalise(GUCS[name.lower()], value) == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("maintenance_work_mem", "256mb", "maintenance_work_mem '256mb' has an unknown unit 'mb' (the units of"),
        ("maintenance_work_mem", "256 XB", "unknown unit 'XB'"),
        ("maintenance_work_mem", "lots", "'lots' is not an integer (the units of maintenance_work_mem are TB, GB"),
        ("maintenance_work_mem", True, "True is not an integer"),
        ("maintenance_work_mem", "100TB", "is outside its range 1024..2147483647 kB"),
        ("maintenance_work_mem", "512", "'512' is outside its range 1024..2147483647 kB (512kB asked)"),
        ("max_connections", "5MB", "max_connections '5MB' has a unit, but max_connections takes none"),
        ("max_connections", 0, "max_connections 0 is outside its range 1..262143"),
        ("log_min_duration_statement", "1sec", "unknown unit 'sec' (the units of log_min_duration_statement are d, h,"),
        ("log_min_duration_statement", "5MB", "unknown unit 'MB'"),
        ("checkpoint_timeout", "0x10", "'0x10' is outside its range 30..86400 s (16s asked)"),  # read as hex
        ("log_checkpoints", "perhaps", "log_checkpoints 'perhaps' is not a boolean (use on or off"),
        ("log_checkpoints", "o", "is not a boolean"),  # on or off: the server refuses it too
        (
            "synchronous_commit",
            "maybe",
            "'maybe' is not one of its values (local, remote_write, remote_apply, on, off)",
        ),
        ("log_line_prefix", ["a"], "log_line_prefix takes one string, not list"),
        ("vacuum_cost_delay", "1000", "is outside its range 0..100 ms"),
    ],
)
def test_bad_values_are_named_with_the_fix(name: str, value: t.Any, message: str) -> None:
    with pytest.raises(StackopsError) as caught:
        normalise(GUCS[name.lower()], value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "written", "shown"),
    [
        ("maintenance_work_mem", 262144, ["256MB"], "256MB"),
        ("maintenance_work_mem", 1500, ["1500kB"], "1500kB"),
        ("shared_buffers", 16384, ["128MB"], "128MB"),
        ("shared_buffers", 17, ["136kB"], "136kB"),
        ("checkpoint_timeout", 60, ["1min"], "1min"),
        ("checkpoint_timeout", 90, ["90s"], "90s"),
        ("log_min_duration_statement", 1500, ["1500ms"], "1500ms"),
        ("log_min_duration_statement", -1, ["-1"], "-1"),
        ("log_min_duration_statement", 0, ["0"], "0"),
        ("max_connections", 100, ["100"], "100"),
        ("vacuum_cost_delay", 2.0, ["2.0"], "2ms"),
        ("shared_preload_libraries", ("a", "b"), ["a", "b"], "a, b"),
        ("shared_preload_libraries", (), [""], ""),
        ("log_checkpoints", "on", ["on"], "on"),
    ],
)
def test_values_are_written_exactly_in_the_largest_unit(name: str, value: t.Any, written: list, shown: str) -> None:
    setting = GUCS[name.lower()]
    assert literal(setting, value) == written
    assert show(setting, value) == shown
    # What is written reads back as the same value.
    assert normalise(setting, written if isinstance(value, tuple) else written[0]) == value


def test_list_settings_keep_quoted_commas() -> None:
    assert split_list('"a,b", c') == ("a,b", "c")
    assert split_list([" a ", "", "b"]) == ("a", "b")


# --- which value a setting has now ------------------------------------------------------------------------------


def test_the_configured_value_is_the_last_file_entry() -> None:
    # max_connections is in postgresql.conf and again in the lab's lab.conf; an ALTER SYSTEM entry comes last.
    assert configured(GUCS["max_connections"], files()["max_connections"]) == 100
    entries = files(("max_connections", "200"))["max_connections"]
    assert configured(GUCS["max_connections"], entries) == 200
    assert configured(GUCS["max_connections"], entries, without_auto_conf=True) == 100


def test_without_a_file_entry_the_default_counts_not_the_session_value() -> None:
    assert configured(GUCS["work_mem"], []) == 4096
    # ALTER ROLE ... SET work_mem shows in the session (source "user"); the server default is still boot_val.
    assert configured(guc("work_mem", setting="65536", source="user"), []) == 4096


# --- the settings plan ------------------------------------------------------------------------------------------


def test_a_value_in_other_units_is_no_change() -> None:
    plan = plan_settings(
        {"maintenance_work_mem": "64MB", "checkpoint_timeout": "5min", "log_checkpoints": "true"}, GUCS, files()
    )
    assert [c.changed for c in plan] == [False, False, False]
    written = files(("maintenance_work_mem", "256MB"), ("log_min_duration_statement", "1min"))
    plan = plan_settings({"maintenance_work_mem": 262144, "log_min_duration_statement": "60s"}, GUCS, written)
    assert [(c.before, c.after, c.changed) for c in plan] == [("256MB", "256MB", False), ("1min", "1min", False)]


def test_a_change_is_written_in_the_setting_own_terms() -> None:
    (change,) = plan_settings({"maintenance_work_mem": "0.25GB"}, GUCS, files())
    assert (change.before, change.after, change.values, change.changed) == ("64MB", "256MB", ["256MB"], True)
    assert not change.restart


def test_a_postmaster_setting_needs_a_restart_until_it_is_back_to_the_running_value() -> None:
    (change,) = plan_settings({"max_connections": 200}, GUCS, files())
    assert (change.before, change.after, change.changed, change.restart) == ("100", "200", True, True)
    # Written already and waiting for the restart: no change, still needs it.
    (change,) = plan_settings({"max_connections": 200}, GUCS, files(("max_connections", "200")))
    assert (change.changed, change.restart) == (False, True)
    # Set back to the running value: a change, and no restart needed any more.
    (change,) = plan_settings({"max_connections": "100"}, GUCS, files(("max_connections", "200")))
    assert (change.changed, change.restart) == (True, False)


def test_null_resets_only_what_postgresql_auto_conf_has() -> None:
    (change,) = plan_settings({"max_connections": None}, GUCS, files(("max_connections", "200")))
    assert (change.values, change.before, change.after, change.changed, change.restart) == (
        None,
        "200",
        "100",  # lab.conf's value applies again
        True,
        False,
    )
    (change,) = plan_settings({"max_connections": None}, GUCS, files())
    assert not change.changed
    (change,) = plan_settings({"work_mem": None}, GUCS, files(("work_mem", "64MB")))
    assert (change.after, change.changed) == ("4MB", True)  # the built-in default


def test_names_are_case_insensitive_and_reported_as_the_server_spells_them() -> None:
    (change,) = plan_settings({"datestyle": "iso, mdy"}, GUCS, files())
    assert change.name == "DateStyle"


def test_list_settings_compare_by_item() -> None:
    (same,) = plan_settings({"shared_preload_libraries": ["pg_stat_statements"]}, GUCS, files())
    assert not same.changed
    (more,) = plan_settings({"shared_preload_libraries": "pg_stat_statements,auto_explain"}, GUCS, files())
    assert (more.values, more.changed, more.restart) == (["pg_stat_statements", "auto_explain"], True, True)
    assert with_library(("auto_explain",), "pg_stat_statements") == ("auto_explain", "pg_stat_statements")
    assert with_library(("pg_stat_statements",), "pg_stat_statements") is None


def test_every_bad_setting_is_named_before_any_is_written() -> None:
    gucs = {**GUCS, "port": guc("max_connections", name="port", source="command line")}
    wanted = {
        "maintenance_work_mem": "256MB",  # good: must not hide the bad ones
        "max_conections": 200,
        "server_version": "16",
        "data_directory": "/srv",
        "port": 5433,
        "work_mem": "1 GiB",
        "shared_buffers": "1GB",
    }
    with pytest.raises(StackopsError) as caught:
        plan_settings(wanted, gucs, files(), not_allowed=["shared_buffers"])
    message = str(caught.value)
    assert message.startswith("Bad settings, nothing was changed: ")
    for fragment in (
        "max_conections is not a setting of this server (did you mean max_connections",
        "server_version cannot be set with ALTER SYSTEM",
        "data_directory cannot be set with ALTER SYSTEM",
        "port is given on the server's command line, which overrides ALTER SYSTEM (change it where the server",
        "work_mem '1 GiB' has an unknown unit 'GiB'",
        "the login role may not ALTER SYSTEM shared_buffers (connect as a superuser, or GRANT ALTER SYSTEM ON",
    ):
        assert fragment in message
    assert "maintenance_work_mem" not in message


# --- sessions ---------------------------------------------------------------------------------------------------


def session(pid: int, **given: t.Any) -> dict[str, t.Any]:
    return {
        "pid": pid,
        "user": "app",
        "database": "app",
        "application": "api",
        "backend_type": "client backend",
        "state": "idle",
        "idle_s": 600.0,
        **given,
    }


SESSIONS = [
    session(1),
    session(2, state="idle in transaction"),
    session(3, state="idle in transaction (aborted)"),
    session(4, state="active"),
    session(5, idle_s=299.9),
    session(6, backend_type="autovacuum worker"),
    session(7, backend_type="walsender", state="active"),
    session(8, application="stackops-pg_backup", state="idle in transaction"),
    session(9, user="report", database="analytics", application="metabase"),
    session(10, state=None, idle_s=None, backend_type="background writer"),
    session(99),  # the module's own
]
ALL_IDLE = ("idle", "idle in transaction", "idle in transaction (aborted)")


@pytest.mark.parametrize(
    ("states", "idle_for", "filters", "expected"),
    [
        (ALL_IDLE, 300, {}, [1, 2, 3, 9]),
        (ALL_IDLE, 299, {}, [1, 2, 3, 5, 9]),
        (("idle in transaction", "idle in transaction (aborted)"), 300, {}, [2, 3]),
        (("idle",), 0, {}, [1, 5, 9]),
        (ALL_IDLE, 300, {"databases": ["analytics"]}, [9]),
        (ALL_IDLE, 300, {"users": ["app"]}, [1, 2, 3]),
        (ALL_IDLE, 300, {"applications": ["metabase", "api"]}, [1, 2, 3, 9]),
        (ALL_IDLE, 300, {"users": ["app"], "applications": ["metabase"]}, []),
        (ALL_IDLE, 300, {"applications": ["stackops-pg_backup"]}, []),  # never a module of this collection
    ],
)
def test_the_sessions_to_end(states: tuple, idle_for: float, filters: dict, expected: list[int]) -> None:
    picked = pick_sessions(SESSIONS, 99, states, idle_for, **filters)
    assert [s["pid"] for s in picked] == expected


# --- tables -----------------------------------------------------------------------------------------------------


def table(oid: int, live: int, dead: int, modified: int = 0) -> TableStat:
    return TableStat(oid, "public", f"t{oid}", live=live, dead=dead, modified=modified)


TABLES = [table(1, 1000, 500, 0), table(2, 1000, 50, 0), table(3, 100000, 2000, 0), table(4, 10, 0, 10)]


@pytest.mark.parametrize(
    ("thresholds", "vacuum", "analyze", "expected"),
    [
        # no thresholds: everything asked for
        (Thresholds(), {1, 2, 3, 4}, set(), {1: "VACUUM", 2: "VACUUM", 3: "VACUUM", 4: "VACUUM"}),
        (Thresholds(), {1}, {1, 2}, {1: "VACUUM (ANALYZE)", 2: "ANALYZE"}),
        # dead tuples as a share, as a count, and both
        (Thresholds(min_dead_pct=10), {1, 2, 3, 4}, set(), {1: "VACUUM"}),
        (Thresholds(min_dead_tuples=100), {1, 2, 3, 4}, set(), {1: "VACUUM", 3: "VACUUM"}),
        (Thresholds(min_dead_pct=1, min_dead_tuples=1000), {1, 2, 3, 4}, set(), {3: "VACUUM"}),
        (Thresholds(min_dead_pct=0), {4}, set(), {}),  # no dead tuples: never, whatever the threshold
        # stale statistics, and a vacuumed table analyzed in the same statement
        (Thresholds(min_modified_pct=50), set(), {1, 2, 3, 4}, {4: "ANALYZE"}),
        (
            Thresholds(min_dead_pct=10, min_modified_pct=50),
            {1, 2, 3, 4},
            {1, 2, 3, 4},
            {1: "VACUUM (ANALYZE)", 4: "ANALYZE"},
        ),
    ],
)
def test_which_tables_are_vacuumed_or_analyzed(
    thresholds: Thresholds, vacuum: set, analyze: set, expected: dict[int, str]
) -> None:
    asked = [tbl for tbl in TABLES if tbl.oid in vacuum | analyze]
    plan = plan_tables(asked, vacuum, analyze, False, thresholds)
    assert {a.table.oid: a.label for a in plan.actions} == expected
    assert {u["table"] for u in plan.untouched} == {tbl.qualified for tbl in asked if tbl.oid not in expected}


def test_untouched_tables_say_why() -> None:
    plan = plan_tables(TABLES, {1, 2, 4}, set(), False, Thresholds(min_dead_pct=10, min_dead_tuples=100))
    reasons = {u["table"]: u["reason"] for u in plan.untouched}
    assert reasons == {"public.t2": "50 dead tuples, under min_dead_tuples 100", "public.t4": "no dead tuples"}
    plan = plan_tables(TABLES, {2}, set(), False, Thresholds(min_dead_pct=10))
    assert plan.untouched[0]["reason"] == "4.76% dead tuples, under min_dead_pct 10"
    assert plan.untouched[0]["dead"] == 50


def test_vacuum_full_always_analyzes() -> None:
    plan = plan_tables(TABLES, {1, 2}, set(), True, Thresholds(min_dead_pct=10))
    assert [(a.table.oid, a.label) for a in plan.actions] == [(1, "VACUUM (FULL, ANALYZE)")]


def test_reindex_concurrently_needs_12_and_no_catalogs() -> None:
    user = [{"schema": "public", "name": "orders"}]
    check_reindex(user, True, 150018)
    check_reindex(user, False, 110022)
    with pytest.raises(StackopsError, match="REINDEX CONCURRENTLY needs PostgreSQL 12 or later; this server is 11"):
        check_reindex(user, True, 110022)
    with pytest.raises(
        StackopsError, match=r"System catalogs cannot be reindexed concurrently \(pg_catalog.pg_class\)"
    ):
        check_reindex([*user, {"schema": "pg_catalog", "name": "pg_class"}], True, 150018)
    check_reindex([{"schema": "pg_catalog", "name": "pg_class"}], False, 150018)


# --- the module's input checks ----------------------------------------------------------------------------------


def params(**given: t.Any) -> dict[str, t.Any]:
    spec = argument_spec()
    return {**{name: option.get("default") for name, option in spec.items()}, **given}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (None, False),
        ("yes", True),
        ("false", False),
        ("orders", ["orders"]),
        ("orders, audit.log", ["orders", "audit.log"]),
        (["public.orders"], ["public.orders"]),
    ],
)
def test_vacuum_analyze_and_reindex_take_a_bool_or_names(value: t.Any, expected: t.Any) -> None:
    assert pg_maintenance.scope("vacuum", value) == expected


@pytest.mark.parametrize("value", [[], [""], {"orders": 1}, [1], 5])
def test_other_scopes_are_refused(value: t.Any) -> None:
    with pytest.raises(StackopsError, match="vacuum must be true, false or a list of table names"):
        pg_maintenance.scope("vacuum", value)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"full": True}, "full=true rewrites the tables that vacuum names; set vacuum too"),
        ({"vacuum": True, "min_dead_pct": -1.0}, "min_dead_pct must be 0 or more, not -1.0"),
        ({"idle_for": -5}, "idle_for must be 0 or more"),
        ({"terminate_idle": True, "states": []}, "states is empty, so terminate_idle would end nothing"),
        ({"settings": {}}, "settings is empty"),
    ],
)
def test_inputs_that_cannot_work_are_refused(given: dict, message: str) -> None:
    with pytest.raises(StackopsError, match=message):
        pg_maintenance.check_inputs(params(**given))


# --- the steps: what each operation's decision becomes, statement by statement ------------------------------------


def shown(statement: t.Any) -> str:
    """psycopg2's composed SQL as text without a server (the lab's tests send it to one): identifiers in double
    quotes, literals in single quotes."""
    if isinstance(statement, psql.Composed):
        return "".join(shown(part) for part in statement.seq)
    if isinstance(statement, psql.Identifier):
        return ".".join(f'"{name}"' for name in statement.strings)
    if isinstance(statement, psql.Literal):
        return f"'{statement.wrapped}'"
    if isinstance(statement, psql.SQL):
        return statement.string
    return str(statement)


def test_the_database_steps() -> None:
    spec = {"name": "app", "owner": "app", "template": "template0", "encoding": "UTF8", "lc_collate": None}
    spec["lc_ctype"] = None
    (create,) = pg_maintenance.database_steps(spec, None, "app", shown)
    assert create.command == 'CREATE DATABASE "app" OWNER "app" TEMPLATE "template0" ENCODING \'UTF8\''
    (alter,) = pg_maintenance.database_steps(spec, {"owner": "postgres"}, "app", shown)
    assert alter.command == 'ALTER DATABASE "app" OWNER TO "app"'
    assert pg_maintenance.database_steps(spec, {"owner": "app"}, "app", shown) == []
    assert pg_maintenance.database_steps(spec, {"owner": "postgres"}, None, shown) == []


def test_the_settings_steps_on_recorded_settings() -> None:
    plan = plan_settings(
        {"maintenance_work_mem": "0.25GB", "work_mem": "4MB", "log_min_duration_statement": None},
        GUCS,
        files(("log_min_duration_statement", "250")),
    )
    steps = pg_maintenance.setting_steps([c for c in plan if c.changed], shown)
    # In the order the settings were given; work_mem is 4MB already.
    assert [s.command for s in steps] == [
        "ALTER SYSTEM SET \"maintenance_work_mem\" = '256MB'",
        'ALTER SYSTEM RESET "log_min_duration_statement"',
    ]
    assert [s.data["change"].name for s in steps] == ["maintenance_work_mem", "log_min_duration_statement"]


def test_the_extension_and_session_steps() -> None:
    assert pg_maintenance.extension_steps(True, shown) == []
    (create,) = pg_maintenance.extension_steps(False, shown)
    assert create.command == 'CREATE EXTENSION IF NOT EXISTS "pg_stat_statements"'
    picked = [session(41), session(42)]
    assert [s.command for s in pg_maintenance.session_steps(picked)] == [
        "SELECT pg_terminate_backend(41)",
        "SELECT pg_terminate_backend(42)",
    ]


@pytest.mark.parametrize(
    ("vacuum_all", "analyze_all", "full", "expected"),
    [
        (True, False, False, "VACUUM"),
        (True, True, False, "VACUUM (ANALYZE)"),
        (True, False, True, "VACUUM (FULL, ANALYZE)"),
        (False, True, False, "ANALYZE"),
    ],
)
def test_a_database_wide_plan_is_one_statement(vacuum_all: bool, analyze_all: bool, full: bool, expected: str) -> None:
    plan = plan_tables(TABLES, {1, 2, 3, 4}, {1, 2, 3, 4}, full, Thresholds(), database_wide=True)
    assert [s.command for s in pg_maintenance.table_steps(plan, vacuum_all, analyze_all, full, shown)] == [expected]


def test_table_steps_follow_the_plan_table_by_table() -> None:
    plan = plan_tables(TABLES, {1, 2, 3, 4}, {4}, False, Thresholds(min_dead_tuples=100))
    steps = pg_maintenance.table_steps(plan, False, False, False, shown)
    assert [s.command for s in steps] == ['VACUUM "public"."t1"', 'VACUUM "public"."t3"', 'ANALYZE "public"."t4"']
    assert steps[0].data["what"] == "VACUUM of public.t1"


def test_reindex_steps() -> None:
    targets = [
        {"kind": "DATABASE", "schema": None, "name": "app"},
        {"kind": "INDEX", "schema": "public", "name": "orders_pkey"},
    ]
    steps = pg_maintenance.reindex_steps(targets, True, shown)
    assert [s.command for s in steps] == [
        'REINDEX DATABASE CONCURRENTLY "app"',
        'REINDEX INDEX CONCURRENTLY "public"."orders_pkey"',
    ]
    assert [s.data["what"] for s in steps] == [
        "REINDEX DATABASE CONCURRENTLY app",
        "REINDEX INDEX CONCURRENTLY public.orders_pkey",
    ]
    assert pg_maintenance.reindex_steps(targets[1:], False, shown)[0].command == 'REINDEX INDEX "public"."orders_pkey"'
