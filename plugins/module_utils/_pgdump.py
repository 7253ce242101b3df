# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""pg_dump, pg_dumpall and pg_restore for pg_backup and pg_restore, run on the managed host or inside the compose
postgres service (then the tools match the server's version). Passwords travel in the environment only: libpq's
PGPASSWORD, passed into the container by name (`exec -e PGPASSWORD`), never as an argument. Also the catalog
readings both modules compare: tables with exact row counts, object counts, sequence values."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import signal
import subprocess
import threading
import typing as t
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import CHUNK, BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeProject,
    ProjectRef,
    project_argument_spec,
    service_project,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._files import fsync_file
from ansible_collections.stackops.runbooks.plugins.module_utils._place import Place
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import PgLogin, sql

STDERR_KEPT = 16384
MISSING = (
    "{program} is not installed on this host; install the PostgreSQL client matching the server "
    "(e.g. postgresql-client-15), or run it inside the compose service (compose_project_src)."
)
VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")

# The relations a logical dump carries data for: user tables, not temporary, not members of an extension.
USER_RELATIONS = """
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND c.relpersistence <> 't'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
"""
TABLES = "SELECT n.nspname AS schema, c.relname AS name" + USER_RELATIONS + "AND c.relkind = 'r' ORDER BY 1, 2"
TABLE_NAMES = "SELECT n.nspname || '.' || c.relname AS name" + USER_RELATIONS + "AND c.relkind IN ('r', 'p') ORDER BY 1"
DATABASE_SETTINGS = (
    "SELECT pg_catalog.pg_get_userbyid(datdba) AS owner, pg_catalog.pg_encoding_to_char(encoding) AS encoding, "
    'datcollate AS "collate", datctype AS ctype FROM pg_catalog.pg_database WHERE datname = %s'
)
OBJECTS = "SELECT c.relkind AS kind, count(*) AS n" + USER_RELATIONS + "GROUP BY 1"
SEQUENCES = (
    "SELECT schemaname || '.' || sequencename AS name, last_value FROM pg_catalog.pg_sequences "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)
KINDS = {"r": "tables", "p": "partitioned_tables", "i": "indexes", "S": "sequences", "v": "views", "m": "matviews"}


def major_of(version_text: str) -> int | None:
    found = VERSION.search(version_text)
    return int(found.group(1)) if found else None


def catalog(conn: t.Any) -> dict[str, t.Any]:
    """What a restore must reproduce, read in the caller's transaction: exact row counts per table, the count of
    each kind of relation, and each sequence's value."""
    with conn.cursor() as cur:
        cur.execute(TABLES)
        tables = cur.fetchall()
        counts: dict[str, int] = {}
        if tables:
            query = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {}, count(*) FROM {}.{}").format(
                    sql.Literal(f"{schema}.{name}"), sql.Identifier(schema), sql.Identifier(name)
                )
                for schema, name in tables
            )
            cur.execute(query)
            counts = {name: int(n) for name, n in cur.fetchall()}
        cur.execute(OBJECTS)
        objects = {KINDS[kind]: int(n) for kind, n in cur.fetchall() if kind in KINDS}
        cur.execute(SEQUENCES)
        sequences = dict(cur.fetchall())
    return {"tables": counts, "objects": objects, "sequences": sequences}


def differences(expected: dict[str, t.Any], found: dict[str, t.Any]) -> dict[str, list[str] | None]:
    """How a restored database differs from the manifest's record of the source, per comparison (row_counts,
    objects, sequences); each list is empty when it does not. Without a record of the objects (a plain dump's
    expected_of), objects is None (not compared) and only the tables and sequences it lists are compared."""
    strict = expected["objects"] is not None
    tables = []
    for name in sorted(set(expected["tables"]) | set(found["tables"])):
        want, got = expected["tables"].get(name), found["tables"].get(name)
        if want is None:
            if strict:
                tables.append(f"table {name} is restored but was not in the backup")
        elif got is None:
            tables.append(f"table {name} ({want} rows in the backup) is missing")
        elif want != got:
            tables.append(f"table {name} has {got} rows, the backup had {want}")
    objects = None
    if strict:
        objects = []
        for kind in sorted(set(expected["objects"]) | set(found["objects"])):
            want, got = expected["objects"].get(kind, 0), found["objects"].get(kind, 0)
            if want != got:
                objects.append(f"{got} {kind} restored, the backup had {want}")
    sequences = []
    for name, want in sorted(expected["sequences"].items()):
        if found["sequences"].get(name) != want:
            sequences.append(f"sequence {name} is at {found['sequences'].get(name)}, the backup had it at {want}")
    return {"row_counts": tables, "objects": objects, "sequences": sequences}


