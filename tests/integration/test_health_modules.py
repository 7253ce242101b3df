"""pg_health and redis_health on the lab's real PostgreSQL 15 and Redis 7: each finding induced for real."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest
import redis

import lab
from harness.labctl import lab_up
from harness.paths import lab_credentials, lab_postgres_thresholds
from harness.playbook import assert_module_read_only, read_only, run_module, run_play

pytestmark = pytest.mark.lab_hosts("lab1")

PG = "stackops.runbooks.pg_health"
REDIS = "stackops.runbooks.redis_health"


def pg_args(host: lab.Host, **extra: object) -> dict:
    password = lab_credentials(host.name)["stackops_pg_password"]
    return {"login_host": host.addr, "login_password": password, "login_db": "app", **extra}


def redis_args(host: lab.Host, **extra: object) -> dict:
    return {"login_host": host.addr, "login_password": lab_credentials(host.name)["stackops_redis_password"], **extra}


def check(module: str, args: dict, host: str = "lab1") -> dict:
    """The module's result on a host, with `failed` as the run saw it (runner events leave the key out)."""
    run = run_module(module, args, hosts=host)
    return {**run.result(host), "failed": host in run.failed_hosts()}


def pg_conn(host: lab.Host) -> psycopg2.extensions.connection:
    return psycopg2.connect(
        host=host.addr, user="postgres", dbname="app", password=lab_credentials(host.name)["stackops_pg_password"]
    )


@pytest.fixture
def lab1(hosts: dict) -> lab.Host:
    return hosts["lab1"]


@pytest.fixture
def rds(lab1: lab.Host) -> Iterator[redis.Redis]:
    client = redis.Redis(host=lab1.addr, password=lab_credentials("lab1")["stackops_redis_password"])
    yield client
    client.close()


def run_until_cancelled(conn: psycopg2.extensions.connection, sql: str) -> None:
    with contextlib.suppress(psycopg2.Error):  # the test cancels it when done
        conn.cursor().execute(sql)


def messages(result: dict, check_name: str) -> list[str]:
    return [f["message"] for f in result["findings"] if f["check"] == check_name]


def test_healthy_postgres_is_ok_and_never_changes_anything(lab1: lab.Host) -> None:
    runs = assert_module_read_only(PG, pg_args(lab1, thresholds=lab_postgres_thresholds()))
    result = runs[1].result("lab1")
    assert (result["is_available"], result["status"], result["findings"]) == (True, "ok", [])
    assert result["server"]["version"].startswith("15.") and result["server"]["in_recovery"] is False
    assert result["connections"]["max_connections"] == 100
    assert {t["table"] for t in result["sizes"]["largest_tables"]} >= {"events", "order_items", "orders"}
    assert result["statements"]["available"] is True
    assert result["replication"] == {"role": "primary", "standbys": []}


def test_the_action_groups_connect_every_module_of_a_play_from_the_inventory(lab1: lab.Host) -> None:
    """module_defaults of group/stackops.runbooks.postgres and .redis, set once from the inventory's stackops_*
    variables, reach pg_health and redis_health, whose tasks name no connection option."""
    play = {
        "name": "action groups",
        "hosts": "lab1",
        "gather_facts": False,
        "module_defaults": {
            "group/stackops.runbooks.postgres": {
                "login_host": "{{ stackops_pg_host }}",
                "login_port": "{{ stackops_pg_port }}",
                "login_user": "{{ stackops_pg_user }}",
                "login_password": "{{ stackops_pg_password }}",
                "login_db": "{{ stackops_pg_db }}",
            },
            "group/stackops.runbooks.redis": {
                "login_host": "{{ stackops_redis_host }}",
                "login_password": "{{ stackops_redis_password }}",
            },
        },
        "tasks": [
            {"name": "PostgreSQL", "stackops.runbooks.pg_health": {"fail_on": "never"}},
            {"name": "Redis", "stackops.runbooks.redis_health": {"fail_on": "never"}},
        ],
    }
    runs = read_only(run_play, play)
    pg, cache = runs[1].result("lab1", "PostgreSQL"), runs[1].result("lab1", "Redis")
    assert pg["is_available"] is True, pg
    assert cache["is_available"] is True, cache
    assert pg["server"]["version"].startswith("15.")


