"""Deleting the 500,000 `session:*` keys among 1,000,000 on drill1's Redis, three ways, while a concurrent client
sends a PING about every millisecond and records how long each one waited:

    seed     redis-cli KEYS "session:*" | xargs redis-cli DEL          (the runbooks' command)
    scan     redis-cli --scan --pattern "session:*" | xargs redis-cli UNLINK
    module   redis_maintenance's executor, delete_matching() (SCAN MATCH COUNT batch_size, each batch UNLINKed in
             the round trip of the next SCAN), imported from the module and called in this process

    RUNS=3 .venv/bin/python bench/redis_delete.py      (the lab must be up)

Before every timed delete, database 13 of drill1 is emptied and reloaded with `redis-cli --pipe` (half the keys
match). Each way runs RUNS times; then the module once more end to end (`python -m` of the module, connection and
all), a sweep of batch sizes, and a small correctness check with keys holding spaces, quotes and newlines. The
latency client is a separate process (not sharing this one's interpreter lock), bounded in count and time. Each
timed delete also resets drill1's latency monitor and command statistics (LATENCY RESET, CONFIG RESETSTAT) to read
how long Redis itself was held. Automatic snapshots (`save`) are off during the bench and put back at the end. The
password reaches redis-cli in REDISCLI_AUTH, never an argument. Traffic goes to 127.0.2.3 only; database 13 is
emptied at the end. Results go to bench/results/redis_delete.json.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import redis
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
COLLECTIONS = ROOT / ".build" / "collections"
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.stackops.runbooks.plugins.module_utils._redis_maintenance import delete_matching  # noqa: E402

CREDENTIALS = ROOT / "inventories" / "lab" / "host_vars" / "drill1" / "lab_credentials.yml"
HOST, PORT, DB = "127.0.2.3", 6379, 13
KEYS, PATTERN = 1_000_000, "session:*"
RUNS = int(os.environ.get("RUNS", "3"))
DEFAULT_BATCH = 500
SWEEP = (100, 300, 500, 1000, 3000, 10000)
# The latency client: one PING about every millisecond, for at most this long and this many.
PROBE_INTERVAL_S, PROBE_LIMIT_S, PROBE_LIMIT = 0.001, 180.0, 400_000
MODULE = "ansible_collections.stackops.runbooks.plugins.modules.redis_maintenance"
AWKWARD = [b"session:has space", b"session:it's", b'session:say "hi"', b"session:new\nline", b"session:\xff\x00"]


def password() -> str:
    return str(yaml.safe_load(CREDENTIALS.read_text())["stackops_redis_password"])


def client(secret: str) -> redis.Redis:
    return redis.Redis(host=HOST, port=PORT, db=DB, password=secret, socket_timeout=60)


def protocol(path: Path) -> None:
    """The RESP stream `redis-cli --pipe` sends: SELECT, then a SET per key, matching and other keys interleaved."""

    def command(*parts: bytes) -> bytes:
        return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)

    with path.open("wb") as out:
        out.write(command(b"SELECT", str(DB).encode()))
        for i in range(KEYS // 2):
            out.write(command(b"SET", b"session:%07d" % i, b"x"))
            out.write(command(b"SET", b"user:%07d" % i, b"x"))


def drain(r: redis.Redis) -> None:
    """Database 13 empty, and the memory of what was in it freed, so that one run does not pay for the last."""
    r.flushdb(asynchronous=True)
    deadline = time.monotonic() + 60
    while int(r.info("memory").get("lazyfree_pending_objects", 0)) and time.monotonic() < deadline:
        time.sleep(0.05)


def idle_saves(r: redis.Redis) -> None:
    """No snapshot running (one may have started before the bench turned them off)."""
    deadline = time.monotonic() + 120
    while r.info("persistence")["rdb_bgsave_in_progress"] and time.monotonic() < deadline:
        time.sleep(0.1)


def load(r: redis.Redis, stream: Path, env: dict[str, str]) -> float:
    drain(r)
    started = time.monotonic()
    with stream.open("rb") as data:
        proc = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(PORT), "--pipe"], stdin=data, env=env, capture_output=True, check=False
        )
    if proc.returncode != 0 or r.dbsize() != KEYS:
        raise SystemExit(f"loading failed ({proc.returncode}, {r.dbsize()} keys): {proc.stdout[-500:]!r}")
    return time.monotonic() - started


def probe(secret: str, stop: t.Any, out: t.Any) -> None:
    """The concurrent client: (start, seconds) of each PING until stopped, bounded in count and time."""
    # Ahead of the deleters for the CPU, so that its own scheduling adds as little as it can to what it measures.
    os.nice(-5)
    r = redis.Redis(host=HOST, port=PORT, password=secret, socket_timeout=30)
    r.ping()
    out.send("ready")
    samples: list[tuple[float, float]] = []
    began = due = time.monotonic()
    while not stop.is_set() and len(samples) < PROBE_LIMIT and due - began < PROBE_LIMIT_S:
        start = time.monotonic()
        r.ping()
        samples.append((start, time.monotonic() - start))
        due = max(due + PROBE_INTERVAL_S, time.monotonic())
        time.sleep(max(0.0, due - time.monotonic()))
    out.send(samples)


def latency(samples: list[tuple[float, float]], start: float, end: float) -> dict[str, float]:
    waits = sorted(seconds for at, seconds in samples if start <= at <= end)
    if not waits:
        return {"pings": 0, "worst_ms": 0.0, "p99_ms": 0.0, "median_ms": 0.0, "over_15ms": 0}
    return {
        "pings": len(waits),
        "worst_ms": round(waits[-1] * 1000, 2),
        "p99_ms": round(waits[int(0.99 * (len(waits) - 1))] * 1000, 2),
        "median_ms": round(statistics.median(waits) * 1000, 3),
        "over_15ms": sum(1 for w in waits if w > 0.015),
    }


def measured(secret: str, action: t.Callable[[], object]) -> tuple[dict[str, float], object]:
    """Runs action while the latency client runs; its wall time, what the client saw during it, and the longest
    event Redis's own latency monitor recorded (the server's side alone, without the machine's scheduling)."""
    server = redis.Redis(host=HOST, port=PORT, password=secret, socket_timeout=60)
    server.execute_command("LATENCY", "RESET")
    server.config_resetstat()
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    mine, theirs = ctx.Pipe()
    worker = ctx.Process(target=probe, args=(secret, stop, theirs))
    worker.start()
    if mine.recv() != "ready":
        raise SystemExit("the latency client did not start")
    time.sleep(0.05)
    start = time.monotonic()
    outcome = action()
    end = time.monotonic()
    stop.set()
    samples = mine.recv()
    worker.join(10)
    events = server.execute_command("LATENCY", "LATEST")
    stats = server.info("commandstats")
    server.close()
    # Mean time Redis spent in one call of each command the deleters send: how long one call holds the server,
    # which the machine's load moves far less than a single worst case.
    calls = {
        name[len("cmdstat_") :]: {"calls": int(v["calls"]), "ms_per_call": round(float(v["usec_per_call"]) / 1000, 3)}
        for name, v in stats.items()
        if name in ("cmdstat_keys", "cmdstat_del", "cmdstat_scan", "cmdstat_unlink")
    }
    figures = {
        "seconds": round(end - start, 3),
        **latency(samples, start, end),
        "server_worst_ms": max((int(event[3]) for event in events), default=0),
        "server_events": {
            event[0].decode() if isinstance(event[0], bytes) else str(event[0]): int(event[3]) for event in events
        },
        "hold_ms": max((c["ms_per_call"] for c in calls.values()), default=0.0),
        "calls": calls,
    }
    return figures, outcome


