"""The advisors of pg_health and redis_health on drill1's real PostgreSQL 17 and Redis 8: a scratch database with
an unused index, a table read by sequential scans, a slow statement and secret-bearing settings; a slow Lua script
in SLOWLOG and the latency monitor; the write probe on a primary that accepts writes and on one out of memory; and
the advisor options of the health_check and db_maintenance roles. Each advisor's findings carry an action, secrets
never show."""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis

import lab
from harness.paths import lab_credentials
from harness.playbook import assert_module_read_only, run_module, run_playbook

pytestmark = pytest.mark.lab_hosts("drill1")

PG = "stackops.runbooks.pg_health"
REDIS = "stackops.runbooks.redis_health"
SCRATCH = "advisor_scratch"
CONNINFO_SECRET = "drill-conninfo-password"
PASSPHRASE_SECRET = "drill-passphrase-secret"
ARG_SECRET = "drill-slowlog-secret"
# A Lua loop of some 100 ms (more on a busy machine): a SLOWLOG entry and a latency event of its own, with an
# argument that stands for a secret.
SLOW_SCRIPT = "local n = 0 for i = 1, 10000000 do n = n + 1 end return n"
SLOW_MS = 30


@pytest.fixture
def drill1(hosts: dict) -> lab.Host:
    return hosts["drill1"]


def pg_connect(host: lab.Host, dbname: str) -> t.Any:
    password = lab_credentials(host.name)["stackops_pg_password"]
    conn = psycopg2.connect(host=host.addr, user="postgres", dbname=dbname, password=password)
    conn.autocommit = True
    return conn


@pytest.fixture
def scratch(drill1: lab.Host) -> Iterator[None]:
    """A database with: events (an unused index, a unique constraint and a used index), scans (no index, read by
    sequential scans), a statement of 250 ms run three times; and, in postgresql.auto.conf, a primary_conninfo with
    a password and an ssl_passphrase_command (ssl is off: neither is used). All of it undone afterwards."""
    admin = pg_connect(drill1, "postgres")
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {SCRATCH}")
            cur.execute(f"ALTER SYSTEM SET ssl_passphrase_command = 'echo {PASSPHRASE_SECRET}'")
            cur.execute(f"ALTER SYSTEM SET primary_conninfo = 'host=127.0.2.1 user=rep password={CONNINFO_SECRET}'")
            cur.execute("SELECT pg_reload_conf()")
        conn = pg_connect(drill1, SCRATCH)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            cur.execute(
                "CREATE TABLE events (id int PRIMARY KEY, code text UNIQUE, kind int, note text);"
                "INSERT INTO events SELECT g, 'c' || g, g % 10, repeat('x', 40) || g FROM generate_series(1, 30000) g;"
                "CREATE INDEX events_note_idx ON events (note); CREATE INDEX events_kind_idx ON events (kind);"
                "CREATE TABLE scans (id int, kind int, payload text);"
                "INSERT INTO scans SELECT g, g % 100, repeat('y', 20) FROM generate_series(1, 10000) g; ANALYZE"
            )
            cur.execute("SET enable_seqscan = off")
            for kind in range(5):
                cur.execute("SELECT count(*) FROM events WHERE kind = %s", (kind,))
            cur.execute("RESET enable_seqscan")
            for kind in range(25):
                cur.execute("SELECT count(*) FROM scans WHERE kind = %s", (kind,))
            for _attempt in range(3):
                cur.execute("SELECT pg_sleep(0.25)")
        conn.close()
        yield
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
            cur.execute("ALTER SYSTEM RESET primary_conninfo")
            cur.execute("ALTER SYSTEM RESET ssl_passphrase_command")
            cur.execute("SELECT pg_reload_conf()")
        admin.close()


def by_check(result: dict, check: str) -> list[dict]:
    return [f for f in result["findings"] if f["check"] == check]


