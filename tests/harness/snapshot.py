"""An independent picture of a lab host's state, to prove that something changed nothing.

`snapshot(host)` reads, each with its own tool and never through the collection's code:

- postgres: every database (owner, encoding, comment), and in each one the exact row count of every table, a digest
  of each relation's definition (columns, types, defaults, owner, grants, view text), one digest of every other
  object (indexes, constraints, functions, triggers, schemas, extensions) and the sequences' values; the roles (with
  a digest of their passwords) and what ALTER SYSTEM wrote. One connection per database.
- redis: per database DBSIZE and a digest of every key with its value (SCAN, then DUMP in pipelined batches), and
  the configuration (CONFIG GET *, secrets left out). One connection.
- nginx: every entry under the host's nginx directory, and nginx's worker pids (a reload replaces them).
- project: every entry of the host's project directory (lab.ROOT/hosts/<host>: .env, compose.yaml and any other
  compose or override file, releases/, app/, runtime/, ...) but data/, the PostgreSQL and Redis data that change by
  themselves (read as databases above), and nginx/ (above).
- outputs: the host's entries of the shared folders its playbooks write: backups/<host> and backups/<host>-* (the
  database backups and Redis snapshots), backup-copies/<host>, /var/backups/stackops/copies/<host>,
  archives/<host>-*, logs/<host>-*, reports/routine/*/<host>.json under lab.ROOT, and /var/tmp's
  stackops-health/health-<host>.json, stackops-incidents/<host>-*, stackops-incidents-fetched/<host>-* and
  stackops-restore-drill/*-<host> (a drill's work folder, named for the host drilled). Only entries named for the
  host: under pytest-xdist another worker runs playbooks on the hosts it holds meanwhile, and writes their entries
  of the same folders. The drill's evidence (reports/restore-drill) is named for runs, not hosts, and is the drill
  host's (group `drill`) whole: a test module that drills into it declares that host (tests/harness/lanes.py), the
  others give the drill a folder of their own.
- containers: each container of the host's compose project: id, image id, state, start time (a stop and start
  changes it) and restart count (`docker inspect`).
- projects: the same of every other compose project made from the host's directory, and of the projects a test
  names or watches for the host (scratch projects: tests/harness/scratch.py watches each for the host whose runs
  reach it until it is removed), by project and container (a watched project with no container is empty, so one
  that starts shows).
- images: the image id (None: gone) under each reference the host's and those projects' containers were made
  from, that the project's .env names (`*IMAGE=`, as a deploy sets APP_IMAGE) or that names the host as a word
  (what tests build or tag for it, like stackops-lab:lab3-shape-v2). The Docker engine is every host's and every
  lane's: an image of another host or an unnamed one (what docker_prune removes) is left out.
- host_nginx: for each watched or named pid file of an nginx on the host (tests/integration/
  test_nginx_config_host.py), the master's pid and its workers.
- canaries: files named pwned* in /tmp of the host or of any of those containers (what an injected command makes).
- files: every entry under the extra paths a test names or watches (None when a path does not exist).

An entry is a file's sha256, a directory, a link's target or another kind, each with its mode and owner. A file's
digest is read again only when its inode, size, mtime or ctime moved (the kernel sets ctime on every write and no
system call sets it back), so backups are hashed once per process, not at each of the suite's snapshots.
`watching(host, files=..., projects=..., nginx_pids=...)` (or `watch`/`forget`) adds what a test made to every
snapshot of that host in this process, so check runs through the harness (tests/harness/playbook.py) read it too;
one host's only, so a contract over several hosts sees a change to it where it happened. snapshot() takes the same
three as arguments.

`diff(before, after)` lists every difference as one line, `part/key/...: before -> after`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import stat
import subprocess
import time
import typing as t
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
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


# A file's content digest is read again only when its inode, size, mtime or ctime moved: the kernel sets ctime on
# every write and metadata change and no system call sets it back (utime sets mtime and moves ctime itself), so an
# unchanged key is unchanged content. Backups and bundles are hashed once, not at each of the suite's snapshots.
_digests: dict[Path, tuple[tuple[int, ...], str]] = {}


def _digest(path: Path, info: os.stat_result) -> str:
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    known = _digests.get(path)
    if known is None or known[0] != key:
        with path.open("rb") as handle:
            known = (key, hashlib.file_digest(handle, "sha256").hexdigest())
        _digests[path] = known
    return known[1]


def entry(path: Path) -> str | None:
    """One file system entry: a file's sha256, a directory, a link's target or another kind, each with its mode
    and owner; None when nothing is there."""
    try:
        info = path.lstat()
        mode = info.st_mode
        owner = f"{stat.S_IMODE(mode):o} {info.st_uid}:{info.st_gid}"
        if stat.S_ISREG(mode):
            return f"{_digest(path, info)} {owner}"
        if stat.S_ISLNK(mode):
            return f"link {os.readlink(path)}"
        return f"{'dir' if stat.S_ISDIR(mode) else 'special'} {owner}"
    except FileNotFoundError:
        return None


def tree(path: Path, skip: Collection[str] = ()) -> dict[str, str | None] | str | None:
    """A file's entry, every entry under a directory by relative path (the directory itself as "."), or None when
    nothing is there. `skip` names top-level subdirectories left out."""
    top = entry(path)
    if top is None or not top.startswith("dir "):
        return top
    found: dict[str, str | None] = {".": top}
    for folder, dirs, files in os.walk(path):
        if folder == str(path):
            dirs[:] = [name for name in dirs if name not in skip]
        for name in sorted([*dirs, *files]):
            file = Path(folder) / name
            found[str(file.relative_to(path))] = entry(file)
    return found


# Where a host's playbooks write outside its project directory: shared directories, and the globs ({host}: its
# name) of the entries that are that host's. The lab inventory's paths (inventories/lab/group_vars/all.yml) and the
# roles' defaults where the inventory sets none.
OUTPUTS = (
    (lab.ROOT / "backups", ("{host}", "{host}-*")),  # stackops_backup_dest, stackops_redis_snapshot_dest
    (lab.ROOT / "backup-copies", ("{host}", "{host}-*")),  # the tests' backup_copy_dir
    (Path("/var/backups/stackops/copies"), ("{host}",)),  # backup_copy_host_dir
    (lab.ROOT / "archives", ("{host}-*",)),  # routine_monthly_archive_dir
    (lab.ROOT / "logs", ("{host}-*",)),  # routine_monthly_log_dir
    (lab.ROOT / "reports" / "routine", ("*/{host}.json",)),  # routine_report_dir/<period>/
    (Path("/var/tmp/stackops-health"), ("health-{host}.json",)),  # health_check_report_dir
    (Path("/var/tmp/stackops-incidents"), ("{host}-*",)),  # collect_diagnostics_dir, recover_service_incident_dir
    (Path("/var/tmp/stackops-incidents-fetched"), ("{host}-*",)),  # collect_diagnostics_fetch_dir
    (Path("/var/tmp/stackops-restore-drill"), ("*-{host}",)),  # restore_drill_work_dir/<run>-<host drilled>
)
# A drill's evidence is named for the run, not a host; a test module that drills into the lab's report folder
# declares the drill host (the others give the drill a folder of their own): it is the drill host's.
DRILL_OUTPUTS = (lab.ROOT / "reports" / "restore-drill",)
# What changes in the project directory by itself: PostgreSQL's and Redis's data (read as databases instead).
VOLATILE = ("data",)


def outputs(host: lab.Host) -> dict[str, t.Any]:
    """Every entry of the shared output directories that is the host's, by its path (without the leading /)."""
    paths = [found for folder, globs in OUTPUTS for glob in globs for found in folder.glob(glob.format(host=host.name))]
    if host.group == "drill":
        paths += DRILL_OUTPUTS
    return {str(path).lstrip("/"): tree(path) for path in sorted(set(paths))}