def shell(command: str, env: dict[str, str]) -> t.Callable[[], object]:
    def run() -> object:
        proc = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stderr.strip()[-300:]

    return run


def executor(secret: str, batch: int) -> t.Callable[[], object]:
    def run() -> object:
        r = client(secret)
        try:
            return delete_matching(r, [PATTERN], batch, False)["deleted"]
        finally:
            r.close()

    return run


def module_main(args_file: Path, env: dict[str, str]) -> t.Callable[[], object]:
    def run() -> object:
        proc = subprocess.run(
            [sys.executable, "-m", MODULE, str(args_file)], env=env, capture_output=True, text=True, check=False
        )
        result = json.loads(proc.stdout)
        if result.get("failed"):
            raise SystemExit(f"the module failed: {result.get('msg')}")
        return result["deleted"]

    return run


def left(r: redis.Redis) -> int:
    return sum(1 for _key in r.scan_iter(match=PATTERN, count=5000))


def timed(
    name: str, r: redis.Redis, stream: Path, env: dict[str, str], secret: str, action: t.Callable[[], object]
) -> dict:
    load(r, stream, env)
    figures, outcome = measured(secret, action)
    remaining = left(r)
    others = r.dbsize() - remaining
    if remaining or others != KEYS // 2:
        raise SystemExit(f"{name} left {remaining} matching keys and {others} others (expected 0 and {KEYS // 2})")
    print(
        f"  {name:28} {figures['seconds']:7.2f} s   worst {figures['worst_ms']:7.2f} ms   "
        f"p99 {figures['p99_ms']:6.2f} ms   server {figures['server_worst_ms']:4d} ms   "
        f"hold {figures['hold_ms']:7.3f} ms/call   "
        f"({figures['pings']} pings, {figures['over_15ms']} over 15 ms)",
        flush=True,
    )
    return {"name": name, **figures, "outcome": outcome}


def summary(rows: list[dict]) -> dict[str, float]:
    return {
        "seconds": round(statistics.mean(r["seconds"] for r in rows), 3),
        "seconds_min": min(r["seconds"] for r in rows),
        "seconds_max": max(r["seconds"] for r in rows),
        "worst_ms": max(r["worst_ms"] for r in rows),
        "p99_ms": round(statistics.mean(r["p99_ms"] for r in rows), 2),
        "server_worst_ms": max(r["server_worst_ms"] for r in rows),
        "hold_ms": max(r["hold_ms"] for r in rows),
    }


