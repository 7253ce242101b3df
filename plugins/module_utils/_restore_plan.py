# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""The pure decisions of pg_restore: its options once checked, what it read of the target database, and the plans
of a restore (beside the live database, then swapped in), a drill, a revert and a cleanup. Nothing here talks to a
server or reads a file, so every rule is table-tested; `_restore.py` reads and carries the plans out."""

from __future__ import annotations

import os
import re
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ansible_collections.stackops.runbooks.plugins.module_utils._backup import MANIFEST, BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils._common import options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Step
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import (
    ClientPlace,
    PlainDump,
    database_options,
    expected_of,
    major_of,
    version_refusal,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    PgLogin,
    check_database_name,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._proofs import check_smoke_spec

MAX_NAME = 63


@dataclass(frozen=True)
class Options:
    """pg_restore's options once checked: what its operations read, instead of the module's params."""

    db: str
    operation: str  # restore, drill, cleanup, revert
    src: str | None
    pick: str | None
    source_db: str | None
    accept_other_database: bool
    force: bool
    terminate_connections: bool
    keep_previous: int | None
    restore_globals: bool
    require_sentinel: bool
    amcheck: bool
    smoke_queries: tuple[Mapping[str, t.Any], ...]
    jobs: int
    login: PgLogin
    client: ClientPlace  # where pg_restore and psql run

    @property
    def drill(self) -> bool:
        return self.operation == "drill"


def check_inputs(p: Mapping[str, t.Any]) -> Options:
    """Everything that can be judged without the server, so that a bad option changes nothing."""
    check_database_name(p["db"], "db", new=True)
    if p["login_db"] == p["db"]:
        raise BackupError(
            f"login_db is {p['db']}, the database being replaced; a session cannot rename the database it is "
            "connected to. Set login_db to another database (postgres)."
        )
    if p["keep_previous"] is not None and p["keep_previous"] < 0:
        raise BackupError(f"keep_previous must be 0 or more, not {p['keep_previous']}.")
    if p["operation"] == "cleanup" and p["keep_previous"] is None:
        raise BackupError("operation=cleanup needs keep_previous: how many earlier copies to keep (0 for none).")
    if p["operation"] in ("restore", "drill"):
        check_source(p)
    return options_of(Options, p, login=PgLogin.of(p), client=ClientPlace.of(p))


def check_source(p: Mapping[str, t.Any]) -> None:
    """The options of a restore or drill."""
    if not p["src"]:
        raise BackupError(
            "src is required to restore: a backup directory, the backup folder with pick=latest, or a plain-SQL dump "
            "(.sql or .sql.gz)."
        )
    if p["source_db"] is not None:
        check_database_name(p["source_db"], "source_db")
    check_smoke_spec(p["smoke_queries"])
    if p["jobs"] < 1:
        raise BackupError(f"jobs must be 1 or more, not {p['jobs']}.")
    if len(f"{p['db']}_pre_restore_00000000000000".encode()) > MAX_NAME:
        raise BackupError(
            f"db {p['db']} is too long: with _pre_restore_<time> added it would pass PostgreSQL's {MAX_NAME}-byte "
            "limit on names."
        )


@dataclass
class Target:
    """O(db) on the server as this run found it."""

    exists: bool
    tables: list[str] = field(default_factory=list)
    sessions: list[dict[str, t.Any]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # owner, encoding, collate, ctype


def like_literal(text: str) -> str:
    """text matched literally by LIKE: a database named `%` must not match every scratch database."""
    return re.sub(r"([\\%_])", r"\\\1", text)


def plain_source(src: str, pick: str | None, isfile: t.Callable[[str], bool] = os.path.isfile) -> str | None:
    """src when it is a plain-SQL dump: a file that is not part of a backup set (no manifest beside it)."""
    if pick or not isfile(src) or isfile(os.path.join(os.path.dirname(src), MANIFEST)):
        return None
    return os.path.normpath(src)


def plain_manifest(path: str, dump: PlainDump, origin: dict[str, t.Any], target: Target) -> dict[str, t.Any]:
    """What restore() reads from a manifest, for a plain dump: what it declares, the rest from the live database
    it replaces (owner and locale, which a dump made without -C does not carry)."""
    return {
        "name": os.path.basename(path),
        "plain": {**origin, **dump.facts(), "roles": dump.roles},
        "dump": path,
        **database_options(dump, target.settings),
        "server_version_num": dump.server_major * 10000 if dump.server_major else None,
        "dump_version": f"pg_dump (PostgreSQL) {dump.dump_version}" if dump.dump_version else None,
        "sentinel": None,
        "globals": None,
        **expected_of(dump),
    }


def majors(manifest: Mapping[str, t.Any]) -> tuple[int | None, int | None]:
    """The major versions of the server a backup came from and of the pg_dump that wrote it."""
    server = manifest.get("server_version_num")
    return (int(server) // 10000 if server else None), major_of(manifest.get("dump_version") or "")


def older_server_refusal(o: Options, src: str, manifest: Mapping[str, t.Any], server_major: int) -> str:
    """Why a backup of a newer PostgreSQL than the target server is refused (see version_refusal); empty if not."""
    server, dump = majors(manifest)
    return version_refusal(src, server, dump, server_major, f"{o.login.host}:{o.login.port}")


def refuse_replacing(o: Options, target: Target, previous: str) -> None:
    """BackupError when O(db) may not be replaced as asked: it holds tables, or sessions are connected to it."""
    if target.tables and not o.force:
        shown = ", ".join(target.tables[:5]) + (" ..." if len(target.tables) > 5 else "")
        raise BackupError(
            f"Database {o.db} holds {len(target.tables)} tables ({shown}). Replacing it needs force=true; it would "
            f"be kept as {previous}. Nothing was changed."
        )
    if target.sessions and not o.terminate_connections:
        who = ", ".join(
            f"pid {s['pid']} {s['usename']}@{s['client'] or 'local'} ({s['application_name']})"
            for s in target.sessions[:5]
        )
        raise BackupError(
            f"{len(target.sessions)} sessions are connected to {o.db}: {who}. Stop the application first (the "
            "restore playbook does), or set terminate_connections=true. Nothing was changed."
        )


def plan_restore(
    o: Options,
    root: str,
    target: Target,
    scratch: str,
    previous: str,
    roles: list[str],
    plain: bool = False,
    statements: Sequence[str] = (),
) -> list[Step]:
    """The steps of a restore or drill, or BackupError when the target may not be replaced; nothing has changed yet
    either way. Each step's `phase` is the part of the executor that carries it out (one part may show as several
    steps); the backup was verified while it was read, so that step has none."""
    if o.drill:
        target = Target(exists=False)  # a drill never touches a database of that name
    refuse_replacing(o, target, previous)
    steps: list[tuple[str, str]] = []
    if plain:
        steps += [
            (f"read {root} to its end: a complete pg_dump plain dump", ""),
            (
                f"create database {scratch} and run the dump in it with psql -X -v ON_ERROR_STOP=1 "
                "--single-transaction",
                "load",
            ),
            (
                f"ANALYZE {scratch} and compare its row counts and sequences with the dump's COPY data and "
                "setval calls",
                "check",
            ),
        ]
    else:
        steps.append((f"verify {root} against its manifest", ""))
        if roles or statements:
            steps.append((f"create the missing roles {', '.join(roles)}", "roles"))
        steps += [
            (f"create database {scratch} and restore the dump into it with pg_restore --exit-on-error", "load"),
            (f"ANALYZE {scratch} and compare its row counts, objects and sequences with the manifest", "check"),
        ]
    extra = ["the sentinel row"] + (["amcheck"] if o.amcheck else [])
    extra += [f"smoke query {q['name']}" for q in o.smoke_queries]
    steps.append((f"check {', '.join(extra)}", "check"))
    if o.drill:
        steps.append((f"drop {scratch}: a drill replaces nothing", "drop"))
    else:
        steps.append(
            (f"reset {scratch}'s statistics counters: they count the restore's reads, not the site's", "check")
        )
        if target.sessions:
            steps.append((f"end the {len(target.sessions)} sessions connected to {o.db}", "swap"))
        if target.exists:
            steps.append((f"in one transaction, rename {o.db} to {previous} and {scratch} to {o.db}", "swap"))
        else:
            steps.append((f"rename {scratch} to {o.db}", "swap"))
        if o.keep_previous is not None:
            steps.append((f"drop the earlier copies of {o.db} beyond the newest {o.keep_previous}", "prune"))
    return [phase_step(text, phase, statements) for text, phase in steps]


def phase_step(text: str, phase: str, statements: Sequence[str]) -> Step:
    if phase == "roles":
        return Step(text, {"phase": phase, "sql": tuple(statements)})
    return Step(text, {"phase": phase} if phase else {})


def earlier_copies(db: str, names: t.Iterable[str], kind: str = "pre_restore") -> list[str]:
    """The `<db>_<kind>_<time>` databases among names, newest first."""
    pattern = re.compile(rf"^{re.escape(db)}_{kind}_\d{{14}}$")
    return sorted((n for n in names if pattern.match(n)), reverse=True)


def beyond_kept(db: str, names: list[str], keep: int) -> list[str]:
    """The earlier copies, and the restored databases set aside by a revert, beyond the newest keep."""
    return earlier_copies(db, names, "pre_restore")[keep:] + earlier_copies(db, names, "reverted")[keep:]


def plan_cleanup(gone: list[str]) -> list[Step]:
    return [Step(f"drop database {name}", {"name": name}) for name in gone]


def copy_to_revert(db: str, names: list[str]) -> str:
    """The newest earlier copy, which a revert puts back; BackupError when there is none."""
    copies = earlier_copies(db, names)
    if not copies:
        raise BackupError(f"There is no earlier copy of {db} ({db}_pre_restore_<time>) to put back.")
    return copies[0]


def plan_revert(o: Options, copy: str, target: Target, aside: str) -> list[Step]:
    """The revert's one step, or BackupError when sessions are connected to O(db) and may not be ended."""
    if target.sessions and not o.terminate_connections:
        raise BackupError(
            f"{len(target.sessions)} sessions are connected to {o.db}; stop the application first, or set "
            "terminate_connections=true. Nothing was changed."
        )
    return [Step(f"in one transaction, rename {o.db} to {aside} and {copy} to {o.db}", {"copy": copy})]
