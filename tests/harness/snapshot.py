"""An independent picture of a lab host's state, to prove that something changed nothing.

`snapshot(host)` reads, each with its own tool and never through the collection's code:

- postgres: every database (owner, encoding, comment), and in each one the exact row count of every table, a digest
  of each relation's definition (columns, types, defaults, owner, grants, view text), one digest of every other
  object (indexes, constraints, functions, triggers, schemas, extensions) and the sequences' values; the roles (with
  a digest of their passwords) and what ALTER SYSTEM wrote. One connection per database.
- redis: per database DBSIZE and a digest of every key with its value (SCAN, then DUMP in pipelined batches), and
  the configuration (CONFIG GET *, secrets left out). One connection.
- nginx: the sha256 of every file under the host's nginx directory, and nginx's worker pids (a reload replaces them).
- containers: each compose container's id, state, start time and restart count (`docker inspect`).
- canaries: files named pwned* in /tmp of the host or of any of its containers (what an injected command makes).
- files: the sha256 of every file under the extra paths a test names (None when a path does not exist).

`diff(before, after)` lists every difference as one line, `part/key/...: before -> after`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import time
import typing as t
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
from psycopg2 import sql

import lab
from harness import pg
from harness.paths import lab_credentials, lab_hosts

Snapshot = dict[str, t.Any]

CANARY = "pwned*"
REDIS_SECRETS = frozenset(("requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass"))
DUMP_BATCH = 1000

NOT_CATALOG = sql.SQL(
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)
DATABASES = """
SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba) AS owner, pg_catalog.pg_encoding_to_char(d.encoding),
       d.datallowconn, d.datistemplate, pg_catalog.shobj_description(d.oid, 'pg_database')
FROM pg_catalog.pg_database d ORDER BY 1
"""
ROLES = """
SELECT rolname, concat_ws(' ', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
                          rolbypassrls, rolconnlimit, rolvaliduntil, md5(coalesce(rolpassword, '')))
FROM pg_catalog.pg_authid ORDER BY 1
"""
AUTO_CONF = """
SELECT name, setting FROM pg_catalog.pg_file_settings
WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno
"""
RELATIONS = sql.SQL(
    """
