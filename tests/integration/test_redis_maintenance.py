"""redis_maintenance and its runbook on drill1's real Redis 7.0: settings compared after normalising units,
CONFIG REWRITE that keeps the file private, pattern deletes of binary keys, flushes only when confirmed, and
snapshots proven by INFO persistence and copied with their sha256, also while another save runs or when the save
fails. Each test uses its own database index; db 0 belongs to drill1's app."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

import lab
from harness.paths import lab_credentials
from harness.playbook import PlaybookRun, assert_four_step, assert_module_four_step, run_module, run_playbook

pytestmark = pytest.mark.lab_hosts("drill1")

MODULE = "stackops.runbooks.redis_maintenance"
PLAYBOOK = "stackops.runbooks.redis_maintenance"
HOST = "drill1"
DB_KEYS, DB_PLAYBOOK, DB_SLOW, DB_FLUSH, DB_OTHER = 6, 7, 9, 11, 12
BINARY_KEYS = [b"session:\xff\x00", b"session:with space 'quote\"\n", b"session:\xe2\x82\xac;rm -rf /", b"session:"]


def password() -> str:
    return lab_credentials(HOST)["stackops_redis_password"]


def login(host: lab.Host, **extra: object) -> dict:
    return {"login_host": host.addr, "login_password": password(), **extra}


def client(host: lab.Host, db: int = 0) -> redis.Redis:
    return redis.Redis(host=host.addr, password=password(), db=db)


def outcome(run: PlaybookRun) -> dict:
    """The module's result with `failed` as the run saw it."""
    return {**run.result(HOST), "failed": HOST in run.failed_hosts()}


def call(host: lab.Host, check: bool = False, **args: object) -> dict:
    return outcome(run_module(MODULE, login(host, **args), hosts=host.name, check=check))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_saves(r: redis.Redis) -> None:
    deadline = time.monotonic() + 30
    while r.info("persistence")["rdb_bgsave_in_progress"] and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def drill1(hosts: dict) -> lab.Host:
    return hosts[HOST]


@pytest.fixture
def settings(drill1: lab.Host) -> Iterator[redis.Redis]:
    """drill1's Redis, its memory limit and policy put back afterwards, and its config file as it was."""
    r = client(drill1)
    saved = {name: r.config_get(name)[name] for name in ("maxmemory", "maxmemory-policy")}
    conf = drill1.dir / "data" / "redis" / "redis.conf"
    original, mode = conf.read_bytes(), stat.S_IMODE(conf.stat().st_mode)
    yield r
    for name, value in saved.items():
        r.config_set(name, value)
    conf.write_bytes(original)
    conf.chmod(mode)
    r.close()


@pytest.fixture
def snapshot_args(drill1: lab.Host, tmp_path: Path) -> dict:
    return login(drill1, snapshot=True, snapshot_dest=str(tmp_path / "snapshots"), compose_project_src=str(drill1.dir))


def test_settings_rewrite_and_pattern_delete_four_step(drill1: lab.Host, settings: redis.Redis) -> None:
    settings.config_set("maxmemory", 67108864)  # what "64mb" means: no change
    settings.config_set("maxmemory-policy", "allkeys-lru")
    conf = drill1.dir / "data" / "redis" / "redis.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    r = client(drill1, DB_KEYS)
    r.flushdb()
    sessions = [f"session:{i}".encode() for i in range(2500)] + BINARY_KEYS
    models = [f"model:{i}:v1".encode() for i in range(500)]
    kept = {b"user:1", b"sessions", b"xsession:1", b"model"}
    with r.pipeline(transaction=False) as pipe:
        for key in [*sessions, *models, *kept]:
            pipe.set(key, b"x")
        pipe.execute()
    args = login(
        drill1,
        config={"maxmemory": "64mb", "maxmemory-policy": "ALLKEYS-LFU", "lazyfree-lazy-user-del": False},
        rewrite_config=True,
        compose_project_src=str(drill1.dir),
        db=DB_KEYS,
        delete_pattern=["session:*", "model:*", "session:\\xff*"],
        batch_size=300,
    )
    try:
        runs = assert_module_four_step(MODULE, args, hosts=HOST, diff=True)
    finally:
        r.flushdb()
    predicted, done = runs[0].result(HOST), runs[1].result(HOST)
    change = {"maxmemory-policy": {"before": "allkeys-lru", "after": "allkeys-lfu"}}
    assert predicted["config_changes"] == done["config_changes"] == change
    by_pattern = {"session:*": len(sessions), "model:*": len(models), "session:\\xff*": 0}
    assert predicted["deleted_by_pattern"] == done["deleted_by_pattern"] == by_pattern
    assert predicted["deleted"] == done["deleted"] == len(sessions) + len(models)
    assert done["commands"] == [
        "CONFIG SET maxmemory-policy ALLKEYS-LFU",
        "CONFIG REWRITE",
        "SCAN MATCH session:* COUNT 300 + UNLINK",
        "SCAN MATCH model:* COUNT 300 + UNLINK",
    ]
    assert done["diff"]["before"]["config"] == {"maxmemory-policy": "allkeys-lru"}
    assert done["diff"]["after"]["config"] == {"maxmemory-policy": "allkeys-lfu"}
    assert [run.result(HOST)["rewritten"] for run in runs] == [True, True, False, False]
    assert [run.result(HOST)["deleted"] for run in runs[2:]] == [0, 0]
    now = settings.config_get("maxmemory*")
    assert (now["maxmemory"], now["maxmemory-policy"]) == ("67108864", "allkeys-lfu")
    text = conf.read_text()
    assert re.search(r"^maxmemory 64mb$", text, re.M) and re.search(r"^maxmemory-policy allkeys-lfu$", text, re.M)
    # Redis 7.0 rewrites the file 0644, and it holds the password: the module puts the mode back.
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