def compare(expected: dict[str, t.Any], found: dict[str, t.Any]) -> list[str]:
    """Every difference of differences(), in one list; empty when the restored database matches."""
    return [problem for problems in differences(expected, found).values() for problem in problems or []]


@dataclass(frozen=True)
class ClientPlace:
    """Where the PostgreSQL client programs run: the options of tools_argument_spec once checked (jobs aside)."""

    service: str  # compose_service
    project: ProjectRef | None  # its compose project; None on the host

    @classmethod
    def of(cls, params: Mapping[str, t.Any]) -> ClientPlace:
        return cls(params["compose_service"], ProjectRef.of_service(params))


class Tools:
    """Where the PostgreSQL client programs run (a Place: the host or the compose service) and how they reach the
    server."""

    def __init__(self, module: t.Any, login: PgLogin, client: ClientPlace, application: str) -> None:
        self.module = module
        ref = client.project
        project = service_project(module, ref, client.service, BackupError) if ref else None
        self.place = Place(module, BackupError, project, client.service)
        libpq = login.libpq(application)
        self.env = {"PGAPPNAME": application, "PGCONNECT_TIMEOUT": str(libpq["connect_timeout"])}
        for key, name in (("password", "PGPASSWORD"), ("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
            if key in libpq and not (project and key == "sslrootcert"):
                self.env[name] = str(libpq[key])
        self.conn_args = ["-h", str(libpq["host"]), "-p", str(libpq["port"]), "-U", str(libpq["user"]), "-w"]

    @property
    def project(self) -> ComposeProject | None:
        return self.place.project

    @property
    def service(self) -> str:
        return self.place.service

    @property
    def where(self) -> str:
        return self.place.where

    def argv(self, program: str, *args: str) -> list[str]:
        return self.place.argv(program, *args, env_names=self.env, missing=MISSING.format(program=program))

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.place.environ(self.env)}

    def output(self, program: str, *args: str) -> str:
        """The output of a short command; a failure is an error naming it."""
        return self.place.output(program, *args, env=self.env, missing=MISSING.format(program=program))

    def version(self, program: str) -> tuple[int, str]:
        text = self.output(program, "--version").strip()
        major = major_of(text)
        if major is None:
            raise BackupError(f"`{program} --version` in {self.where} printed no PostgreSQL version: {text[:200]}")
        return major, text

    def run(
        self,
        program: str,
        *args: str,
        stdin_path: str | None = None,
        stdout_path: str | None = None,
        stdin_lines: t.Iterable[bytes] | None = None,
    ) -> tuple[int, str, str | None]:
        """(exit code, the end of stderr, sha256 of stdout when it went to stdout_path). Output streams to the
        file in blocks, input from stdin_lines is fed in blocks: a dump never sits in memory."""
        argv = self.argv(program, *args)
        stdin: t.Any = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
        if stdin_lines is not None:
            stdin = subprocess.PIPE
        out = open(stdout_path, "xb") if stdout_path else None  # noqa: SIM115
        proc: subprocess.Popen[bytes] | None = None
        try:
            # run_command cannot stream stdout to a file while hashing it, and a dump must never sit in memory.
            proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
                argv,
                stdin=stdin,
                stdout=subprocess.PIPE if out else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self.environ(),
            )
            errors: list[bytes] = []
            reader = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""))
            reader.start()
            feeder = None
            if stdin_lines is not None:
                feeder = threading.Thread(target=feed, args=(proc, stdin_lines))
                feeder.start()
            digest = None
            stdout = proc.stdout
            if out is not None and stdout is not None:
                hashing = hashlib.sha256()
                for block in iter(lambda: stdout.read(CHUNK), b""):
                    out.write(block)
                    hashing.update(block)
                fsync_file(out)
                digest = hashing.hexdigest()
            rc = proc.wait()
            reader.join()
            if feeder is not None:
                feeder.join()
        except BaseException:
            # A write that failed (a full disk) must not leave the program running on without a reader.
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        finally:
            if out is not None:
                out.close()
            if stdin_path:
                stdin.close()  # type: ignore[union-attr]
        return rc, b"".join(errors)[-STDERR_KEPT:].decode(errors="replace").strip(), digest

    def must(
        self,
        program: str,
        *args: str,
        what: str,
        stdin_path: str | None = None,
        stdout_path: str | None = None,
        stdin_lines: t.Iterable[bytes] | None = None,
    ) -> str | None:
        rc, err, digest = self.run(
            program, *args, stdin_path=stdin_path, stdout_path=stdout_path, stdin_lines=stdin_lines
        )
        if rc != 0:
            raise BackupError(
                f"{what} failed in {self.where}: {exit_reason(program, rc, self.project is not None, err)}"
            )
        return digest