SELECT format('%s.%s (%s)', n.nspname, c.relname, c.relkind),
       md5(concat_ws(' ', pg_catalog.pg_get_userbyid(c.relowner), c.relacl::text, c.relpersistence,
           CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END,
           (SELECT string_agg(concat_ws(' ', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                        pg_catalog.pg_get_expr(ad.adbin, ad.adrelid)), ', ' ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a
            LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)))
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE {catalog} AND c.relkind NOT IN ('i', 'I', 'S', 't', 'c')
ORDER BY 1
"""
).format(catalog=NOT_CATALOG)
OBJECTS = sql.SQL(
    """
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
  SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid) || ' valid=' || i.indisvalid AS item
  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE {catalog}
  UNION ALL
  SELECT 'constraint ' || n.nspname || ' ' || co.conrelid::regclass::text || ' ' || co.conname || ' '
         || pg_catalog.pg_get_constraintdef(co.oid)
  FROM pg_catalog.pg_constraint co JOIN pg_catalog.pg_namespace n ON n.oid = co.connamespace WHERE {catalog}
  UNION ALL
  SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid)
         || ') ' || pg_catalog.pg_get_userbyid(p.proowner) || ' ' || md5(coalesce(p.prosrc, ''))
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE {catalog}
  UNION ALL
  SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(tg.oid) FROM pg_catalog.pg_trigger tg WHERE NOT tg.tgisinternal
  UNION ALL
  SELECT 'schema ' || n.nspname || ' ' || pg_catalog.pg_get_userbyid(n.nspowner) || ' ' || coalesce(n.nspacl::text, '')
  FROM pg_catalog.pg_namespace n WHERE {catalog}
  UNION ALL
  SELECT 'extension ' || extname || ' ' || extversion FROM pg_catalog.pg_extension
) objects
"""
).format(catalog=NOT_CATALOG)
TABLES = sql.SQL(
    """
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE {catalog} AND c.relkind = 'r' AND c.relpersistence <> 't' ORDER BY 1, 2
"""
).format(catalog=NOT_CATALOG)
SEQUENCES = (
    "SELECT schemaname || '.' || sequencename, last_value FROM pg_catalog.pg_sequences "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)


def _host(host: lab.Host | str) -> lab.Host:
    return lab_hosts()[host] if isinstance(host, str) else host


def _rows(conn: t.Any, statement: t.Any) -> list[tuple[t.Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def _database(host: lab.Host, name: str) -> dict[str, t.Any]:
    conn = pg.connect(host, name)
    try:
        tables = _rows(conn, TABLES)
        counts: dict[str, int] = {}
        if tables:
            query = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {}, count(*) FROM {}.{}").format(
                    sql.Literal(f"{schema}.{table}"), sql.Identifier(schema), sql.Identifier(table)
                )
                for schema, table in tables
            )
            counts = {table: int(n) for table, n in _rows(conn, query)}
        return {
            "rows": counts,
            "relations": dict(_rows(conn, RELATIONS)),
            "objects": _rows(conn, OBJECTS)[0][0],
            "sequences": dict(_rows(conn, SEQUENCES)),
        }
    finally:
        conn.close()


def postgres(host: lab.Host) -> dict[str, t.Any]:
    conn = pg.connect(host)
    try:
        databases = {name: list(rest) for name, *rest in _rows(conn, DATABASES)}
        roles = dict(_rows(conn, ROLES))
        auto_conf = [f"{name} = {setting}" for name, setting in _rows(conn, AUTO_CONF)]
    finally:
        conn.close()
    # template0 takes no connections; the others are read each on its own connection, side by side.
    readable = [name for name, (_owner, _enc, allowed, *_rest) in databases.items() if allowed]
    with ThreadPoolExecutor(max_workers=4) as pool:
        contents = dict(zip(readable, pool.map(lambda name: _database(host, name), readable)))
    return {
        "databases": {
            name: {"catalog": info, **({"content": contents[name]} if name in contents else {})}
            for name, info in databases.items()
        },
        "roles": roles,
        "auto_conf": auto_conf,
    }


def redis_state(host: lab.Host) -> dict[str, t.Any]:
    r = redis.Redis(
        host=host.addr,
        password=lab_credentials(host.name)["stackops_redis_password"],
        single_connection_client=True,
        socket_timeout=30,
    )
    try:
        config = {k: v for k, v in r.config_get("*").items() if k not in REDIS_SECRETS}
        found: dict[str, t.Any] = {}
        for name in sorted(r.info("keyspace"), key=lambda db: int(db[2:])):
            r.execute_command("SELECT", int(name[2:]))
            keys = sorted(r.scan_iter(count=DUMP_BATCH))
            digest = hashlib.sha256()
            for start in range(0, len(keys), DUMP_BATCH):
                batch = keys[start : start + DUMP_BATCH]
                pipe = r.pipeline(transaction=False)
                for key in batch:
                    pipe.dump(key)
                for key, value in zip(batch, pipe.execute()):
                    digest.update(len(key).to_bytes(4, "big") + key + hashlib.sha256(value or b"").digest())
            found[name] = {"dbsize": int(r.dbsize()), "keys": len(keys), "digest": digest.hexdigest()}
        return {"databases": found, "config": config}
    finally:
        r.close()


def tree(path: Path) -> dict[str, str] | str | None:
    """sha256 of a file, of each file under a directory (by relative path), or None when nothing is there."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    found = {}
    for folder, _dirs, files in os.walk(path):
        for name in files:
            file = Path(folder) / name
            key = str(file.relative_to(path))
            found[key] = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else "(not a file)"
    return found


