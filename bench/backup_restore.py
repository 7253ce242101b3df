"""pg_backup and pg_restore against what the runbooks type by hand, on a pgbench scale-50 database on drill1,
each comparison in one hyperfine run:

    backup   raw `pg_dump -Fc` (baseline) | pg_backup (globals, retention_count 1) | the seed's `pg_dump > file.sql`
    restore  raw `pg_restore` into a fresh database (baseline) | pg_restore (force, swap, keep_previous 0) |
             the seed's `psql < file.sql` into a fresh database

    RUNS=3 .venv/bin/python bench/backup_restore.py      (the lab must be up)

The modules run on this host as `python -m ansible_collections...` with their arguments in a JSON file, so the
ratios show the module's own cost, without Ansible's SSH round trip. The baselines' fresh databases are dropped
and created in hyperfine's --prepare, outside the timing; the module creates its own, inside. Traffic goes to
127.0.2.3 only. The `bench` database is kept for the next run; everything else is removed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import psycopg2
import yaml
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
COLLECTIONS = ROOT / ".build" / "collections"
CREDENTIALS = ROOT / "inventories" / "lab" / "host_vars" / "drill1" / "lab_credentials.yml"
HOST, PORT, USER = "127.0.2.3", 5432, "postgres"
DB, SCALE = "bench", 50
RUNS = int(os.environ.get("RUNS", "3"))
MODULES = "ansible_collections.stackops.runbooks.plugins.modules"
ADDR = f"-h {HOST} -p {PORT} -U {USER}"
CONN = f"{ADDR} -w"  # never prompt: the password comes from PGPASSWORD
SCRATCH = ("bench_raw", "bench_plain", "bench_copy")
LEFTOVERS = ("bench\\_copy\\_pre\\_restore\\_%", "bench\\_copy\\_restore\\_%")


def password() -> str:
    return str(yaml.safe_load(CREDENTIALS.read_text())["stackops_pg_password"])


@contextlib.contextmanager
def cursor(secret: str, dbname: str = "postgres") -> t.Iterator[t.Any]:
    conn = psycopg2.connect(host=HOST, port=PORT, user=USER, password=secret, dbname=dbname, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def sh(command: str, env: dict[str, str]) -> float:
    """Runs a shell command (the benchmark's own commands, as hyperfine runs them); its wall time."""
    started = time.monotonic()
    proc = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"`{command}` failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.monotonic() - started


def ensure_collection() -> None:
    if not (COLLECTIONS / "ansible_collections" / "stackops" / "runbooks").exists():
        subprocess.run(["make", "-C", str(ROOT), "collection"], check=True)


def ensure_bench(secret: str, env: dict[str, str]) -> None:
    """The pgbench database at scale 50, reused when it is there (initialising it takes about a minute)."""
    with cursor(secret) as cur:
        cur.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (DB,))
        exists = cur.fetchone() is not None
    branches = None
    if exists:
        with cursor(secret, DB) as cur:
            cur.execute("SELECT to_regclass('public.pgbench_branches') IS NOT NULL")
            if cur.fetchone()[0]:
                cur.execute("SELECT count(*) FROM pgbench_branches")
                branches = cur.fetchone()[0]
    if branches == SCALE:
        print(f"reusing database {DB} (pgbench scale {SCALE})")
        return
    print(f"creating database {DB} with pgbench -i -s {SCALE}")
    sh(f"dropdb {CONN} --if-exists {DB} && createdb {CONN} {DB} && pgbench {ADDR} -i -q -s {SCALE} {DB}", env)


def drop_scratch(secret: str) -> list[str]:
    with cursor(secret) as cur:
        cur.execute(
            "SELECT datname FROM pg_catalog.pg_database WHERE datname = ANY(%s) OR datname LIKE %s OR datname LIKE %s",
            (list(SCRATCH), *LEFTOVERS),
        )
        names = sorted(row[0] for row in cur.fetchall())
        for name in names:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return names


def write_args(path: Path, args: dict[str, t.Any]) -> Path:
    # The file holds the password: created 0600, in the private temp dir.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    return path


def module_command(name: str, args_file: Path) -> str:
    return f"{shlex.quote(sys.executable)} -m {MODULES}.{name} {shlex.quote(str(args_file))}"