def test_the_cache_hit_ratio_is_judged_only_past_its_sample_size(lab1: lab.Host) -> None:
    with pg_conn(lab1) as conn, conn.cursor() as cur:
        cur.execute("SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = 'app'")
        (lookups,) = cur.fetchone()
    # Every ratio is at or below 100%, so only the sample size decides whether it is judged.
    strict = {"cache_hit_warning_pct": 100, "cache_hit_critical_pct": 100}
    judged = check(PG, pg_args(lab1, checks=["cache"], thresholds={**strict, "cache_min_reads": 1}))
    assert judged["status"] == "critical" and judged["cache"]["hits"] + judged["cache"]["reads"] >= lookups, judged
    assert [m for m in messages(judged, "cache") if m.startswith("cache hit ratio is ")], judged["findings"]
    unjudged = check(PG, pg_args(lab1, checks=["cache"], thresholds={**strict, "cache_min_reads": lookups * 1000}))
    assert (unjudged["status"], unjudged["findings"]) == ("ok", []), unjudged


def test_idle_in_transaction_and_long_query_are_found_with_their_pids(lab1: lab.Host) -> None:
    idle, busy = pg_conn(lab1), pg_conn(lab1)
    try:
        idle.cursor().execute("SELECT 1")  # opens a transaction and leaves it open
        idle_pid = idle.get_backend_pid()
        busy_pid = busy.get_backend_pid()
        sleeper = threading.Thread(target=run_until_cancelled, args=(busy, "SELECT pg_sleep(15)"), daemon=True)
        sleeper.start()
        time.sleep(2.5)
        thresholds = {
            "idle_in_transaction_warning_s": 2,
            "idle_in_transaction_critical_s": 600,
            "long_query_warning_s": 2,
            "long_query_critical_s": 600,
        }
        result = check(PG, pg_args(lab1, checks=["activity"], thresholds=thresholds))
        assert result["status"] == "warning"
        found = messages(result, "activity")
        assert any(f"pid {idle_pid} " in m and "idle in transaction" in m for m in found), found
        assert any(f"pid {busy_pid} " in m and "running for" in m for m in found), found
        assert [q["pid"] for q in result["activity"]["long_queries"]] == [busy_pid]
    finally:
        with pg_conn(lab1) as admin, admin.cursor() as cur:
            cur.execute("SELECT pg_cancel_backend(%s)", (busy_pid,))
        idle.close()


def test_password_literals_in_statement_texts_are_redacted(lab1: lab.Host) -> None:
    role, secret = "stackops_test_redaction", secrets.token_urlsafe(18)
    admin, holder = pg_conn(lab1), pg_conn(lab1)
    admin.autocommit = True
    pid = holder.get_backend_pid()
    try:
        # By the time this runs lab1 holds thousands of statements (pg_stat_statements.max is 5000): one run once
        # is the first to be evicted, and a fast one falls out of the top 1000 by mean time. Cleared, it is there.
        admin.cursor().execute("SELECT pg_stat_statements_reset()")
        # psycopg2 puts the literal into the text, as any client does: the server keeps it verbatim in
        # pg_stat_statements (a utility statement) and as the last query of a session left idle in transaction.
        admin.cursor().execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (secret,))
        holder.cursor().execute(f"ALTER ROLE {role} PASSWORD %s", (secret,))
        time.sleep(1.5)
        thresholds = {"idle_in_transaction_warning_s": 1, "idle_in_transaction_critical_s": 600}
        run = run_module(PG, pg_args(lab1, checks=["activity", "statements"], top=1000, thresholds=thresholds))
        result = run.result("lab1")
    finally:
        holder.close()
        admin.cursor().execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()
    assert secret not in run.stdout and secret not in json.dumps(run.events)
    (idle,) = [s for s in result["activity"]["idle_in_transaction"] if s["pid"] == pid]
    assert idle["last_query"] == f"ALTER ROLE {role} PASSWORD '********'"
    statements = [s["query"] for s in result["statements"]["top_by_mean_time"]]
    assert f"CREATE ROLE {role} LOGIN PASSWORD '********'" in statements, statements


def test_lock_wait_names_the_blocking_session(lab1: lab.Host) -> None:
    holder, waiter = pg_conn(lab1), pg_conn(lab1)
    try:
        holder.cursor().execute("UPDATE app.products SET price = price WHERE id = 1")
        blocked = threading.Thread(
            target=lambda: waiter.cursor().execute("UPDATE app.products SET price = price WHERE id = 1"), daemon=True
        )
        blocked.start()
        time.sleep(2.5)
        result = check(PG, pg_args(lab1, checks=["locks"], thresholds={"lock_wait_warning_s": 2}))
        assert result["locks"]["blocked_count"] == 1
        assert result["locks"]["blocked"][0]["blocked_by"] == [holder.get_backend_pid()]
        assert any(f"held by pid(s) {holder.get_backend_pid()}" in m for m in messages(result, "locks"))
    finally:
        holder.rollback()
        holder.close()
        time.sleep(0.2)
        waiter.close()


