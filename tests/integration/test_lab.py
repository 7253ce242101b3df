"""The lab is made of real parts: seeded PostgreSQL and Redis, an app whose readiness really checks both,
sshd per address, and a `lab up` that changes nothing on a healthy lab and repairs what a run left behind."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest
import redis

import lab
from harness.labctl import lab_up
from harness.paths import lab_credentials
from harness.playbook import run_module

pytestmark = pytest.mark.lab_hosts("all")

PRODUCTION = ("lab1", "lab2", "lab3")


def ready(addr: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{addr}/health/ready", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def pg(host: lab.Host, dbname: str | None = None) -> psycopg2.extensions.connection:
    """As the host's superuser, to its application database unless told (lab3: dba, sovd_db)."""
    password = lab_credentials(host.name)["stackops_pg_password"]
    return psycopg2.connect(
        host=host.addr, port=5432, user=host.shape.superuser, password=password, dbname=dbname or host.shape.db
    )


def query(host: lab.Host, sql: str, dbname: str | None = None) -> list[tuple]:
    conn = pg(host, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_production_databases_hold_the_realistic_schema(hosts: dict) -> None:
    for name in PRODUCTION:
        host = hosts[name]
        schemas = {row[0] for row in query(host, "SELECT nspname FROM pg_namespace")}
        assert {"app", "billing", "audit"} <= schemas
        # pg_class.reltuples (set by the seed's ANALYZE) survives restarts, unlike the n_live_tup statistics, and
        # reading it leaves the cache hit ratio that health checks judge alone, unlike count(*).
        rows = query(
            host,
            "SELECT sum(c.reltuples)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname IN ('app', 'billing', 'audit')",
        )[0][0]
        assert rows >= 100_000
        (foreign_keys,) = query(host, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")[0]
        assert foreign_keys >= 6
        assert query(host, "SELECT count(*) FROM app.customer_order_totals")[0][0] == 20_000
        assert query(host, "SELECT count(*) FROM pg_sequences WHERE schemaname = 'billing'")[0][0] >= 2
    # Seeded deterministically: the production hosts start identical.
    counts = "SELECT count(*), sum(id) FROM app.orders"
    assert query(hosts["lab1"], counts) == query(hosts["lab2"], counts) == query(hosts["lab3"], counts)


def test_drill_host_starts_with_an_empty_app_database(hosts: dict) -> None:
    assert query(hosts["drill1"], "SELECT to_regclass('app.customers')") == [(None,)]


def test_redis_holds_session_and_cache_keys(hosts: dict) -> None:
    for name in PRODUCTION:
        host = hosts[name]
        client = redis.Redis(host=host.addr, password=lab_credentials(name)["stackops_redis_password"])
        assert sum(1 for _key in client.scan_iter("session:*", count=1000)) == 5000
        assert sum(1 for _key in client.scan_iter("cache:customer:*", count=1000)) >= 2000
        assert client.ttl(next(client.scan_iter("session:*"))) > 0


def test_services_refuse_wrong_credentials(hosts: dict) -> None:
    host = hosts["lab1"]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host=host.addr, user="postgres", password="wrong", dbname="app").close()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host.addr, password="wrong").ping()


def test_credentials_are_not_world_readable(hosts: dict) -> None:
    for name, host in hosts.items():
        for path in (host.dir / ".env", lab.INVENTORY / "host_vars" / name / lab.CREDENTIALS_FILE):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def test_app_readiness_really_checks_database_and_redis(hosts: dict) -> None:
    host = hosts["lab2"]
    assert ready(host.addr) == (200, {"status": "ready", "database": "ok", "redis": "ok"})
    try:
        lab.compose(host, "stop", "redis")
        code, body = ready(host.addr)
        assert (code, body["database"]) == (503, "ok")
        assert body["redis"].startswith("error:")
        lab.compose(host, "stop", "postgres")
        code, body = ready(host.addr)
        assert code == 503
        assert body["database"].startswith("error:")
    finally:
        # The real repair path: `lab up` starts what is stopped, and says so.
        output = lab_up()
    assert "lab2: started postgres, redis" in output
    assert ready(host.addr)[0] == 200


def test_lab_up_repairs_stopped_containers(hosts: dict) -> None:
    host = hosts["lab2"]
    lab.compose(host, "stop", "redis", "app")
    output = lab_up()
    assert "lab2: started app, redis" in output
    assert ready(host.addr)[0] == 200


def test_lab_up_replaces_a_dead_sshd_and_its_stale_pid_file(hosts: dict) -> None:
    pidfile = lab.ROOT / "ssh" / "sshd.pid"
    os.kill(int(pidfile.read_text()), signal.SIGTERM)
    time.sleep(0.5)
    pidfile.write_text("999999\n")  # a pid that no process has
    output = lab_up()
    assert "started sshd" in output
    assert lab.pid_alive(pidfile, "sshd")


def test_a_killed_dockerd_is_a_clear_failure_and_lab_up_restarts_it(hosts: dict) -> None:
    pidfile = Path("/var/run/docker.pid")
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    try:
        time.sleep(1)
        assert pidfile.exists()  # SIGKILL leaves the pid file of a dead daemon behind
        run = run_module("stackops.runbooks.compose_service", {"project_src": str(hosts["lab1"].dir)})
        assert run.failed_hosts() == {"lab1"}, run.stdout[-3000:]
        result = run.result("lab1")
        assert "module_stderr" not in result and "Traceback" not in result["msg"], result
        assert "The Docker daemon does not answer" in result["msg"] and "start it" in result["msg"]
        output = lab_up()
        assert "started dockerd" in output
    finally:
        if not lab.docker_answers():  # whatever failed above: the daemon every host shares is started again
            lab_up()
    for host in hosts.values():
        assert ready(host.addr)[0] == 200


def test_second_lab_up_changes_nothing() -> None:
    lab_up()
    assert "lab is up; nothing changed" in lab_up()
