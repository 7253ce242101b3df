"""The health and maintenance modules on both server generations the collection supports: lab1 (Debian 12:
PostgreSQL 15, Redis 7.0, nginx 1.22, the classic stack) and lab3 (Debian 13: PostgreSQL 17, Redis 8.0, nginx 1.26,
runbook 001's stack with the superuser dba and the database sovd_db). Each module runs under its contract on each
host, and what differs between the versions (the view the checkpoint counters are in, pg_stat_statements' columns,
the RDB format, nginx's http2 deprecation) is checked against the servers themselves, read with psycopg2, redis-py
and docker, never through the collection."""

from __future__ import annotations

import contextlib
import hashlib
import time
import typing as t
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis
from psycopg2 import sql

import lab
from harness.paths import lab_credentials, lab_postgres_thresholds
from harness.playbook import PlaybookRun, assert_module_four_step, assert_module_read_only, run_module

pytestmark = pytest.mark.lab_hosts("lab1", "lab3")

TAG = uuid.uuid4().hex[:8]
NGINX_CONF = "/etc/nginx/stackops/nginx.conf"


class Versions(t.NamedTuple):
    postgres: int  # major
    checkpoints: str  # the view the checkpointer's counters are in
    statements: str  # pg_stat_statements' version in the app's database
    redis: str  # major.minor
    rdb: bytes  # the RDB file's header
    nginx: str  # major.minor


EXPECTED = {
    "lab1": Versions(15, "pg_stat_bgwriter", "1.10", "7.0", b"REDIS0010", "1.22"),
    "lab3": Versions(17, "pg_stat_checkpointer", "1.11", "8.0", b"REDIS0012", "1.26"),
}


@pytest.fixture(params=sorted(EXPECTED))
def host(request: pytest.FixtureRequest, hosts: dict) -> lab.Host:
    return hosts[request.param]


def result_of(run: PlaybookRun, host: lab.Host) -> dict:
    """The module's result on host, with `failed` as the run saw it."""
    return {**run.result(host.name), "failed": host.name in run.failed_hosts()}


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def pg_login(host: lab.Host, **extra: object) -> dict:
    """The module options of the host's superuser (postgres on lab1, dba on lab3) in the app's database."""
    return {
        "login_host": host.addr,
        "login_user": host.shape.superuser,
        "login_password": lab_credentials(host.name)["stackops_pg_password"],
        "login_db": host.shape.db,
        **extra,
    }


@contextlib.contextmanager
def pg(host: lab.Host, db: str | None = None, application: str = "test_versions") -> Iterator[t.Any]:
    conn = psycopg2.connect(
        host=host.addr,
        user=host.shape.superuser,
        dbname=db or host.shape.db,
        password=lab_credentials(host.name)["stackops_pg_password"],
        application_name=application,
    )
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def one(host: lab.Host, statement: str | sql.Composable, args: tuple = (), db: str | None = None) -> t.Any:
    """The first row of one statement (its only value when it has one column), None without a result."""
    with pg(host, db) as conn, conn.cursor() as cur:
        cur.execute(statement, args or None)
        row = cur.fetchone() if cur.description else None
        return None if row is None else row[0] if len(row) == 1 else row


def checkpoint_view(host: lab.Host) -> tuple[str, str]:
    """The view and column of the requested checkpoints count on the host's version."""
    if EXPECTED[host.name].postgres >= 17:
        return "pg_stat_checkpointer", "num_requested"
    return "pg_stat_bgwriter", "checkpoints_req"


def requested_checkpoints(host: lab.Host) -> int:
    view, column = checkpoint_view(host)
    return int(one(host, sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), sql.Identifier(view))))


def top_statement(host: lab.Host) -> tuple[str, float]:
    """The slowest statement by mean time and its block read time, from the columns of the host's version."""
    read = "shared_blk_read_time" if EXPECTED[host.name].postgres >= 17 else "blk_read_time"
    query = sql.SQL(
        "SELECT queryid::text, round({}::numeric, 2)::float FROM pg_stat_statements ORDER BY mean_exec_time DESC "
        "LIMIT 1"
    ).format(sql.Identifier(read))
    return one(host, query)


@pytest.mark.matrix
def test_pg_health_reads_each_versions_views(host: lab.Host) -> None:
    expected = EXPECTED[host.name]
    one(host, "CHECKPOINT")
    before = requested_checkpoints(host)
    runs = assert_module_read_only(
        "stackops.runbooks.pg_health", pg_login(host, thresholds=lab_postgres_thresholds()), hosts=host.name
    )
    after = requested_checkpoints(host)
    result = runs[1].result(host.name)
    assert (result["status"], result["findings"]) == ("ok", []), result["findings"]
    assert result["server"]["version_num"] // 10000 == expected.postgres
    assert result["server"]["version_num"] == int(one(host, "SHOW server_version_num"))
    checkpoints = result["checkpoints"]
    assert checkpoints["source"] == expected.checkpoints
    assert 1 <= before <= checkpoints["requested"] <= after and checkpoints["buffers_written"] >= 0
    statements = result["statements"]
    assert statements["available"] is True and statements["extension_version"] == expected.statements
    top = statements["top_by_mean_time"][0]
    assert (top["queryid"], top["read_ms"]) == top_statement(host)
    assert top["calls"] >= 1 and top["mean_ms"] > 0 and "write_ms" in top