def feed(proc: subprocess.Popen[bytes], lines: t.Iterable[bytes]) -> None:
    """Writes lines to a program's stdin in blocks. A program that stopped reading (it failed) ends the feed; a
    source that cannot be read to its end kills the program, which must not take a part for the whole."""
    pipe = t.cast(t.IO[bytes], proc.stdin)
    block: list[bytes] = []
    size = 0
    try:
        for line in lines:
            block.append(line)
            size += len(line)
            if size >= CHUNK:
                pipe.write(b"".join(block))
                block, size = [], 0
        pipe.write(b"".join(block))
    except BrokenPipeError:
        pass
    except (OSError, EOFError, zlib.error):
        proc.kill()
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def exit_reason(program: str, rc: int, in_service: bool, err: str = "") -> str:
    """How a client program ended, for a failure message. A program killed on the host has a negative exit code;
    in a compose service, `docker compose exec` reports a program killed by signal N as 128 + N, as a shell does."""
    signum = -rc if rc < 0 else rc - 128 if in_service and 128 < rc < 160 else 0
    killed = ""
    if signum:
        try:
            killed = f" (killed by signal {signum}, {signal.Signals(signum).name})"
        except ValueError:
            killed = f" (killed by signal {signum})"
    return f"{program} exited with {rc}{killed}" + (f": {err[-1500:]}" if err else "")


def tools_argument_spec() -> dict[str, t.Any]:
    """Where the client programs run, documented once in the stackops.runbooks.postgres.tools doc fragment."""
    return {
        **project_argument_spec(),
        "compose_service": {"type": "str", "default": "postgres"},
        "jobs": {"type": "int", "default": 1},
    }


GLOBALS_TRAILER = "-- PostgreSQL database cluster dump complete"
IDENT = r'("(?:[^"]|"")*"|[^\s;"]+)'
ROLE_LINE = re.compile(rf"^(?:CREATE|ALTER) ROLE {IDENT}")
GRANT_LINE = re.compile(rf"^GRANT {IDENT} TO {IDENT}")


def unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def role_statements(globals_sql: str, existing: set[str]) -> tuple[list[str], list[str]]:
    """From `pg_dumpall --globals-only` output (one statement a line), the statements that create the roles the
    target server lacks, with their attributes, settings and memberships; roles it has are left as they are.
    Returns (statements, roles created)."""
    statements, created = [], []
    for line in globals_sql.splitlines():
        role = ROLE_LINE.match(line)
        grant = GRANT_LINE.match(line)
        name = unquote(role.group(1)) if role else unquote(grant.group(2)) if grant else None
        if name is None or name in existing:
            continue
        statements.append(line)
        if line.startswith("CREATE ROLE "):
            created.append(name)
    return statements, created


