"""pg_maintenance and the db_maintenance playbook on lab1's real PostgreSQL 15, in scratch databases of their own:
settings compared after normalising units and reloaded (max_connections reported as waiting for a restart, then
reset so lab1 is left as found), a database created four-step, vacuum and analyze only over the thresholds with a
before/after report, reindex, idle sessions of this test (and only those) ended, and bad input refused with nothing
changed. Each result is checked with plain SQL, not the module's code."""

from __future__ import annotations

import time
import typing as t
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from psycopg2 import sql

import lab
from harness.paths import lab_credentials
from harness.pg import query
from harness.playbook import PlaybookRun, assert_four_step, four_step, run_module, run_playbook

pytestmark = pytest.mark.lab_hosts("lab1")

MODULE = "stackops.runbooks.pg_maintenance"
TAG = uuid.uuid4().hex[:8]
DB = f"pgm_{TAG}"  # the tests' database
NEW_DB = f"pgm_{TAG}_new"  # the one ensure_database creates
# Long enough that a session touched just before a module call stays younger than this during it, on a busy host.
IDLE_FOR = 20
# Settings the tests write with ALTER SYSTEM; the module fixture resets them whatever happens.
TOUCHED = ("log_min_duration_statement", "maintenance_work_mem", "max_connections")


def call(host: lab.Host, check: bool = False, diff: bool = False, **args: t.Any) -> dict:
    """The module's result on host, with `failed` as the run saw it."""
    login = {"login_host": host.addr, "login_password": lab_credentials(host.name)["stackops_pg_password"]}
    run = run_module(MODULE, {**login, **args}, hosts=host.name, check=check, diff=diff)
    return {**run.result(host.name), "failed": host.name in run.failed_hosts()}


def runner(host: lab.Host, *steps: dict) -> Callable[..., PlaybookRun]:
    """A run_module for four_step whose successive calls take the successive argument sets."""
    login = {"login_host": host.addr, "login_password": lab_credentials(host.name)["stackops_pg_password"]}
    pending = iter(steps)

    def run(check: bool) -> PlaybookRun:
        return run_module(MODULE, {**login, **next(pending)}, hosts=host.name, check=check)

    return run


def one(host: lab.Host, db: str, statement: str | sql.Composable, args: tuple = ()) -> t.Any:
    (row,) = query(host, db, statement, args)
    return row[0] if len(row) == 1 else row


def auto_conf(host: lab.Host) -> dict[str, str]:
    """What postgresql.auto.conf holds, read by the server from the file."""
    rows = query(host, "postgres", "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%.auto.conf'")
    return dict(rows)


def pending(host: lab.Host) -> set[str]:
    return {name for (name,) in query(host, "postgres", "SELECT name FROM pg_settings WHERE pending_restart")}


def dead_tuples(host: lab.Host, table: str) -> int:
    return one(host, DB, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (table,))