def project_containers(project: str) -> list[dict[str, t.Any]]:
    """`docker inspect` of every container of a compose project, running or not (plain docker, not the modules)."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not ids:
        return []
    out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
    return t.cast("list[dict[str, t.Any]]", json.loads(out))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def settled(pid: int) -> list[int]:
    """nginx's workers once a reload already in flight has finished (a graceful reload replaces them over a
    moment): two reads 0.1 s apart that agree and are not empty, for at most 5 s."""
    seen = children(pid)
    for _attempt in range(50):
        time.sleep(0.1)
        again = children(pid)
        if again == seen and again:
            break
        seen = again
    return seen


def docker_state(host: lab.Host) -> dict[str, t.Any]:
    containers, canaries, workers = {}, sorted(str(p) for p in Path("/tmp").glob(CANARY)), []
    for item in project_containers(host.project):
        service = item["Config"]["Labels"].get("com.docker.compose.service", item["Name"])
        state = item["State"]
        containers[item["Name"].lstrip("/")] = {
            "service": service,
            "id": item["Id"],
            "status": state["Status"],
            "started_at": state["StartedAt"],
            "restarts": item["RestartCount"],
        }
        upper = (item.get("GraphDriver") or {}).get("Data", {}).get("UpperDir")
        if upper:
            canaries += sorted(f"{item['Name'].lstrip('/')}:/tmp/{p.name}" for p in (Path(upper) / "tmp").glob(CANARY))
        if service == host.shape.nginx and state.get("Pid"):
            # nginx's master is the container's first process; a reload gives it new worker children.
            workers = settled(int(state["Pid"]))
    return {"containers": containers, "canaries": canaries, "nginx_workers": workers}


def snapshot(host: lab.Host | str, *, files: Sequence[Path] = ()) -> Snapshot:
    """The state of a lab host's PostgreSQL, Redis, nginx files and workers, containers, canary files and any extra
    paths, each read independently (the parts side by side)."""
    host = _host(host)
    with ThreadPoolExecutor(max_workers=3) as pool:
        pg_part = pool.submit(postgres, host)
        redis_part = pool.submit(redis_state, host)
        docker_part = pool.submit(docker_state, host)
        nginx_files = tree(host.dir / "nginx")
        extra = {str(path): tree(path) for path in files}
        docker = docker_part.result()
        return {
            "postgres": pg_part.result(),
            "redis": redis_part.result(),
            "nginx": {"files": nginx_files, "workers": docker["nginx_workers"]},
            "containers": docker["containers"],
            "canaries": docker["canaries"],
            "files": extra,
        }


def _flatten(value: t.Any, path: str, into: dict[str, t.Any]) -> dict[str, t.Any]:
    """Leaves by path; an empty mapping has none (a table's first row shows as that row, not as a changed {})."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}/{key}" if path else str(key), into)
    else:
        into[path] = value
    return into


def _show(value: t.Any) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 200 else f"{text[:200]}..."


def diff(before: Snapshot, after: Snapshot, ignore: Iterable[str] = ()) -> list[str]:
    """Every difference as `path: before -> after` (`path: added ...`, `path: removed ...`); list leaves say which
    items came and went. Paths matching a glob in `ignore` are left out. Empty when nothing changed."""
    old, new = _flatten(before, "", {}), _flatten(after, "", {})
    patterns = list(ignore)
    lines = []
    for path in sorted(set(old) | set(new)):
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns):
            continue
        if path not in old:
            lines.append(f"{path}: added {_show(new[path])}")
        elif path not in new:
            lines.append(f"{path}: removed {_show(old[path])}")
        elif old[path] != new[path]:
            if isinstance(old[path], list) and isinstance(new[path], list):
                gone = [item for item in old[path] if item not in new[path]]
                came = [item for item in new[path] if item not in old[path]]
                lines.append(f"{path}: gone {_show(gone)}, new {_show(came)}")
            else:
                lines.append(f"{path}: {_show(old[path])} -> {_show(new[path])}")
    return lines