@pytest.fixture
def scratch(host: lab.Host) -> Iterator[str]:
    """A database name for the test, dropped afterwards, and log_min_duration_statement put back."""
    name = f"ver_{TAG}_{host.name}"
    yield name
    with pg(host, "postgres") as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cur.execute("ALTER SYSTEM RESET log_min_duration_statement")
        cur.execute("SELECT pg_reload_conf()")


def test_pg_maintenance_creates_a_database_and_writes_a_setting_four_step(host: lab.Host, scratch: str) -> None:
    owner = host.shape.owner
    args = pg_login(
        host,
        ensure_database={"name": scratch, "owner": owner},
        settings={"log_min_duration_statement": "250ms"},
    )
    runs = assert_module_four_step("stackops.runbooks.pg_maintenance", args, hosts=host.name)
    first = runs[1].result(host.name)
    assert first["server"]["version_num"] // 10000 == EXPECTED[host.name].postgres
    assert first["database"]["created"] is True and first["database"]["owner"] == owner
    assert one(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (scratch,)) == owner
    auto = "SELECT setting FROM pg_file_settings WHERE name = %s AND sourcefile LIKE '%%.auto.conf'"
    assert one(host, auto, ("log_min_duration_statement",)) == "250ms"
    assert one(host, "SHOW log_min_duration_statement") == "250ms"


def test_pg_maintenance_ends_only_the_idle_session_it_is_pointed_at(host: lab.Host) -> None:
    application = f"ver-idle-{TAG}"
    with pg(host, application=application) as idle, pg(host) as bystander:
        pid = idle.get_backend_pid()
        time.sleep(1.5)
        args = pg_login(host, terminate_idle=True, idle_for=1, session_filter={"applications": [application]})
        result = result_of(run_module("stackops.runbooks.pg_maintenance", args, hosts=host.name), host)
        assert not result["failed"], result.get("msg")
        assert [s["pid"] for s in result["terminated"]] == [pid] and result["not_terminated"] == []
        alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        assert one(host, alive, (pid,)) == 0
        assert one(host, alive, (bystander.get_backend_pid(),)) == 1


# --- Redis ----------------------------------------------------------------------------------------------------


def redis_login(host: lab.Host, **extra: object) -> dict:
    return {"login_host": host.addr, "login_password": lab_credentials(host.name)["stackops_redis_password"], **extra}


@pytest.fixture
def rds(host: lab.Host) -> Iterator[redis.Redis]:
    client = redis.Redis(host=host.addr, password=lab_credentials(host.name)["stackops_redis_password"])
    yield client
    client.close()


@pytest.mark.matrix
def test_redis_health_reads_each_version(host: lab.Host, rds: redis.Redis) -> None:
    runs = assert_module_read_only("stackops.runbooks.redis_health", redis_login(host), hosts=host.name)
    result = runs[1].result(host.name)
    assert (result["status"], result["findings"]) == ("ok", []), result["findings"]
    info = rds.info("server")
    assert result["server"]["version"] == info["redis_version"]
    assert result["server"]["version"].startswith(f"{EXPECTED[host.name].redis}.")
    assert result["server"]["role"] == "primary" and result["replication"]["role"] == "primary"
    assert result["memory"]["maxmemory_bytes"] == int(rds.config_get("maxmemory")["maxmemory"])
    assert result["persistence"]["rdb_last_bgsave_status"] == "ok"
    assert set(result["keyspace"]["databases"]) == {k for k in rds.info("keyspace") if k.startswith("db")}


@pytest.fixture
def redis_settings(rds: redis.Redis) -> Iterator[redis.Redis]:
    saved = {name: rds.config_get(name)[name] for name in ("maxmemory", "maxmemory-policy")}
    yield rds
    for name, value in saved.items():
        rds.config_set(name, value)


def test_redis_maintenance_settings_four_step(host: lab.Host, redis_settings: redis.Redis) -> None:
    redis_settings.config_set("maxmemory", 0)
    redis_settings.config_set("maxmemory-policy", "noeviction")
    args = redis_login(host, config={"maxmemory": "96mb", "maxmemory-policy": "allkeys-lru"})
    runs = assert_module_four_step("stackops.runbooks.redis_maintenance", args, hosts=host.name)
    first = runs[1].result(host.name)
    assert first["server"]["version"].startswith(f"{EXPECTED[host.name].redis}.")
    assert set(first["config_changes"]) == {"maxmemory", "maxmemory-policy"}
    assert redis_settings.config_get("maxmemory") == {"maxmemory": str(96 * 1024 * 1024)}
    assert redis_settings.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}