def bloated_table(host: lab.Host, name: str, rows: int = 20000) -> None:
    """A table with every other row deleted (half its tuples dead), which autovacuum leaves alone."""
    query(host, DB, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    query(
        host,
        DB,
        sql.SQL(
            "CREATE TABLE {} (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = false); "
            "INSERT INTO {} SELECT g, md5(g::text) FROM generate_series(1, %s) g; DELETE FROM {} WHERE id %% 2 = 0"
        ).format(*[sql.Identifier(name)] * 3),
        (rows,),
    )
    # The deleting session's counters reach the statistics when it ends, a moment after the client closes it.
    for _attempt in range(100):
        if dead_tuples(host, name) == rows // 2:
            return
        time.sleep(0.1)
    raise AssertionError(f"the statistics never showed the {rows // 2} dead tuples of {name}")


def session(host: lab.Host, app: str, in_transaction: bool = False) -> psycopg2.extensions.connection:
    """A client session of this test in its database, idle (or idle in a transaction) from now on."""
    conn = psycopg2.connect(
        host=host.addr,
        user="postgres",
        dbname=DB,
        password=lab_credentials(host.name)["stackops_pg_password"],
        application_name=app,
    )
    conn.autocommit = not in_transaction
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    return conn


def alive(host: lab.Host, *apps: str) -> set[str]:
    found = query(
        host,
        "postgres",
        "SELECT application_name FROM pg_stat_activity WHERE application_name = ANY(%s)",
        (list(apps),),
    )
    return {name for (name,) in found}


@pytest.fixture(scope="module")
def lab1(hosts: dict) -> Iterator[lab.Host]:
    """lab1 with the tests' database and its tables (two bloated, one clean), and afterwards as it was found: the
    databases dropped, the settings reset and reloaded."""
    host = hosts["lab1"]
    found = auto_conf(host)
    assert not set(found) & set(TOUCHED), f"lab1 already has {found} in postgresql.auto.conf; reset it first"
    try:
        query(host, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
        bloated_table(host, "bloat")
        bloated_table(host, "idx")
        query(host, DB, "CREATE TABLE clean (id int) WITH (autovacuum_enabled = false); INSERT INTO clean VALUES (1)")
        query(host, DB, "ANALYZE clean")
        yield host
    finally:
        for name in (DB, NEW_DB):
            query(host, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        for name in TOUCHED:
            query(host, "postgres", sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
        query(host, "postgres", "SELECT pg_reload_conf()")


@pytest.fixture(scope="module")
def old_sessions(lab1: lab.Host) -> Iterator[tuple[list[psycopg2.extensions.connection], float]]:
    """An idle session and one idle in a transaction, opened before the first test so that they are old by the time
    the kill test runs; with the time they were opened."""
    conns = [session(lab1, f"pgm-idle-{TAG}"), session(lab1, f"pgm-idletx-{TAG}", in_transaction=True)]
    yield conns, time.monotonic()
    for conn in conns:
        conn.close()


# --- settings ---------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("old_sessions")  # opened now, ended by the kill test further down
def test_settings_are_compared_after_normalising_units(lab1: lab.Host) -> None:
    written = {"settings": {"log_min_duration_statement": "1min", "maintenance_work_mem": "256MB"}}
    # The same values in other units (and a boolean the server already has): the second half must change nothing.
    same = {
        "settings": {"log_min_duration_statement": "60s", "maintenance_work_mem": 262144, "log_checkpoints": "true"}
    }
    check, real, _check_again, real_again = four_step(runner(lab1, written, written, same, same))
    first = real.result("lab1")
    assert first["queries"] == [
        "ALTER SYSTEM SET \"log_min_duration_statement\" = '1min'",
        "ALTER SYSTEM SET \"maintenance_work_mem\" = '256MB'",
        "SELECT pg_reload_conf()",
    ]
    assert check.result("lab1")["queries"] == first["queries"]
    assert first["pending_restart"] == []
    assert [(s["before"], s["after"]) for s in first["settings"]] == [("-1", "1min"), ("64MB", "256MB")]
    assert [s["changed"] for s in real_again.result("lab1")["settings"]] == [False, False, False]
    # Written and reloaded: a new session has the values.
    assert auto_conf(lab1) == {"log_min_duration_statement": "1min", "maintenance_work_mem": "256MB"}
    assert one(lab1, "postgres", "SELECT current_setting('maintenance_work_mem')") == "256MB"


def test_max_connections_waits_for_a_restart_and_reset_leaves_lab1_as_found(lab1: lab.Host) -> None:
    raised = call(lab1, settings={"max_connections": 101})
    assert raised["changed"] and not raised["failed"]
    assert raised["pending_restart"] == [{"name": "max_connections", "running": "100", "configured": "101"}]
    assert raised["settings"][0]["needs_restart"]
    assert any("needs a restart to apply max_connections" in w for w in raised["warnings"])
    # The reload did not apply it: the server still runs with 100, and says it waits for a restart.
    assert one(lab1, "postgres", "SHOW max_connections") == "100"
    assert pending(lab1) == {"max_connections"}

    reset = call(lab1, diff=True, settings=dict.fromkeys(TOUCHED))
    assert reset["changed"] and reset["pending_restart"] == []
    assert reset["diff"]["after"]["settings"] == {
        "log_min_duration_statement": "-1",
        "maintenance_work_mem": "64MB",
        "max_connections": "100",
    }
    assert auto_conf(lab1) == {} and pending(lab1) == set()
    assert one(lab1, "postgres", "SELECT current_setting('maintenance_work_mem')") == "64MB"


# --- database ---------------------------------------------------------------------------------------------------


@pytest.mark.matrix
def test_a_missing_database_is_created_four_step(lab1: lab.Host) -> None:
    spec = {"name": NEW_DB, "owner": "app", "template": "template0", "encoding": "UTF8"}
    runs = four_step(runner(lab1, *[{"ensure_database": spec}] * 4))
    assert runs[0].result("lab1")["database"]["created"] and runs[1].result("lab1")["database"]["created"]
    assert not runs[3].result("lab1")["database"]["created"]
    owner, encoding = one(
        lab1,
        "postgres",
        "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database WHERE datname = %s",
        (NEW_DB,),
    )
    assert (owner, encoding) == ("app", "UTF8")


# --- vacuum, analyze, reindex -----------------------------------------------------------------------------------


def test_vacuum_and_analyze_only_what_crosses_the_thresholds(lab1: lab.Host) -> None:
    args: dict[str, t.Any] = {
        "login_db": DB,
        "vacuum": True,
        "analyze": True,
        "min_dead_pct": 10,
        "min_dead_tuples": 100,
        "min_modified_pct": 10,
        "pg_stat_statements": True,
    }
    check = call(lab1, check=True, **args)
    assert check["changed"] and check["queries"] == [
        'CREATE EXTENSION IF NOT EXISTS "pg_stat_statements"',
        'VACUUM (ANALYZE) "public"."bloat"',
        'VACUUM (ANALYZE) "public"."idx"',
    ]
    assert check["tables"][0]["before"]["dead"] == 10000 and "after" not in check["tables"][0]
    assert dead_tuples(lab1, "bloat") == 10000  # check mode vacuumed nothing
    assert query(lab1, DB, "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'") == []

    real = call(lab1, **args)
    assert real["changed"] and real["queries"] == check["queries"]
    (bloat,) = [t for t in real["tables"] if t["table"] == "public.bloat"]
    assert (bloat["table"], bloat["action"]) == ("public.bloat", "VACUUM (ANALYZE)")
    assert (bloat["before"]["dead"], bloat["after"]["dead"]) == (10000, 0)
    assert bloat["after"]["modified_since_analyze"] == 0 and bloat["after"]["last_vacuum"]
    untouched = {u["table"]: u["reason"] for u in real["untouched"]}
    assert untouched["public.clean"] == "no dead tuples; no rows changed since the last analyze"
    assert real["pg_stat_statements"] == {
        "database": DB,
        "installed": True,
        "created": True,
        "preloaded": True,  # the lab preloads it
        "configured": True,
    }
    assert dead_tuples(lab1, "bloat") == 0
    assert query(lab1, DB, "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'") == [(1,)]

    again = call(lab1, **args)
    assert not again["changed"] and again["queries"] == [] and again["tables"] == []


def test_vacuum_full_and_reindex_give_space_back(lab1: lab.Host) -> None:
    result = call(lab1, login_db=DB, vacuum=["bloat"], full=True, reindex=["public.idx_pkey", "idx"])
    assert result["changed"] and not result["failed"]
    assert result["queries"] == [
        'VACUUM (FULL, ANALYZE) "public"."bloat"',
        'REINDEX INDEX CONCURRENTLY "public"."idx_pkey"',
        'REINDEX TABLE CONCURRENTLY "public"."idx"',
    ]
    assert any("ACCESS EXCLUSIVE" in w for w in result["warnings"])
    (bloat,) = result["tables"]
    # Plain VACUUM kept the file (half of it free space); VACUUM FULL wrote the live half anew.
    assert bloat["after"]["table_bytes"] < 0.7 * bloat["before"]["table_bytes"]
    index, table = result["reindexed"]
    assert index["after_bytes"] < 0.7 * index["before_bytes"] and index["concurrently"]
    assert table["after_bytes"] <= index["after_bytes"] + 8192  # the table's only index, rebuilt again
    assert one(lab1, DB, "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'idx'::regclass") is True


def test_a_failed_reindex_concurrently_leaves_no_invalid_index_it_could_drop(lab1: lab.Host) -> None:
    writer = session(lab1, f"pgm-writer-{TAG}", in_transaction=True)
    try:
        with writer.cursor() as cur:
            cur.execute("INSERT INTO idx VALUES (-1, 'held')")  # REINDEX CONCURRENTLY waits for this transaction
        failed = call(lab1, login_db=DB, reindex=["idx"], lock_timeout=1)
    finally:
        writer.rollback()
        writer.close()
    assert failed["failed"] and failed["msg"].startswith("REINDEX TABLE CONCURRENTLY public.idx failed: canceling")
    invalid = [
        name for (name,) in query(lab1, DB, "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid")
    ]
    # Whatever it could not drop while the writer held on is named in the message, with what to do.
    for name in invalid:
        assert name in failed["msg"] and "DROP INDEX CONCURRENTLY" in failed["msg"]
    for name in invalid:
        query(lab1, DB, sql.SQL("DROP INDEX CONCURRENTLY {}").format(sql.Identifier(*name.split("."))))


# --- idle sessions ----------------------------------------------------------------------------------------------


def test_idle_sessions_are_listed_in_check_mode_and_ended(
    lab1: lab.Host, old_sessions: tuple[list[psycopg2.extensions.connection], float]
) -> None:
    apps = [f"pgm-idle-{TAG}", f"pgm-idletx-{TAG}", f"pgm-fresh-{TAG}"]
    old, opened = old_sessions
    old_pids = sorted(conn.get_backend_pid() for conn in old)
    fresh = session(lab1, apps[2])
    args: dict[str, t.Any] = {"terminate_idle": True, "idle_for": IDLE_FOR, "session_filter": {"applications": apps}}
    try:
        time.sleep(max(0.0, opened + IDLE_FOR + 0.5 - time.monotonic()))  # a no-op after the tests before
        with fresh.cursor() as cur:
            cur.execute("SELECT 1")  # idle from now: younger than idle_for during the call
        check = call(lab1, check=True, diff=True, **args)
        assert check["changed"] and sorted(s["pid"] for s in check["terminated"]) == old_pids
        assert {s["state"] for s in check["terminated"]} == {"idle", "idle in transaction"}
        assert all(s["idle_s"] >= IDLE_FOR and s["query"] == "SELECT 1" for s in check["terminated"])
        assert len(check["diff"]["before"]["sessions"]) == 2 and check["diff"]["after"]["sessions"] == []
        assert alive(lab1, *apps) == set(apps)  # check mode ended nothing

        with fresh.cursor() as cur:
            cur.execute("SELECT 1")
        real = call(lab1, **args)
        assert real["changed"] and sorted(s["pid"] for s in real["terminated"]) == old_pids
        assert real["not_terminated"] == []
        assert alive(lab1, *apps) == {apps[2]}  # the fresh one is left alone
        with pytest.raises(psycopg2.OperationalError):
            old[1].cursor().execute("SELECT 1")

        with fresh.cursor() as cur:
            cur.execute("SELECT 1")
        again = call(lab1, **args)
        assert not again["changed"] and again["terminated"] == []
    finally:
        fresh.close()


# --- bad input --------------------------------------------------------------------------------------------------


def maintained(host: lab.Host) -> int:
    """How many times the tests' tables were vacuumed or analyzed (synchronous counters, unlike dead tuples)."""
    return one(host, DB, "SELECT sum(vacuum_count + analyze_count)::int FROM pg_stat_user_tables")


# Each case: the arguments, and what the message must say (the value and the fix).
BAD_INPUT: list[tuple[dict[str, t.Any], list[str]]] = [
    (
        {
            "settings": {
                "maintenance_work_mem": "256MB",
                "work_mem": "64mb",
                "max_conections": 200,
                "server_version": "16",
            }
        },
        [
            "Bad settings, nothing was changed",
            "work_mem '64mb' has an unknown unit 'mb' (the units of work_mem are TB, GB, MB, kB, B, case matters",
            "max_conections is not a setting of this server (did you mean max_connections",
            "server_version cannot be set with ALTER SYSTEM",
        ],
    ),
    (
        {"login_db": DB, "vacuum": ["bloat", "no_such_table"], "reindex": ["idx"]},
        ["vacuum: no_such_table was not found in database", "schema-qualified when they are not on the search path"],
    ),
    (
        {"ensure_database": {"name": f"pgm_{TAG}_never", "owner": "no_such_role"}},
        ["the owner role no_such_role does not exist (create it first, or give another owner)", "Nothing was changed"],
    ),
]


def test_bad_input_is_named_and_changes_nothing(lab1: lab.Host) -> None:
    before = (auto_conf(lab1), maintained(lab1))
    # Side by side: each call is its own ansible-runner process, and none may change anything.
    with ThreadPoolExecutor(max_workers=len(BAD_INPUT)) as pool:
        results = list(pool.map(lambda case: call(lab1, **case[0]), BAD_INPUT))
    for (_args, fragments), result in zip(BAD_INPUT, results):
        assert result["failed"] and "Traceback" not in result["msg"], result
        for fragment in fragments:
            assert fragment in result["msg"]
    assert (auto_conf(lab1), maintained(lab1)) == before
    assert query(lab1, "postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (f"pgm_{TAG}_never",)) == []


# --- the playbook -----------------------------------------------------------------------------------------------


def play_vars(**extra: object) -> dict:
    return {
        "db_maintenance_db": DB,
        "db_maintenance_ensure_database": True,
        "db_maintenance_terminate_idle": True,
        "db_maintenance_idle_for": 1,
        "db_maintenance_idle_states": ["idle in transaction"],
        "db_maintenance_session_applications": [f"pgm-play-{TAG}"],
        **extra,
    }


@pytest.mark.matrix
def test_playbook_four_step(lab1: lab.Host) -> None:
    bloated_table(lab1, "play")
    stuck = session(lab1, f"pgm-play-{TAG}", in_transaction=True)
    try:
        time.sleep(1.2)  # idle in transaction for longer than db_maintenance_idle_for
        runs = assert_four_step("stackops.runbooks.db_maintenance", limit="lab1", extravars=play_vars())
    finally:
        stuck.close()
    assert runs[0].changed() == {"lab1": 2}  # the vacuum and the session; the database is there
    summary = runs[1].artifacts["db_maintenance"]["lab1"]
    assert summary["status"] == "ok" and summary["mode"] == "online" and summary["terminated"] == 1
    play = next(t for t in summary["tables"] if t["table"] == "public.play")
    assert (play["action"], play["before"]["dead"], play["after"]["dead"]) == ("VACUUM (ANALYZE)", 10000, 0)
    assert summary["database_bytes"]["before"] > 0 and summary["pending_restart"] == []
    assert dead_tuples(lab1, "play") == 0
    assert runs[3].artifacts["db_maintenance"]["lab1"]["tables"] == []


def test_playbook_online_refuses_blocking_locks(lab1: lab.Host) -> None:
    run = run_playbook(
        "stackops.runbooks.db_maintenance",
        limit="lab1",
        extravars=play_vars(db_maintenance_full=True, db_maintenance_reindex=["idx"]),
    )
    assert run.failed_hosts() == {"lab1"}
    assert "ACCESS EXCLUSIVE lock on each table" in run.stdout and "db_maintenance_window=true" in run.stdout
    assert run.artifacts["db_maintenance"]["lab1"]["status"] == "failed"
    assert not any(run.changed().values())


def test_playbook_without_a_postgres_host_fails_naming_the_variable(lab1: lab.Host) -> None:
    """No login setting is refused before any module runs, not left to the modules' default, localhost, which may
    be another server (issue 18 item 5)."""
    bloated_table(lab1, "nohost")
    try:
        run = run_playbook("stackops.runbooks.db_maintenance", limit="lab1", extravars=play_vars(stackops_pg_host=""))
        assert run.failed_hosts() == {"lab1"}
        assert "No postgres host to log into: set stackops_pg_host" in " ".join(run.stdout.split())
        assert not any(run.changed().values()) and dead_tuples(lab1, "nohost") == 10000
    finally:
        query(lab1, DB, "DROP TABLE IF EXISTS nohost")