def test_postgres_advisors_find_what_the_scratch_database_provokes(drill1: lab.Host, scratch: None) -> None:
    args = {
        "login_host": drill1.addr,
        "login_password": lab_credentials("drill1")["stackops_pg_password"],
        "login_db": SCRATCH,
        "checks": ["connections"],
        "advisors": ["unused_indexes", "missing_indexes", "slow_statements", "nondefault_settings"],
        "thresholds": {
            "unused_index_min_mb": 0.5,
            "missing_index_min_table_mb": 0,
            "missing_index_min_seq_scans": 20,
            "slow_statement_warning_ms": 200,
            "slow_statement_min_calls": 3,
        },
        "fail_on": "never",
    }
    # Its connection is read-only (default_transaction_read_only): one run, not the read-only contract, which the
    # write probe below goes through.
    run = run_module(PG, args, hosts="drill1")
    run.assert_ok()
    result = run.result("drill1")
    assert result["changed"] is False
    unused = result["unused_indexes"]
    # The index no query used; not the primary key, not the unique constraint's, not the one a query used.
    assert [c["index"] for c in unused["candidates"]] == ["events_note_idx"], unused
    assert unused["stats_reset"] is None and unused["stats_age_days"] is None
    (finding,) = by_check(result, "unused_indexes")
    assert finding["severity"] == "warning" and finding["action"].startswith(
        "DROP INDEX CONCURRENTLY public.events_note_idx"
    )
    missing = {f["message"].split()[1]: f for f in by_check(result, "missing_indexes")}
    assert list(missing) == ["public.scans"], result["missing_indexes"]
    assert "CREATE INDEX CONCURRENTLY" in missing["public.scans"]["action"]
    # Only the connected database's: drill1's restore drills leave slow statements of their own in the others.
    slow = result["slow_statements"]["statements"]
    assert {s["database"] for s in slow} == {SCRATCH}, slow
    assert [s["query"] for s in slow] == ["SELECT pg_sleep($1)"], slow
    assert slow[0]["calls"] == 3 and slow[0]["mean_ms"] >= 250
    (warned,) = [f for f in by_check(result, "slow_statements") if f"in {SCRATCH} " in f["message"]]
    assert warned["severity"] == "warning" and "EXPLAIN" in warned["action"]
    settings = {s["name"]: s for s in result["nondefault_settings"]["settings"]}
    assert settings["primary_conninfo"]["setting"] == "host=127.0.2.1 user=rep password=********"
    assert settings["ssl_passphrase_command"]["setting"] == "********"
    assert settings["shared_preload_libraries"]["setting"] == "pg_stat_statements"
    assert CONNINFO_SECRET not in run.stdout and PASSPHRASE_SECRET not in run.stdout

    # db_maintenance's report reads the advisors it is given after the maintenance: its result's advice.
    report = run_playbook(
        "stackops.runbooks.db_maintenance",
        limit="drill1",
        tags="report",
        extravars={
            "db_maintenance_hosts": "drill1",
            "db_maintenance_db": SCRATCH,
            "db_maintenance_advisors": ["unused_indexes"],
        },
    )
    report.assert_ok()
    advice = report.artifacts["db_maintenance"]["drill1"]["advice"]
    assert [a["check"] for a in advice] == ["unused_indexes"] and "events_note_idx" in advice[0]["message"], advice


@pytest.fixture
def drill_redis(drill1: lab.Host) -> Iterator[redis.Redis]:
    """drill1's Redis with the latency monitor on and a fresh SLOWLOG; its settings put back afterwards."""
    r = redis.Redis(host=drill1.addr, password=lab_credentials("drill1")["stackops_redis_password"])
    saved = r.config_get("latency-monitor-threshold") | r.config_get("maxmemory") | r.config_get("maxmemory-policy")
    try:
        r.config_set("latency-monitor-threshold", SLOW_MS)
        r.slowlog_reset()
        r.execute_command("LATENCY", "RESET")
        yield r
    finally:
        r.config_set("maxmemory-policy", saved["maxmemory-policy"])
        r.config_set("maxmemory", saved["maxmemory"])
        r.config_set("latency-monitor-threshold", saved["latency-monitor-threshold"])
        r.slowlog_reset()
        r.execute_command("LATENCY", "RESET")
        r.close()


def probe_keys(r: redis.Redis) -> list[bytes]:
    return list(r.scan_iter(match="stackops:health:probe:*", count=1000))