def test_an_unknown_setting_is_refused_and_nothing_is_set(drill1: lab.Host, settings: redis.Redis) -> None:
    before = settings.config_get("maxmemory*")
    refused = call(drill1, config={"maxmemory": "32mb", "no-such-setting": "1"})
    version = settings.info("server")["redis_version"]
    assert refused["failed"] and f"Redis {version} has no setting no-such-setting" in refused["msg"], refused
    assert "Nothing was set" in refused["msg"] and settings.config_get("maxmemory*") == before


def test_flush_needs_confirm_and_empties_only_its_database(drill1: lab.Host) -> None:
    r, other = client(drill1, DB_FLUSH), client(drill1, DB_OTHER)
    r.flushdb()
    other.flushdb()
    r.mset({f"k{i}": i for i in range(100)})
    other.set("stays", 1)
    try:
        refused = call(drill1, db=DB_FLUSH, flush="db")
        assert refused["failed"] and "flush=db deletes all keys of database 11; set confirm: true" in refused["msg"]
        assert r.dbsize() == 100
        runs = assert_module_four_step(MODULE, login(drill1, db=DB_FLUSH, flush="db", confirm=True), hosts=HOST)
        assert [run.result(HOST)["flushed"] for run in runs] == [100, 100, 0, 0]
        assert r.dbsize() == 0 and other.get("stays") == b"1"
    finally:
        other.flushdb()


def test_snapshot_counts_only_when_saved_and_is_copied_out_and_checked(drill1: lab.Host, snapshot_args: dict) -> None:
    dest = Path(snapshot_args["snapshot_dest"])
    planned = outcome(run_module(MODULE, snapshot_args, hosts=HOST, check=True))
    assert planned["changed"] and planned["snapshot"] == {"source": "/data/dump.rdb", "dest": str(dest)}
    assert not dest.exists()
    data = drill1.dir / "data" / "redis"
    mode = stat.S_IMODE(data.stat().st_mode)
    main = client(drill1)
    try:
        data.chmod(0o555)  # Redis runs as user redis in its container: it cannot write its RDB file now
        failed = outcome(run_module(MODULE, snapshot_args, hosts=HOST))
        assert failed["failed"] and "rdb_last_bgsave_status:err" in failed["msg"], failed
        assert not list(dest.glob("*.rdb"))
        with pytest.raises(redis.ResponseError, match="MISCONF"):
            main.set("refused", 1)  # stop-writes-on-bgsave-error: the server refuses writes until a save works
        data.chmod(mode)
        before = int(main.lastsave().timestamp())
        run = run_module(MODULE, snapshot_args, hosts=HOST, verbosity=3)
    finally:
        data.chmod(mode)
        if main.info("persistence")["rdb_last_bgsave_status"] != "ok":
            main.bgsave()
            wait_for_saves(main)
    done = outcome(run)
    snap = done["snapshot"]
    copy, server_file = Path(snap["path"]), data / "dump.rdb"
    assert done["changed"] and snap["rdb_last_save_time"] >= before and main.set("writable", 1)
    main.delete("writable")
    assert sha256(copy) == snap["sha256"] == sha256(server_file) and copy.read_bytes()[:5] == b"REDIS"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in dest.iterdir()} == {
        copy.name: 0o600,
        f"{copy.name}.sha256": 0o600,
    }
    assert subprocess.run(["sha256sum", "-c", f"{copy.name}.sha256"], cwd=dest, check=False).returncode == 0
    assert password() not in run.stdout