# --- plain-SQL dumps made by hand (`pg_dump db > backup_YYYYMMDD.sql`, maybe gzipped) ------------------------------

PLAIN_HEADER = "-- PostgreSQL database dump"
PLAIN_TRAILER = "-- PostgreSQL database dump complete"
CLUSTER_HEADER = "-- PostgreSQL database cluster dump"
HEADER_LINES = 40
GZIP_MAGIC = b"\x1f\x8b"
CUSTOM_MAGIC = b"PGDMP"
QIDENT = r'"(?:[^"]|"")*"|[^\s;."(]+'
DUMPED = re.compile(r"^-- Dumped (from database|by pg_dump) version (\S+.*)$")
CREATE_TABLE = re.compile(rf"^CREATE (?:UNLOGGED |FOREIGN )?TABLE ({QIDENT})\.({QIDENT}) ")
COPY_START = re.compile(rf"^COPY ({QIDENT})\.({QIDENT}) .*FROM stdin;$")
SETVAL = re.compile(r"^SELECT pg_catalog\.setval\('((?:[^']|'')+)', (\d+), (true|false)\);$")
OWNER = re.compile(rf" OWNER TO ({QIDENT});$")
GRANTEE = re.compile(rf"^GRANT .* TO ({QIDENT})(?: WITH GRANT OPTION)?;$")
CLIENT_ENCODING = re.compile(r"^SET client_encoding = '([^']+)';$")
CREATE_DATABASE = re.compile(rf"^CREATE DATABASE ({QIDENT}) WITH (.*);$")
DATABASE_OPTION = re.compile(r"\b(ENCODING|LOCALE|LC_COLLATE|LC_CTYPE) = '([^']*)'")
DATABASE_OWNER = re.compile(rf"^ALTER DATABASE ({QIDENT}) OWNER TO ({QIDENT});$")
# Statements about the database itself, which `pg_dump -C` writes before `\connect`ing to it. Fed to a scratch
# database they would act on the live database of that name, so a trial or restore holds them back.
DATABASE_LEVEL = re.compile(
    r"^(?:\\c(?:onnect)?\s|(?:CREATE|DROP|ALTER) DATABASE\s|COMMENT ON DATABASE\s|SECURITY LABEL .* ON DATABASE\s"
    r"|(?:GRANT|REVOKE) .* ON DATABASE\s)"
)


@dataclass
class PlainDump:
    """What a plain-SQL dump says about itself, read in one pass over its lines."""

    header: bool = False
    cluster: bool = False
    complete: bool = False
    after_trailer: str | None = None  # the first statement after the trailer: the file was appended to
    server_version: str | None = None
    dump_version: str | None = None
    database: str | None = None  # named by CREATE DATABASE (pg_dump -C)
    encoding: str | None = None
    collate: str | None = None
    ctype: str | None = None
    owner: str | None = None  # of the database, with -C
    tables: list[str] = field(default_factory=list)  # every CREATE TABLE, schema.name
    rows: dict[str, int] = field(default_factory=dict)  # the rows of each COPY block
    sequences: dict[str, int | None] = field(default_factory=dict)  # setval; None when not yet called
    roles: list[str] = field(default_factory=list)  # owners and grantees the dump needs
    open_copy: str | None = None  # a COPY block the file ends in
    held_back: int = 0  # database-level lines a restore leaves out
    lines: int = 0

    @property
    def server_major(self) -> int | None:
        return major_of(f"(PostgreSQL) {self.server_version}") if self.server_version else None

    @property
    def dump_major(self) -> int | None:
        return major_of(f"(PostgreSQL) {self.dump_version}") if self.dump_version else None

    def facts(self) -> dict[str, t.Any]:
        """What a result and a manifest record about the dump."""
        return {
            "dumped_from": self.server_version,
            "dumped_by": self.dump_version,
            "database": self.database,
            "encoding": self.encoding,
            "tables": len(self.tables),
            "rows": sum(self.rows.values()),
            "database_statements_held_back": self.held_back,
        }