@dataclass
class Watched:
    """What a test made beside a lab host, for that host's snapshots to read: extra paths, compose projects by
    name, pid files of nginx masters on the host."""

    files: set[Path] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)
    nginx_pids: set[Path] = field(default_factory=set)


# Per lab host: each item is one host's, the one whose runs reach it, so a contract over several hosts sees a change
# to it on that host alone (a real run that pulls a scratch project's image on lab1 reports no change on lab2).
WATCHED: dict[str, Watched] = {}


def watch(host: str, extra: Watched) -> None:
    mine = WATCHED.setdefault(host, Watched())
    mine.files |= extra.files
    mine.projects |= extra.projects
    mine.nginx_pids |= extra.nginx_pids


def forget(host: str, extra: Watched) -> None:
    mine = WATCHED.setdefault(host, Watched())
    mine.files -= extra.files
    mine.projects -= extra.projects
    mine.nginx_pids -= extra.nginx_pids


@contextmanager
def watching(
    host: str, *, files: Iterable[Path] = (), projects: Iterable[str] = (), nginx_pids: Iterable[Path] = ()
) -> Iterator[None]:
    """Every snapshot of the host in this process also reads these while the block runs."""
    extra = Watched(set(files), set(projects), set(nginx_pids))
    watch(host, extra)
    try:
        yield
    finally:
        forget(host, extra)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def _inspect(ids: Sequence[str]) -> list[dict[str, t.Any]]:
    return t.cast("list[dict[str, t.Any]]", json.loads(_docker("inspect", *ids))) if ids else []


def project_containers(project: str) -> list[dict[str, t.Any]]:
    """`docker inspect` of every container of a compose project, running or not (plain docker, not the modules)."""
    return _inspect(
        _docker("ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}").split()
    )


def children(pid: int) -> list[int]:
    found = []
    for item in Path("/proc").iterdir():
        if item.name.isdigit():
            try:
                fields = (item / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(item.name))
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


