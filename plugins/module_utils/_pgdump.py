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
import hashlib
import os
import re
import signal
import subprocess
import threading
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import CHUNK, BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeProject,
    project_argument_spec,
    service_project,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import connect_params, sql

STDERR_KEPT = 16384
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


def compare(expected: dict[str, t.Any], found: dict[str, t.Any]) -> list[str]:
    """How a restored database differs from the manifest's record of the source; empty when it does not."""
    problems = []
    for name in sorted(set(expected["tables"]) | set(found["tables"])):
        want, got = expected["tables"].get(name), found["tables"].get(name)
        if want is None:
            problems.append(f"table {name} is restored but was not in the backup")
        elif got is None:
            problems.append(f"table {name} ({want} rows in the backup) is missing")
        elif want != got:
            problems.append(f"table {name} has {got} rows, the backup had {want}")
    for kind in sorted(set(expected["objects"]) | set(found["objects"])):
        want, got = expected["objects"].get(kind, 0), found["objects"].get(kind, 0)
        if want != got:
            problems.append(f"{got} {kind} restored, the backup had {want}")
    for name, want in sorted(expected["sequences"].items()):
        if found["sequences"].get(name) != want:
            problems.append(f"sequence {name} is at {found['sequences'].get(name)}, the backup had it at {want}")
    return problems


class Tools:
    """Where the PostgreSQL client programs run and how they reach the server."""

    def __init__(self, module: t.Any, params: dict[str, t.Any], application: str) -> None:
        self.module = module
        self.params = params
        self.project: ComposeProject | None = None
        self.service: str = params["compose_service"]
        if params["compose_project_src"]:
            self.project = service_project(module, params, self.service, BackupError)
        libpq = connect_params(params, application)
        self.env = {"PGAPPNAME": application, "PGCONNECT_TIMEOUT": str(libpq["connect_timeout"])}
        for key, name in (("password", "PGPASSWORD"), ("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
            if key in libpq and not (self.project and key == "sslrootcert"):
                self.env[name] = str(libpq[key])
        self.conn_args = ["-h", str(libpq["host"]), "-p", str(libpq["port"]), "-U", str(libpq["user"]), "-w"]

    @property
    def where(self) -> str:
        return f"service {self.service}" if self.project else "this host"

    def argv(self, program: str, *args: str) -> list[str]:
        if self.project is None:
            binary = self.module.get_bin_path(program)
            if not binary:
                raise BackupError(
                    f"{program} is not installed on this host; install the PostgreSQL client matching the server "
                    "(e.g. postgresql-client-15), or run it inside the compose service (compose_project_src)."
                )
            return [binary, *args]
        names = [arg for name in sorted(self.env) for arg in ("-e", name)]
        return [*self.project.base_args(), "exec", "-T", *names, self.service, program, *args]

    def overrides(self) -> dict[str, str]:
        """What the programs' environment adds: the compose project's and libpq's settings (the password too)."""
        return {**(self.project.environ() if self.project else {}), **self.env}

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.overrides()}

    def output(self, program: str, *args: str) -> str:
        """The output of a short command; a failure is an error naming it."""
        rc, out, err = self.module.run_command(self.argv(program, *args), environ_update=self.overrides())
        if rc != 0:
            why = (err or out).strip()
            raise BackupError(f"`{program} {' '.join(args)}` in {self.where} failed: {why}")
        return out

    def version(self, program: str) -> tuple[int, str]:
        text = self.output(program, "--version").strip()
        major = major_of(text)
        if major is None:
            raise BackupError(f"`{program} --version` in {self.where} printed no PostgreSQL version: {text[:200]}")
        return major, text

    def run(
        self, program: str, *args: str, stdin_path: str | None = None, stdout_path: str | None = None
    ) -> tuple[int, str, str | None]:
        """(exit code, the end of stderr, sha256 of stdout when it went to stdout_path). Output streams to the
        file in blocks: a dump never sits in memory."""
        argv = self.argv(program, *args)
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
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
            digest = None
            stdout = proc.stdout
            if out is not None and stdout is not None:
                hashing = hashlib.sha256()
                for block in iter(lambda: stdout.read(CHUNK), b""):
                    out.write(block)
                    hashing.update(block)
                out.flush()
                os.fsync(out.fileno())
                digest = hashing.hexdigest()
            rc = proc.wait()
            reader.join()
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
        self, program: str, *args: str, what: str, stdin_path: str | None = None, stdout_path: str | None = None
    ) -> str | None:
        rc, err, digest = self.run(program, *args, stdin_path=stdin_path, stdout_path=stdout_path)
        if rc != 0:
            raise BackupError(
                f"{what} failed in {self.where}: {exit_reason(program, rc, self.project is not None, err)}"
            )
        return digest

    @contextlib.contextmanager
    def container_dir(self) -> t.Iterator[str]:
        """A private directory made by mktemp in the service, removed afterwards whatever happens."""
        inside = self.output("mktemp", "-d", "-t", "stackops.XXXXXXXX").strip()
        try:
            yield inside
        finally:
            self.run("rm", "-rf", inside)

    def copy(self, source: str, target: str) -> None:
        """`docker compose cp`, with `service:path` on the container's side."""
        if self.project is None:
            raise BackupError("Copying into a service needs compose_project_src.")
        self.project.call("cp", source, target)


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