def test_redis_maintenance_snapshot_of_each_rdb_format(host: lab.Host, rds: redis.Redis, tmp_path: Path) -> None:
    args = redis_login(
        host,
        snapshot=True,
        snapshot_dest=str(tmp_path),
        compose_project_src=str(host.dir),
        compose_service=host.shape.redis,
    )
    before = int(rds.lastsave().timestamp())
    result = result_of(run_module("stackops.runbooks.redis_maintenance", args, hosts=host.name), host)
    assert not result["failed"], result.get("msg")
    snap = result["snapshot"]
    copy = Path(snap["path"])
    assert result["changed"] and snap["rdb_last_save_time"] >= before
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == snap["sha256"]
    assert copy.read_bytes()[:9] == EXPECTED[host.name].rdb
    assert copy.read_bytes() == (host.dir / "data" / "redis" / "dump.rdb").read_bytes()


# --- nginx ----------------------------------------------------------------------------------------------------


def nginx_args(host: lab.Host, **extra: object) -> dict:
    return {
        "compose_project_src": str(host.dir),
        "compose_project_name": host.project,
        "compose_service": host.shape.nginx,
        **extra,
    }


def nginx_version(host: lab.Host) -> str:
    out = lab.compose(host, "exec", "-T", host.shape.nginx, "nginx", "-v").stderr
    return out.strip().rsplit("/", 1)[1]


def test_nginx_config_passes_on_the_http2_deprecation_of_its_version(host: lab.Host) -> None:
    version = nginx_version(host)
    assert version.startswith(f"{EXPECTED[host.name].nginx}.")
    site = host.dir / "nginx" / host.shape.site_file
    live = site.read_bytes()
    listen = f"listen {host.addr}:443 ssl default_server;"
    assert listen in live.decode()
    content = live.decode().replace(listen, f"listen {host.addr}:443 ssl http2 default_server;")
    run = run_module(
        "stackops.runbooks.nginx_config", nginx_args(host, dest=str(site), content=content), hosts=host.name, check=True
    )
    result = result_of(run, host)
    assert not result["failed"] and result["validated"] is True and result["applied"] is False, result.get("msg")
    deprecated = [w for w in result.get("warnings", []) if '"listen ... http2" directive is deprecated' in w]
    # nginx 1.25.1 made http2 a directive of its own; nginx -t says so but passes.
    assert bool(deprecated) == (tuple(map(int, version.split(".")[:2])) >= (1, 25)), result.get("warnings")
    assert site.read_bytes() == live


@pytest.fixture
def maintenance_dir(host: lab.Host) -> Iterator[Path]:
    """The host without maintenance snippets before and after the test (and nginx reloaded without them)."""
    folder = host.dir / "nginx" / "maintenance"

    def clear() -> None:
        if folder.exists():
            for path in sorted(folder.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            folder.rmdir()
            lab.compose(host, "exec", "-T", host.shape.nginx, "nginx", "-c", NGINX_CONF, "-s", "reload")

    clear()
    yield folder
    clear()


def answer(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http URL of the lab)
            return int(response.status), {k.lower(): v for k, v in response.getheaders()}
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}


def test_nginx_config_maintenance_on_four_step_then_off(host: lab.Host, maintenance_dir: Path) -> None:
    on = nginx_args(host, maintenance="on", retry_after=120, maintenance_exempt_paths=["/health"])
    runs = assert_module_four_step("stackops.runbooks.nginx_config", on, hosts=host.name)
    assert runs[1].result(host.name)["maintenance"] == "on" and (maintenance_dir / "on").exists()
    status, headers = answer(f"http://{host.addr}/api/customers/1")
    assert (status, headers.get("retry-after"), headers.get("cache-control")) == (503, "120", "no-store")
    assert answer(f"http://{host.addr}/")[0] == 503
    assert answer(f"http://{host.addr}/health/ready")[0] == 200
    off = result_of(run_module("stackops.runbooks.nginx_config", {**on, "maintenance": "off"}, hosts=host.name), host)
    assert off["changed"] is True and off["maintenance"] == "off" and not (maintenance_dir / "on").exists()
    assert answer(f"http://{host.addr}/api/customers/1")[0] == 200


# --- stack_health ---------------------------------------------------------------------------------------------


def test_stack_health_reads_both_generations(host: lab.Host) -> None:
    args = {
        "project_src": str(host.dir),
        "project_name": host.project,
        "nginx_service": host.shape.nginx,
        "nginx_test": ["nginx", "-t", "-c", NGINX_CONF],
        "postgres": pg_login(host, thresholds=lab_postgres_thresholds(), checks=["connections", "checkpoints"]),
        "redis": redis_login(host),
    }
    runs = assert_module_read_only("stackops.runbooks.stack_health", args, hosts=host.name)
    result = runs[1].result(host.name)
    expected = EXPECTED[host.name]
    assert (result["status"], result["findings"]) == ("ok", []), result["findings"]
    assert set(result["services"]) == {name for name, _port in host.shape.services}
    assert result["nginx"]["ok"] is True and "test is successful" in result["nginx"]["output"]
    assert result["postgres"]["server"]["version_num"] // 10000 == expected.postgres
    assert result["postgres"]["checkpoints"]["source"] == expected.checkpoints
    assert result["redis"]["server"]["version"].startswith(f"{expected.redis}.")