def in_copy(lines: t.Iterable[bytes]) -> t.Iterator[tuple[bytes, str, str | None]]:
    """Each line as bytes and as text, with the table whose COPY data it is (None for SQL, and for COPY's own
    lines): data lines are never read as statements."""
    copying: str | None = None
    for raw in lines:
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if copying is not None:
            if line == "\\.":
                copying = None
                yield raw, line, None
            else:
                yield raw, line, copying
            continue
        if match := COPY_START.match(line):
            copying = f"{unquote(match.group(1))}.{unquote(match.group(2))}"
        yield raw, line, None


def parse_plain(lines: t.Iterable[bytes]) -> PlainDump:
    """Reads a plain dump's lines (bytes, with or without their newline) and notes what it declares. Pure."""
    found = PlainDump()
    roles: set[str] = set()
    table: str | None = None
    for number, (_raw, line, table) in enumerate(in_copy(lines), 1):
        found.lines = number
        if table is not None:
            found.rows[table] = found.rows.get(table, 0) + 1
            continue
        if number <= HEADER_LINES and line in (PLAIN_HEADER, CLUSTER_HEADER):
            found.header = found.header or line == PLAIN_HEADER
            found.cluster = found.cluster or line == CLUSTER_HEADER
        if line == PLAIN_TRAILER:
            found.complete, found.after_trailer = True, None
            continue
        if found.complete and line and not line.startswith(("--", "\\unrestrict ")) and found.after_trailer is None:
            found.after_trailer = line[:80]
        if DATABASE_LEVEL.match(line):
            found.held_back += 1
        note(found, roles, line)
    if table is not None:
        found.open_copy = table
    found.roles = sorted(roles - {"PUBLIC", "public"})
    return found


def note(found: PlainDump, roles: set[str], line: str) -> None:
    """What one line of SQL (not COPY data) declares."""
    if match := COPY_START.match(line):
        found.rows.setdefault(f"{unquote(match.group(1))}.{unquote(match.group(2))}", 0)
    elif match := CREATE_TABLE.match(line):
        found.tables.append(f"{unquote(match.group(1))}.{unquote(match.group(2))}")
    elif match := SETVAL.match(line):
        name = ".".join(unquote(part) for part in split_qualified(match.group(1).replace("''", "'")))
        found.sequences[name] = int(match.group(2)) if match.group(3) == "true" else None
    elif match := DUMPED.match(line):
        if match.group(1) == "from database":
            found.server_version = match.group(2)
        else:
            found.dump_version = match.group(2)
    elif match := CLIENT_ENCODING.match(line):
        found.encoding = found.encoding or match.group(1)
    elif match := CREATE_DATABASE.match(line):
        found.database = unquote(match.group(1))
        options = dict(DATABASE_OPTION.findall(match.group(2)))
        found.encoding = options.get("ENCODING", found.encoding)
        found.collate = options.get("LC_COLLATE", options.get("LOCALE"))
        found.ctype = options.get("LC_CTYPE", options.get("LOCALE"))
    elif match := DATABASE_OWNER.match(line):
        found.owner = unquote(match.group(2))
    elif match := OWNER.search(line) or GRANTEE.match(line):
        roles.add(unquote(match.group(1)))


def restorable(lines: t.Iterable[bytes]) -> t.Iterator[bytes]:
    """The dump's lines without its database-level statements (DATABASE_LEVEL), which `pg_dump -C` writes and
    which, in a scratch database, would act on the live database of that name."""
    for raw, line, table in in_copy(lines):
        if table is not None or not DATABASE_LEVEL.match(line):
            yield raw


def split_qualified(name: str) -> list[str]:
    """`schema.name` with either part maybe quoted, as setval's argument has it."""
    return re.findall(r'"(?:[^"]|"")*"|[^.]+', name)