def test_connection_flood_near_max_connections(lab1: lab.Host) -> None:
    flood = []
    try:
        for _attempt in range(82):
            flood.append(pg_conn(lab1))
        result = check(PG, pg_args(lab1, checks=["connections"], fail_on="warning"))
        assert result["failed"] is True
        assert result["connections"]["used_pct"] >= 80
        assert "connections in use" in result["msg"]
    finally:
        for conn in flood:
            conn.close()


def test_pending_restart_setting_is_reported(lab1: lab.Host) -> None:
    admin = pg_conn(lab1)
    admin.autocommit = True
    try:
        admin.cursor().execute("ALTER SYSTEM SET max_connections = 150")
        admin.cursor().execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        result = check(PG, pg_args(lab1, checks=["settings"]))
        assert [p["name"] for p in result["settings"]["pending_restart"]] == ["max_connections"]
        assert "needs a server restart" in messages(result, "settings")[0]
    finally:
        admin.cursor().execute("ALTER SYSTEM RESET max_connections")
        admin.cursor().execute("SELECT pg_reload_conf()")
        admin.close()


@pytest.mark.parametrize(
    ("override", "reason"),
    [({"login_password": "wrong"}, "password authentication failed"), ({"login_port": 5499}, "Connection refused")],
)
def test_unavailable_postgres_is_data_or_a_failure(lab1: lab.Host, override: dict, reason: str) -> None:
    result = check(PG, pg_args(lab1, fail_on="never", **override))
    assert (result["is_available"], result["status"], result.get("failed", False)) == (False, "critical", False)
    assert reason in result["conn_err_msg"]
    failed = check(PG, pg_args(lab1, **override))
    assert failed["failed"] is True and "is not available" in failed["msg"]
    assert "wrong" not in str(failed.get("invocation", ""))  # no_log on the password


def test_unknown_threshold_is_refused_with_the_valid_names(lab1: lab.Host) -> None:
    result = check(PG, pg_args(lab1, thresholds={"conections_warning_pct": 50}))
    assert result["failed"] is True
    assert "Unknown threshold 'conections_warning_pct'" in result["msg"] and "connections_warning_pct" in result["msg"]


def test_healthy_redis_is_ok(lab1: lab.Host) -> None:
    runs = assert_module_read_only(REDIS, redis_args(lab1))
    result = runs[1].result("lab1")
    assert (result["is_available"], result["status"]) == (True, "ok")
    assert result["server"]["version"].startswith("7.")
    assert result["keyspace"]["total_keys"] >= 7000
    assert result["memory"]["policy"] == "allkeys-lru"


def test_redis_memory_pressure_is_critical(lab1: lab.Host, rds: redis.Redis) -> None:
    original = rds.config_get("maxmemory")["maxmemory"]
    used = int(rds.info("memory")["used_memory"])
    try:
        rds.config_set("maxmemory", int(used / 0.93))
        result = check(REDIS, redis_args(lab1, checks=["memory"], fail_on="never"))
        assert result["status"] == "critical"
        assert "at or above the critical threshold 90%" in messages(result, "memory")[0]
    finally:
        rds.config_set("maxmemory", original)


def test_redis_big_keys_are_sampled_with_scan(lab1: lab.Host, rds: redis.Redis) -> None:
    rds.set("stackops:test:big", b"x" * (12 * 1024 * 1024))
    try:
        result = check(REDIS, redis_args(lab1, checks=["bigkeys"], big_keys_sample=100000, fail_on="never"))
        assert result["bigkeys"]["largest"][0]["key"] == "stackops:test:big"
        assert result["status"] == "warning"
    finally:
        rds.delete("stackops:test:big")


def test_stopped_redis_and_wrong_password(lab1: lab.Host) -> None:
    wrong = check(REDIS, redis_args(lab1, login_password="wrong", fail_on="never"))
    assert wrong["is_available"] is False and "WRONGPASS" in wrong["conn_err_msg"]
    lab.compose(lab1, "stop", "redis")
    try:
        result = check(REDIS, redis_args(lab1))
        assert result["failed"] is True and result["is_available"] is False
        assert "Redis at 127.0.2.1:6379 is not available" in result["msg"]
    finally:
        lab_up()