def host_nginx(pidfile: Path) -> dict[str, t.Any]:
    """An nginx on the host, by its pid file: the master's pid and its settled workers."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return {"master": None}
    return {"master": pid, "workers": settled(pid)}


def _container(item: dict[str, t.Any]) -> dict[str, t.Any]:
    state = item["State"]
    return {
        "service": item["Config"]["Labels"].get("com.docker.compose.service", item["Name"]),
        "id": item["Id"],
        "image": item["Image"],
        "status": state["Status"],
        "started_at": state["StartedAt"],
        "restarts": item["RestartCount"],
    }


def _reference(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def images(host: lab.Host, containers: Iterable[dict[str, t.Any]]) -> dict[str, str | None]:
    """The image id (None: no such image) under every reference the host's containers were made from, that its
    project's .env names (`*IMAGE=`: a deploy sets APP_IMAGE) or that names the host (what tests build or tag for
    it, like stackops-lab:lab3-shape-v2). The engine is every lane's: other references are left out."""
    tagged = {}
    for line in _docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}}\t{{.ID}}").splitlines():
        reference, _tab, image = line.partition("\t")
        if "<none>" not in reference:
            tagged[reference] = image
    env = host.dir / ".env"
    pairs = [line.partition("=") for line in (env.read_text().splitlines() if env.exists() else [])]
    named = re.compile(rf"(?<![a-z0-9]){re.escape(host.name)}(?![a-z0-9])")
    wanted = {
        *(_reference(c["Config"]["Image"]) for c in containers if not c["Config"]["Image"].startswith("sha256:")),
        *(_reference(value.strip()) for key, _eq, value in pairs if key.strip().endswith("IMAGE") and value.strip()),
        *(reference for reference in tagged if named.search(reference)),
    }
    return {reference: tagged.get(reference) for reference in sorted(wanted)}


def docker_state(host: lab.Host, projects: Collection[str]) -> dict[str, t.Any]:
    """The host's compose containers; those of the named projects and of any other project made from the host's
    directory; the images they use or that name the host; canary files; the nginx container's workers."""
    listed = _docker(
        "ps", "-a", "--no-trunc", "--filter", "label=com.docker.compose.project", "--format",
        '{{.ID}}\t{{.Label "com.docker.compose.project"}}\t{{.Label "com.docker.compose.project.working_dir"}}',
    )  # fmt: skip
    ids = []
    for line in listed.splitlines():
        container, project, folder = [*line.split("\t"), "", ""][:3]
        if project == host.project or project in projects or Path(folder or "/").is_relative_to(host.dir):
            ids.append(container)
    found = _inspect(ids)
    containers: dict[str, t.Any] = {}
    others: dict[str, dict[str, t.Any]] = {name: {} for name in projects}
    canaries, workers = sorted(str(p) for p in Path("/tmp").glob(CANARY)), []
    for item in found:
        name, project = item["Name"].lstrip("/"), item["Config"]["Labels"]["com.docker.compose.project"]
        record = (containers if project == host.project else others.setdefault(project, {}))[name] = _container(item)
        upper = (item.get("GraphDriver") or {}).get("Data", {}).get("UpperDir")
        if upper:
            canaries += sorted(f"{name}:/tmp/{p.name}" for p in (Path(upper) / "tmp").glob(CANARY))
        if project == host.project and record["service"] == host.shape.nginx and item["State"].get("Pid"):
            # nginx's master is the container's first process; a reload gives it new worker children.
            workers = settled(int(item["State"]["Pid"]))
    return {
        "containers": containers,
        "projects": others,
        "images": images(host, found),
        "canaries": canaries,
        "nginx_workers": workers,
    }


def snapshot(
    host: lab.Host | str,
    *,
    files: Sequence[Path] = (),
    projects: Sequence[str] = (),
    nginx_pids: Sequence[Path] = (),
) -> Snapshot:
    """The state of a lab host (the module's docstring lists every part) with any extra paths, compose projects and
    host nginx pid files, these and what is watched, each part read independently (side by side)."""
    host = _host(host)
    watched = WATCHED.get(host.name, Watched())
    paths = sorted({*files, *watched.files})
    pidfiles = sorted({*nginx_pids, *watched.nginx_pids})
    with ThreadPoolExecutor(max_workers=4) as pool:
        pg_part = pool.submit(postgres, host)
        redis_part = pool.submit(redis_state, host)
        docker_part = pool.submit(docker_state, host, {*projects, *watched.projects})
        nginx_part = pool.submit(lambda: {str(pidfile): host_nginx(pidfile) for pidfile in pidfiles})
        nginx_files = tree(host.dir / "nginx")
        project_files = tree(host.dir, skip={*VOLATILE, "nginx"})
        output_files = outputs(host)
        extra = {str(path): tree(path) for path in paths}
        docker = docker_part.result()
        return {
            "postgres": pg_part.result(),
            "redis": redis_part.result(),
            "nginx": {"files": nginx_files, "workers": docker["nginx_workers"]},
            "project": project_files,
            "outputs": output_files,
            "containers": docker["containers"],
            "projects": docker["projects"],
            "images": docker["images"],
            "host_nginx": nginx_part.result(),
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