def plain_problems(dump: PlainDump) -> list[str]:
    """Why a file is not a complete plain dump of one database; empty when it is."""
    if dump.cluster and not dump.header:
        return [
            "it is a pg_dumpall dump of a whole cluster, not of one database; restore it with psql by hand, or "
            "dump the one database with pg_dump"
        ]
    if not dump.header:
        return [f"it does not start like a pg_dump plain-SQL dump (no {PLAIN_HEADER!r} line in its first lines)"]
    problems = []
    if dump.open_copy:
        problems.append(f"it ends inside the data of table {dump.open_copy}")
    if not dump.complete:
        problems.append(f"it lacks the closing line {PLAIN_TRAILER!r} that pg_dump writes last: it was cut short")
    elif dump.after_trailer:
        problems.append(f"it goes on after pg_dump's closing line ({dump.after_trailer!r})")
    return problems


def sniff(head: bytes) -> str:
    """`gzip`, `custom` (a pg_dump -Fc archive) or `text`, from a file's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return "custom" if head.startswith(CUSTOM_MAGIC) else "text"


def text_of(handle: t.Any, kind: str) -> t.Any:
    """The dump's text from a binary file, decompressed on the fly when it is gzipped."""
    return gzip.GzipFile(fileobj=handle) if kind == "gzip" else io.BufferedReader(handle, CHUNK)


class Hashing(io.RawIOBase):
    """A binary file whose bytes are hashed as they are read."""

    def __init__(self, handle: t.IO[bytes]) -> None:
        super().__init__()
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        block = self.handle.read(len(buffer))
        buffer[: len(block)] = block
        self.digest.update(block)
        self.size += len(block)
        return len(block)


def read_plain(path: str) -> tuple[PlainDump, dict[str, t.Any]]:
    """Reads the whole file once: what it declares, and its sha256, size and compression; BackupError naming the
    file and the fix when it is not a complete plain dump."""
    fix = "Give a complete `pg_dump DB > file.sql` dump (gzipped or not); nothing was changed."
    if not os.path.isfile(path):
        raise BackupError(f"src {path} is not a file on this host. {fix}")
    try:
        with open(path, "rb") as raw:
            kind = sniff(raw.read(5))
            if kind == "custom":
                raise BackupError(
                    f"{path} is a pg_dump custom-format archive without a pg_backup manifest, not a plain-SQL dump. "
                    "Convert it with `pg_restore -f file.sql` first, or restore it with pg_restore by hand; nothing "
                    "was changed."
                )
            raw.seek(0)
            hashed = Hashing(raw)
            dump = parse_plain(iter(text_of(hashed, kind).readline, b""))
            while hashed.read(CHUNK):  # what the gzip reader left unread counts in the checksum too
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"{path} cannot be read to its end ({exc}): it is damaged or cut short. {fix}") from None
    problems = plain_problems(dump)
    if problems:
        raise BackupError(f"{path} is refused: {'; '.join(problems)}. {fix}")
    return dump, {"path": path, "sha256": hashed.digest.hexdigest(), "size": hashed.size, "compressed": kind == "gzip"}


def version_refusal(src: str, server_major: int | None, dump_major: int | None, target_major: int, where: str) -> str:
    """Why a dump may not be restored on a server of target_major (empty when it may). pg_dump's output is made for
    servers of its own major version or newer, not older, not even when it dumped an older server; a PostgreSQL 17
    pg_dump writes `SET transaction_timeout`, which PostgreSQL 15 rejects."""
    known = [major for major in (server_major, dump_major) if major]
    need = max(known, default=0)
    if target_major >= need:
        return ""
    made = f"from PostgreSQL {server_major}" if server_major else ""
    made += f"{' ' if made else ''}by pg_dump {dump_major}" if dump_major else ""
    return (
        f"{src} was dumped {made}; the target server {where} runs PostgreSQL {target_major}, an older major version, "
        f"which cannot be relied on to load it. Restore it onto a server running PostgreSQL {need} or later (or "
        f"upgrade this one); nothing was changed."
    )