def awkward_keys(secret: str, env: dict[str, str], commands: dict[str, str]) -> dict[str, int]:
    """Matching keys left by each way when some keys hold spaces, quotes, newlines or bytes that are not UTF-8."""
    r = client(secret)
    found = {}
    for name in [*commands, "module"]:
        drain(r)
        r.mset(dict.fromkeys([*AWKWARD, b"session:plain1", b"session:plain2", b"user:1"], b"x"))
        if name == "module":
            delete_matching(r, [PATTERN], DEFAULT_BATCH, False)
        else:
            shell(commands[name], env)()
        found[name] = left(r)
    drain(r)
    return found


def main() -> None:
    secret = password()
    env = {**os.environ, "REDISCLI_AUTH": secret}
    base = f"redis-cli -h {HOST} -p {PORT} -n {DB}"
    commands = {
        "seed: KEYS | xargs DEL": f"{base} KEYS '{PATTERN}' | xargs {base} DEL >/dev/null",
        "scan: --scan | xargs UNLINK": f"{base} --scan --pattern '{PATTERN}' | xargs {base} UNLINK >/dev/null",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    r = client(secret)
    saved = r.config_get("latency-monitor-threshold") | r.config_get("save")
    # Every event of 1 ms or more recorded; no automatic snapshot, which each reload of a million keys would start
    # (save 60 10000): its fork and the writing child would land at random in the timings. Both put back at the end.
    r.config_set("latency-monitor-threshold", 1)
    r.config_set("save", "")
    try:
        idle_saves(r)
        bench(r, secret, env, commands)
    finally:
        drain(r)
        for name, value in saved.items():
            r.config_set(name, value)
        r.close()


def bench(r: redis.Redis, secret: str, env: dict[str, str], commands: dict[str, str]) -> None:
    info = r.info("server")
    report: dict[str, t.Any] = {
        "redis": info["redis_version"],
        "keys": KEYS,
        "matching": KEYS // 2,
        "runs": RUNS,
        "load_average": os.getloadavg(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as tmp:
        stream = Path(tmp) / "keys.resp"
        protocol(stream)
        print(f"loading {KEYS} keys into db {DB} takes {load(r, stream, env):.2f} s (redis-cli --pipe)")
        drain(r)
        idle, _outcome = measured(secret, lambda: time.sleep(3))
        report["idle"] = idle
        print(f"idle server: worst {idle['worst_ms']} ms, p99 {idle['p99_ms']} ms over {idle['pings']} pings")
        rows: dict[str, list[dict]] = {}
        for run in range(RUNS):
            print(f"run {run + 1} of {RUNS}")
            for name, command in commands.items():
                rows.setdefault(name, []).append(timed(name, r, stream, env, secret, shell(command, env)))
            name = f"module: batch_size {DEFAULT_BATCH}"
            rows.setdefault(name, []).append(timed(name, r, stream, env, secret, executor(secret, DEFAULT_BATCH)))
        report["ways"] = {name: {**summary(found), "runs": found} for name, found in rows.items()}
        args = Path(tmp) / "args.json"
        fd = os.open(args, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            module_args = {"login_host": HOST, "login_password": secret, "db": DB, "delete_pattern": [PATTERN]}
            json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
        print("the module end to end (python -m, its default batch_size)")
        module_env = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
        report["module_main"] = timed("module: python -m", r, stream, env, secret, module_main(args, module_env))
        print("batch sizes")
        report["sweep"] = [
            timed(f"module: batch_size {batch}", r, stream, env, secret, executor(secret, batch)) for batch in SWEEP
        ]
    drain(r)
    report["awkward_keys_left"] = awkward_keys(secret, env, commands)
    print(f"matching keys left when some hold spaces, quotes, newlines: {report['awkward_keys_left']}")
    ways = report["ways"]
    seed, scan = ways["seed: KEYS | xargs DEL"], ways["scan: --scan | xargs UNLINK"]
    mine = ways[f"module: batch_size {DEFAULT_BATCH}"]
    report["ratios"] = {
        name: {
            "time_vs_scan": round(way["seconds"] / scan["seconds"], 2),
            "time_vs_seed": round(way["seconds"] / seed["seconds"], 2),
            "worst_vs_seed": round(way["worst_ms"] / seed["worst_ms"], 3),
        }
        for name, way in ways.items()
    }
    report["targets"] = {
        "module worst latency <= 15 ms": mine["worst_ms"] <= 15,
        "module time <= --scan pipeline": mine["seconds"] <= scan["seconds"],
    }
    (RESULTS / "redis_delete.json").write_text(json.dumps(report, indent=2))
    print(f"\n{'way':30} {'mean s':>8} {'vs scan':>8} {'worst ms':>9} {'p99 ms':>7} {'server ms':>9} {'hold ms':>8}")
    for name, way in ways.items():
        ratio = report["ratios"][name]["time_vs_scan"]
        print(
            f"{name:30} {way['seconds']:8.2f} {ratio:8.2f} {way['worst_ms']:9.2f} {way['p99_ms']:7.2f} "
            f"{way['server_worst_ms']:9d} {way['hold_ms']:8.3f}"
        )
    print(f"targets: {report['targets']}")


if __name__ == "__main__":
    main()