def save_process(drill1: lab.Host) -> int:
    """The pid of the BGSAVE child of drill1's redis-server (the container's first process)."""
    server = subprocess.check_output(
        ["docker", "inspect", "--format", "{{.State.Pid}}", f"{drill1.project}-redis-1"], text=True
    ).strip()
    found = subprocess.run(["pgrep", "-P", server], capture_output=True, text=True, check=False).stdout.split()
    assert len(found) == 1, f"expected one save process under redis-server {server}, found {found}"
    return int(found[0])


def test_a_running_bgsave_is_waited_for_then_its_own_runs(drill1: lab.Host, snapshot_args: dict) -> None:
    """The test's own BGSAVE is held (SIGSTOP) while the module runs: first it must give up after
    snapshot_timeout, then, with time, wait for it and take its own."""
    main, slow = client(drill1), client(drill1, DB_SLOW)
    slow.mset({f"slow:{i}": i for i in range(20)})
    keys = sum(v["keys"] for k, v in main.info("keyspace").items() if k.startswith("db"))
    saves = main.info("persistence")["rdb_saves"]
    child = None
    try:
        main.config_set("rdb-key-save-delay", 1_000_000 // keys)  # about 1 s: time to find the save and hold it
        main.bgsave()
        main.config_set("rdb-key-save-delay", 0)  # the save keeps its own copy; the module's runs at full speed
        child = save_process(drill1)
        os.kill(child, signal.SIGSTOP)
        timed_out = outcome(run_module(MODULE, {**snapshot_args, "snapshot_timeout": 1}, hosts=HOST))
        assert timed_out["failed"] and "was still running after snapshot_timeout 1 s" in timed_out["msg"]
        watcher = redis.Redis(host=drill1.addr, password=password(), socket_timeout=60)
        with ThreadPoolExecutor(max_workers=1) as pool, watcher.monitor() as monitor:
            waiting = pool.submit(run_module, MODULE, snapshot_args, hosts=HOST)
            for command in monitor.listen():  # the module's first INFO persistence: it is waiting now
                if command["command"].lower() == "info persistence" or waiting.done():
                    break
            time.sleep(0.3)
            os.kill(child, signal.SIGCONT)
            done = outcome(waiting.result())
        assert done["changed"] and done["snapshot"]["waited_s"] >= 0.3, done
        assert main.info("persistence")["rdb_saves"] == saves + 2
        assert [p.name for p in Path(snapshot_args["snapshot_dest"]).glob("*.rdb")] == [
            Path(done["snapshot"]["path"]).name
        ]
    finally:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGCONT)
        main.config_set("rdb-key-save-delay", 0)
        wait_for_saves(main)
        slow.flushdb()


@pytest.fixture(scope="module")
def host_redis(drill1: lab.Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A Redis of the lab's image started without a config file, with its dir at the same path inside and out: a
    Redis that runs on the host, as the module's host mode sees it."""
    data = tmp_path_factory.mktemp("host-redis")
    with socket.socket() as probe:
        probe.bind((drill1.addr, 0))
        port = probe.getsockname()[1]
    name = f"stackops-test-redis-{uuid.uuid4().hex[:8]}"
    argv = ["redis-server", "--bind", drill1.addr, "--port", str(port), "--dir", str(data), "--save", ""]
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "-v",
            f"{data}:{data}",
            lab.image_tag(),
            *argv,
        ],
        check=True,
        capture_output=True,
    )
    r = redis.Redis(host=drill1.addr, port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the test's Redis did not start"
                time.sleep(0.05)
        yield port, data
    finally:
        r.close()
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)


def test_host_mode_snapshot_and_a_server_without_config_file(
    drill1: lab.Host, host_redis: tuple[int, Path], tmp_path: Path
) -> None:
    port, data = host_redis
    r = redis.Redis(host=drill1.addr, port=port)
    r.set(b"k\xff", b"v")
    base = {"login_host": drill1.addr, "login_port": port}
    done = outcome(run_module(MODULE, {**base, "snapshot": True, "snapshot_dest": str(tmp_path)}, hosts=HOST))
    snap = done["snapshot"]
    assert snap["source"] == str(data / "dump.rdb")
    assert sha256(Path(snap["path"])) == snap["sha256"] == sha256(data / "dump.rdb")
    refused = outcome(run_module(MODULE, {**base, "config": {"maxmemory": "10mb"}, "rewrite_config": True}, hosts=HOST))
    assert refused["failed"] and "was started without a config file" in refused["msg"]
    assert r.config_get("maxmemory") == {"maxmemory": "0"}