@pytest.mark.matrix
def test_redis_advisors_redact_the_slowlog_and_probe_writes_without_leaving_data(
    drill1: lab.Host, drill_redis: redis.Redis, tmp_path: Path
) -> None:
    drill_redis.eval(SLOW_SCRIPT, 0, ARG_SECRET)
    args = {
        "login_host": drill1.addr,
        "login_password": lab_credentials("drill1")["stackops_redis_password"],
        "checks": ["memory"],
        "advisors": ["slowlog", "latency", "memory_doctor", "latency_sample", "write_probe"],
        "latency_samples": 50,
        "thresholds": {"slowlog_warning_ms": SLOW_MS, "latency_event_warning_ms": SLOW_MS},
        "fail_on": "never",
    }
    runs = assert_module_read_only(REDIS, args, hosts="drill1")
    checked, result = runs[0].result("drill1"), runs[1].result("drill1")
    assert checked["write_probe"]["skipped"] is True and result["write_probe"]["skipped"] is False
    assert result["write_probe"]["writable"] is True and result["write_probe"]["read_back"] is True
    assert probe_keys(drill_redis) == []
    (entry,) = [e for e in result["slowlog"]["slowest"] if e["command"].startswith("EVAL")]
    assert entry["command"] == "EVAL (3 arguments redacted)" and entry["duration_ms"] >= SLOW_MS
    assert [f["check"] for f in by_check(result, "slowlog") if f["severity"] in ("warning", "critical")] == ["slowlog"]
    assert {e["event"] for e in result["latency"]["events"]} >= {"command"}
    assert result["latency"]["monitor_threshold_ms"] == SLOW_MS
    assert by_check(result, "latency") and all(f["action"] for f in by_check(result, "latency"))
    assert result["memory_doctor"]["report"].startswith(("Hi Sam", "Sam"))
    sample = result["latency_sample"]
    assert sample["count"] == 50 and sample["min_ms"] <= sample["avg_ms"] <= sample["p99_ms"] <= sample["max_ms"]
    for run in runs:
        assert ARG_SECRET not in run.stdout

    # The health_check role runs the advisors it is given; their findings with actions are the report's advice. Out
    # of memory with noeviction, the primary refuses the probe's SET, which is critical, and nothing is written.
    drill_redis.config_set("maxmemory-policy", "noeviction")
    drill_redis.config_set("maxmemory", 1)
    try:
        run = run_playbook(
            "stackops.runbooks.health_check",
            limit="drill1",
            extravars={
                "health_check_hosts": "drill1",
                "health_check_report_dir": str(tmp_path),
                "health_check_redis_advisors": ["slowlog", "write_probe"],
                "health_check_redis_thresholds": {"slowlog_warning_ms": SLOW_MS},
                "health_check_postgres_advisors": ["nondefault_settings"],
                "health_check_fail_on": "never",
            },
        )
    finally:
        drill_redis.config_set("maxmemory", 0)
    run.assert_ok()
    report = json.loads((tmp_path / "health-drill1.json").read_text())
    advice = {f["check"]: f for f in report["advice"]}
    assert set(advice) >= {"redis.slowlog", "redis.write_probe"}, report["advice"]
    assert advice["redis.slowlog"]["action"] and "maxmemory" in advice["redis.write_probe"]["action"]
    assert any("EVAL call(s) in SLOWLOG" in m for m in report["warning"] + report["critical"]), report
    assert any(m.startswith("the primary refuses writes: OOM") for m in report["critical"]), report["critical"]
    assert ARG_SECRET not in run.stdout and probe_keys(drill_redis) == []


def test_a_latency_sample_out_of_bounds_is_refused_with_the_bounds(drill1: lab.Host) -> None:
    args = {"login_host": drill1.addr, "login_password": lab_credentials("drill1")["stackops_redis_password"]}
    run = run_module(REDIS, {**args, "advisors": ["latency_sample"], "latency_samples": 5000}, hosts="drill1")
    assert "drill1" in run.failed_hosts() and "Traceback" not in run.stdout
    assert "latency_samples must be between 1 and 1000, not 5000" in run.stdout