def client_refusal(program: str, client_major: int, dump_major: int | None, src: str, where: str) -> str:
    """Why the client program cannot read a dump that pg_dump dump_major wrote (empty when it can)."""
    if not dump_major or client_major >= dump_major:
        return ""
    return (
        f"{program} {client_major} in {where} cannot read {src}, which pg_dump {dump_major} wrote; use a client of "
        f"version {dump_major} or later, or run it inside the compose service of a server that new "
        "(compose_project_src). Nothing was changed."
    )


def database_refusal(src: str, dump: PlainDump, expected: str, live_tables: list[str] | None) -> str:
    """Why a plain dump seems to be of another database than `expected` (empty when it does not). A dump made with
    -C names its database, which must be `expected`. One made without names none: it is refused when the live
    database `expected` has tables and the dump creates none of them; without a live database there is nothing
    to compare with (nor to lose)."""
    fix = "Name the database the dump is of, or set accept_other_database=true to use it anyway; nothing was changed."
    if dump.database is not None:
        if dump.database == expected:
            return ""
        return f"{src} is a dump of database {dump.database} (its CREATE DATABASE line), not of {expected}. {fix}"
    if not live_tables or set(dump.tables) & set(live_tables):
        return ""
    theirs = ", ".join(dump.tables[:3]) + (" ..." if len(dump.tables) > 3 else "") if dump.tables else "no table"
    ours = ", ".join(live_tables[:3]) + (" ..." if len(live_tables) > 3 else "")
    return (
        f"{src} looks like a dump of another database: it creates {theirs}, and shares no table with database "
        f"{expected} ({ours}). {fix}"
    )


def expected_of(dump: PlainDump) -> dict[str, t.Any]:
    """What a trial restore of the dump must hold, in the shape compare() reads: the rows of each COPY block and
    the sequences' values. A plain dump does not list its indexes or views, so objects are not compared, and
    tables it has no COPY block for (data as INSERTs, or excluded) are only required to exist."""
    return {"tables": dict(dump.rows), "objects": None, "sequences": dict(dump.sequences)}


def database_options(dump: PlainDump, live: dict[str, t.Any]) -> dict[str, t.Any]:
    """Owner, encoding and locale of a database the dump is restored into: what the dump declares (-C), the rest
    from the live database it stands for (empty when there is none: the server's defaults, login_user's)."""
    return {key: getattr(dump, key) or live.get(key) for key in ("owner", "encoding", "collate", "ctype")}


def create_database(admin: t.Any, name: str, options: dict[str, str | None], comment: str) -> None:
    """CREATE DATABASE from template0 with the options given (owner, encoding, collate, ctype) and a comment that
    marks it as a scratch database of this run."""
    clauses = [sql.SQL("WITH TEMPLATE template0")]
    for key, keyword in (("encoding", "ENCODING"), ("collate", "LC_COLLATE"), ("ctype", "LC_CTYPE")):
        if options.get(key):
            clauses.append(sql.SQL(f"{keyword} {{}}").format(sql.Literal(options[key])))
    if options.get("owner"):
        clauses.append(sql.SQL("OWNER {}").format(sql.Identifier(options["owner"])))
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} ").format(sql.Identifier(name)) + sql.SQL(" ").join(clauses))
        cur.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))


def drop_database(admin: t.Any, name: str) -> None:
    force = sql.SQL(" WITH (FORCE)") if admin.server_version >= 130000 else sql.SQL("")
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)


def load_plain(tools: Tools, path: str, database: str) -> None:
    """Runs the dump in database with psql, all of it in one transaction that the first error rolls back; the
    database-level statements are held back (restorable)."""
    with open(path, "rb") as raw:
        kind = sniff(raw.read(2))
        raw.seek(0)
        text = text_of(raw, kind)
        tools.must(
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            *tools.conn_args,
            "-d",
            database,
            "-f",
            "-",
            what="The trial restore with psql",
            stdin_lines=restorable(iter(text.readline, b"")),
        )