@pytest.mark.matrix
def test_runbook_four_step_sets_memory_and_clears_the_cache(drill1: lab.Host, settings: redis.Redis) -> None:
    r = client(drill1, DB_PLAYBOOK)
    r.flushdb()
    r.mset({**{f"session:{i}": 1 for i in range(200)}, **{f"user:{i}": 1 for i in range(50)}})
    extravars = {
        "redis_maintenance_hosts": HOST,
        "redis_maintenance_maxmemory": "128mb",
        "redis_maintenance_maxmemory_policy": "allkeys-lfu",
        "redis_maintenance_delete_patterns": ["session:*"],
        "redis_maintenance_db": DB_PLAYBOOK,
    }
    try:
        runs = assert_four_step(PLAYBOOK, extravars=extravars, limit=HOST)
        assert runs[1].changed() == {HOST: 2}
        summary = runs[1].artifacts["redis_maintenance"][HOST]
        assert summary["result"] == "ok" and summary["deleted"] == 200 and summary["rewritten"] is True
        assert summary["config_changes"]["maxmemory"] == {"before": "268435456", "after": "134217728"}
        assert settings.config_get("maxmemory") == {"maxmemory": "134217728"}
        conf = drill1.dir / "data" / "redis" / "redis.conf"
        assert re.search(r"^maxmemory 128mb$", conf.read_text(), re.MULTILINE)
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # the password in it stays private
        assert r.dbsize() == 50
    finally:
        r.flushdb()


def test_runbook_refuses_an_unconfirmed_flush_reports_a_failed_step_and_snapshots(
    drill1: lab.Host, settings: redis.Redis, tmp_path: Path
) -> None:
    r = client(drill1, DB_PLAYBOOK)
    r.set("keep", 1)
    base = {"redis_maintenance_hosts": HOST, "redis_maintenance_db": DB_PLAYBOOK}
    try:
        refused = run_playbook(PLAYBOOK, extravars={**base, "redis_maintenance_flush": "db"}, limit=HOST)
        assert refused.failed_hosts() == {HOST} and "redis_maintenance_flush_confirm=true" in refused.stdout
        assert r.exists("keep")
        # A value Redis refuses: nothing is set (one CONFIG SET, all or nothing), and the summary says why.
        before = settings.config_get("maxmemory*")
        bad = {**base, "redis_maintenance_maxmemory": "32mb", "redis_maintenance_maxmemory_policy": "bogus"}
        failed = run_playbook(PLAYBOOK, extravars=bad, limit=HOST)
        assert failed.failed_hosts() == {HOST} and settings.config_get("maxmemory*") == before
        summary = failed.artifacts["redis_maintenance"][HOST]
        assert summary["result"] == "failed" and "Set the memory limit" in summary["failure"]
        assert "Redis refused the settings: CONFIG SET failed" in summary["failure"]
        assert "Nothing was set" in summary["failure"]
        dest = tmp_path / "snapshots"
        extra = {**base, "redis_maintenance_snapshot": True, "redis_maintenance_snapshot_dest": str(dest)}
        snapped = run_playbook(PLAYBOOK, extravars=extra, limit=HOST, tags="snapshot")
        snapped.assert_ok()
        assert snapped.changed() == {HOST: 1}
        snap = snapped.artifacts["redis_maintenance"][HOST]["snapshot"]
        assert sha256(Path(snap["path"])) == snap["sha256"] and r.exists("keep")
    finally:
        r.flushdb()


def without_the_inventory_host(drill1: lab.Host, **extra: object) -> tuple[PlaybookRun, bool]:
    """The runbook's cache clear with stackops_redis_host unset (empty), and whether the key it would delete is
    still there."""
    r = client(drill1, DB_PLAYBOOK)
    r.set("session:probe", 1)
    base = {
        "redis_maintenance_hosts": HOST,
        "redis_maintenance_db": DB_PLAYBOOK,
        "redis_maintenance_delete_patterns": ["session:*"],
        "stackops_redis_host": "",
    }
    try:
        return run_playbook(PLAYBOOK, extravars={**base, **extra}, limit=HOST), bool(r.exists("session:probe"))
    finally:
        r.flushdb()


def test_runbook_without_a_redis_host_fails_naming_the_variable_and_touches_nothing(drill1: lab.Host) -> None:
    """No login setting at all is refused before any module runs: the modules' default, localhost, may be another
    Redis (issue 18 item 5)."""
    run, kept = without_the_inventory_host(drill1)
    assert run.failed_hosts() == {HOST} and kept
    assert "No redis host to log into: set stackops_redis_host" in " ".join(run.stdout.split())


def test_runbook_with_the_deprecated_login_host_still_connects_and_warns(drill1: lab.Host) -> None:
    """redis_maintenance_login_host, the role's own variable of before, still wins over stackops_redis_host until
    1.0.0, with a deprecation warning naming the variable to set instead."""
    run, kept = without_the_inventory_host(drill1, redis_maintenance_login_host=drill1.addr)
    run.assert_ok()
    assert not kept
    said = " ".join(run.stdout.split())
    assert "redis_maintenance_login_host is deprecated: set stackops_redis_host instead" in said