def run_module(name: str, args_file: Path, env: dict[str, str]) -> tuple[dict[str, t.Any], float]:
    """One run of the module, which must succeed; its result and wall time."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", f"{MODULES}.{name}", str(args_file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        why = f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        raise SystemExit(f"{name} printed no JSON (exit {proc.returncode}): {why}") from None
    if proc.returncode != 0 or result.get("failed"):
        raise SystemExit(f"{name} failed (exit {proc.returncode}): {result.get('msg', proc.stdout[-2000:])}")
    return result, wall


def hyperfine(out: str, commands: list[tuple[str, str, str | None]], env: dict[str, str]) -> list[dict[str, t.Any]]:
    """One hyperfine run of (name, command, prepare) triples; a prepare for one means a prepare for each."""
    argv = ["hyperfine", "--style", "basic", "--warmup", "1", "--runs", str(RUNS), "--export-json", out]
    if any(prepare for _name, _command, prepare in commands):
        for _name, _command, prepare in commands:
            argv += ["--prepare", prepare or "true"]
    for name, command, _prepare in commands:
        argv += ["-n", name, command]
    subprocess.run(argv, env=env, check=True)
    return json.loads(Path(out).read_text())["results"]


def table(title: str, results: list[dict[str, t.Any]]) -> None:
    base = results[0]["mean"]
    print(f"\n{title}\n{'command':22} {'mean':>9} {'stddev':>8} {'ratio':>6}")
    for r in results:
        print(f"{r['command']:22} {r['mean']:8.2f}s {r['stddev']:7.2f}s {r['mean'] / base:6.2f}")


def sha256_seconds(path: Path) -> float:
    started = time.monotonic()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return time.monotonic() - started


def count_seconds(secret: str) -> float:
    """Exact counts of the pgbench tables, as pg_backup's snapshot reading and pg_restore's check take them."""
    started = time.monotonic()
    with cursor(secret, DB) as cur:
        for table_name in ("pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers"):
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table_name)))
            cur.fetchone()
    return time.monotonic() - started


def bench_backup(tmp: Path, base: dict[str, t.Any], env: dict[str, str]) -> Path:
    """The backup comparison; returns the backup set left in place (retention keeps one) for the restore."""
    args = write_args(
        tmp / "backup.json", {**base, "db": DB, "dest": str(tmp / "sets"), "globals": True, "retention_count": 1}
    )
    result, wall = run_module("pg_backup", args, env)
    print(f"pg_backup checked: {result['path']} ({result['size'] / 1e6:.1f} MB) in {wall:.2f} s")
    raw, plain = shlex.quote(str(tmp / "raw.dump")), shlex.quote(str(tmp / "file.sql"))
    results = hyperfine(
        str(RESULTS / "pg_backup.json"),
        [
            ("raw pg_dump -Fc", f"pg_dump -Fc {CONN} -d {DB} -f {raw}", None),
            ("pg_backup", module_command("pg_backup", args), None),
            ("seed pg_dump > .sql", f"pg_dump {CONN} {DB} > {plain}", None),
        ],
        env,
    )
    table("backup", results)
    # One more run, for where its time goes, and as the one set left for the restore.
    result, wall = run_module("pg_backup", args, env)
    manifest = result["manifest"]
    check_args = write_args(tmp / "check.json", {**base, "db": DB, "dest": str(tmp / "empty"), "operation": "check"})
    _check, startup = run_module("pg_backup", check_args, env)
    parts = {
        "pg_backup process, wall": wall,
        "  its manifest duration_s (up to fsync and sha256; not manifest, rename, retention)": manifest["duration_s"],
        "  operation=check on an empty dest (interpreter, imports, arguments)": startup,
        "alone: raw pg_dump -Fc": sh(f"pg_dump -Fc {CONN} -d {DB} -f {raw}", env),
        "alone: pg_restore -f /dev/null (full read-back)": sh(f"pg_restore -f /dev/null {raw}", env),
        "alone: sha256 of the dump (in page cache)": sha256_seconds(tmp / "raw.dump"),
        "alone: exact row counts": count_seconds(base["login_password"]),
        "alone: pg_dumpall --globals-only": sh(f"pg_dumpall --globals-only {CONN} > /dev/null", env),
    }
    print("\nwhere pg_backup's time goes (one run; 'alone' steps measured once each)")
    for what, seconds in parts.items():
        print(f"  {what:84} {seconds:6.2f} s")
    return Path(result["path"])


def bench_restore(tmp: Path, base: dict[str, t.Any], src: Path, secret: str, env: dict[str, str]) -> None:
    args = write_args(
        tmp / "restore.json", {**base, "src": str(src), "db": "bench_copy", "force": True, "keep_previous": 0}
    )
    result, wall = run_module("pg_restore", args, env)
    print(f"pg_restore checked: {result['restored_db']} from {result['src']} in {wall:.2f} s")
    for name in ("bench_raw", "bench_plain"):  # in case a warm-up runs without its --prepare
        sh(f"dropdb {CONN} --if-exists {name} && createdb {CONN} {name}", env)
    raw, plain = shlex.quote(str(tmp / "raw.dump")), shlex.quote(str(tmp / "file.sql"))
    results = hyperfine(
        str(RESULTS / "pg_restore.json"),
        [
            (
                "raw pg_restore",
                f"pg_restore {CONN} -d bench_raw {raw}",
                f"dropdb {CONN} --if-exists bench_raw && createdb {CONN} bench_raw",
            ),
            ("pg_restore module", module_command("pg_restore", args), None),
            (
                "seed psql < .sql",
                f"psql {CONN} -X -q -v ON_ERROR_STOP=1 -d bench_plain < {plain}",
                f"dropdb {CONN} --if-exists bench_plain && createdb {CONN} bench_plain",
            ),
        ],
        env,
    )
    table("restore (fresh database made in --prepare for the baselines, untimed)", results)
    result, wall = run_module("pg_restore", args, env)
    elapsed = result["elapsed"]
    print("\nwhere pg_restore's time goes (one run, replacing bench_copy)")
    print(f"  process, wall {wall:.2f} s; elapsed {json.dumps(elapsed)}")
    outside = wall - elapsed["total"]
    print(f"  outside elapsed (interpreter, imports, connecting, dropping the previous copy): {outside:.2f} s")
    print(f"  alone: exact row counts {count_seconds(secret):.2f} s")


def main() -> None:
    secret = password()
    env = {**os.environ, "PGPASSWORD": secret, "PYTHONPATH": str(COLLECTIONS)}
    ensure_collection()
    ensure_bench(secret, env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stackops-bench-"))
    base = {
        "login_host": HOST,
        "login_port": PORT,
        "login_user": USER,
        "login_password": secret,
        "login_db": "postgres",
    }
    try:
        src = bench_backup(tmp, base, env)
        bench_restore(tmp, base, src, secret, env)
    finally:
        dropped = drop_scratch(secret)
        shutil.rmtree(tmp)
        print(f"\ncleaned up: dropped {', '.join(dropped) or 'nothing'}; removed {tmp}")


if __name__ == "__main__":
    main()
