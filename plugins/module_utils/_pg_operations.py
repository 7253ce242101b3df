"""pg_maintenance's operations: a missing database, settings (and pg_stat_statements), idle sessions, vacuum and
analyze, reindex. Each reads the server, decides with the pure functions of _pg_maintenance.py, turns the decision
into Steps (the pure *_steps functions below: the statements in the order they run) and carries them out through
one Recorder (module_utils/_operation), which check mode fills with the same statements.
"""

from __future__ import annotations

import time
import typing as t
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder, Step
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_maintenance import (
    IDLE_STATES,
    REINDEX_KINDS,
    VACUUM_KINDS,
    FileEntry,
    Guc,
    SettingChange,
    TablePlan,
    TableStat,
    Thresholds,
    check_reindex,
    configured,
    lenient,
    literal,
    pick_sessions,
    plan_settings,
    plan_tables,
    show,
    split_list,
    with_library,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    DatabaseError,
    PgLogin,
    check_database_name,
    redacted,
    rows,
    sql,
)

LIBRARY = "pg_stat_statements"
SPL = "shared_preload_libraries"
RELOAD_WAIT_S = 10.0

SETTINGS = (
    "SELECT name, setting, unit, vartype, context, source, min_val, max_val, enumvals, boot_val, pending_restart "
    "FROM pg_catalog.pg_settings"
)
FILE_SETTINGS = "SELECT sourcefile, seqno, name, setting FROM pg_catalog.pg_file_settings WHERE sourcefile IS NOT NULL"
SESSIONS = (
    "SELECT pid, usename AS user, datname AS database, application_name AS application, "
    "host(client_addr) AS client, state, backend_type, state_change, "
    "extract(epoch FROM now() - state_change)::float AS idle_s, left(query, 200) AS query "
    "FROM pg_catalog.pg_stat_activity ORDER BY state_change"
)
RELATION = (
    "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)"
)
USER_TABLES = (
    "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname !~ '^pg_(toast|temp_)'"
)
TABLE_STATS = (
    "SELECT c.oid, n.nspname AS schema, c.relname AS name, coalesce(s.n_live_tup, 0) AS live, "
    "coalesce(s.n_dead_tup, 0) AS dead, coalesce(s.n_mod_since_analyze, 0) AS modified, "
    "pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes, "
    "pg_total_relation_size(c.oid) AS total_bytes, s.last_vacuum, s.last_autovacuum, s.last_analyze, "
    "s.last_autoanalyze FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = ANY(%s::oid[]) "
    "ORDER BY n.nspname, c.relname"
)
# Ends a session only while it is still in the idle spell it was picked in. From PostgreSQL 14 the call waits until the
# process is gone (or the time runs out, and answers false).
TERMINATE_WHERE = (
    "AS ended FROM pg_catalog.pg_stat_activity "
    "WHERE pid = %(pid)s AND state = %(state)s AND state_change = %(state_change)s"
)
TERMINATE = "SELECT pg_terminate_backend(pid) " + TERMINATE_WHERE
TERMINATE_WAITING = "SELECT pg_terminate_backend(pid, %(wait_ms)s) " + TERMINATE_WHERE
TERMINATE_WAIT_MS = 5000
# Indexes a failed REINDEX CONCURRENTLY leaves behind: the new copy (_ccnew) or the old one (_ccold), invalid.
LEFTOVER_INDEXES = (
    "SELECT n.nspname AS schema, c.relname AS name FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT i.indisvalid AND c.relname ~ '_cc(new|old)[0-9]*$'"
)


def scope(option: str, value: t.Any) -> bool | list[str]:
    """vacuum, analyze and reindex: true/false, or the names of tables (and indexes)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, str):
        try:
            return boolean(value, strict=True)
        except TypeError:
            value = value.split(",")
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        found = [item.strip() for item in value if item.strip()]
        if found:
            return found
    raise StackopsError(f"{option} must be true, false or a list of table names, not {value!r}.")


@dataclass(frozen=True)
class Asked:
    """pg_maintenance's options once checked: what the operations read, instead of the module's params."""

    vacuum: bool | list[str]
    analyze: bool | list[str]
    reindex: bool | list[str]
    thresholds: Thresholds
    full: bool
    concurrently: bool
    lock_timeout: int
    terminate_idle: bool
    idle_for: int
    states: tuple[str, ...]
    session_filter: Mapping[str, t.Any] | None
    settings: Mapping[str, t.Any] | None
    pg_stat_statements: bool
    ensure_database: Mapping[str, t.Any]  # empty: no database to ensure
    login: PgLogin


def check_inputs(p: Mapping[str, t.Any]) -> Asked:
    vacuum, analyze, reindex = (scope(name, p[name]) for name in ("vacuum", "analyze", "reindex"))
    for name in ("min_dead_pct", "min_dead_tuples", "min_modified_pct", "lock_timeout", "idle_for"):
        if p[name] is not None and p[name] < 0:
            raise StackopsError(f"{name} must be 0 or more, not {p[name]}.")
    for name in ("min_dead_pct", "min_modified_pct"):
        if p[name] is not None and p[name] > 100:
            raise StackopsError(f"{name} is a percentage of the table's rows: 0 to 100, not {p[name]:g}.")
    if p["ensure_database"]:
        check_database_name(p["ensure_database"]["name"], "ensure_database.name", new=True)
        if p["ensure_database"]["template"]:
            check_database_name(p["ensure_database"]["template"], "ensure_database.template")
    if p["full"] and not vacuum:
        raise StackopsError("full=true rewrites the tables that vacuum names; set vacuum too (true or a list).")
    if p["terminate_idle"] and not p["states"]:
        raise StackopsError(f"states is empty, so terminate_idle would end nothing; give some of {list(IDLE_STATES)}.")
    if p["settings"] is not None and not p["settings"]:
        raise StackopsError("settings is empty; give the settings to write, or leave the option out.")
    return options_of(
        Asked,
        p,
        vacuum=vacuum,
        analyze=analyze,
        reindex=reindex,
        thresholds=Thresholds(p["min_dead_pct"], p["min_dead_tuples"], p["min_modified_pct"]),
        ensure_database=p["ensure_database"] or {},
        login=PgLogin.of(p),
    )


def stamp(value: t.Any) -> t.Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def create_database(spec: t.Mapping[str, t.Any]) -> t.Any:
    parts = [sql.SQL("CREATE DATABASE {}").format(sql.Identifier(spec["name"]))]
    if spec["owner"]:
        parts.append(sql.SQL("OWNER {}").format(sql.Identifier(spec["owner"])))
    if spec["template"]:
        parts.append(sql.SQL("TEMPLATE {}").format(sql.Identifier(spec["template"])))
    for option, key in (("ENCODING", "encoding"), ("LC_COLLATE", "lc_collate"), ("LC_CTYPE", "lc_ctype")):
        if spec[key]:
            parts.append(sql.SQL(f"{option} {{}}").format(sql.Literal(spec[key])))
    return sql.SQL(" ").join(parts)


def describe(session: dict[str, t.Any]) -> str:
    return f"pid {session['pid']} {session['user']}@{session['database']} {session['state']}"


# --- the steps: pure functions from a decision to the statements that carry it out -----------------------------

Render = Callable[[t.Any], str]
RELOAD = Step("SELECT pg_reload_conf()", {"statement": "SELECT pg_reload_conf()"})


def statement_step(statement: t.Any, render: Render, **data: t.Any) -> Step:
    return Step(render(statement), {"statement": statement, **data})


def database_steps(
    spec: t.Mapping[str, t.Any], found: t.Mapping[str, t.Any] | None, owner: str | None, render: Render
) -> list[Step]:
    """CREATE DATABASE when it is missing; ALTER DATABASE ... OWNER when it exists with another owner."""
    if found is None:
        return [statement_step(create_database(spec), render)]
    if owner and found["owner"] != owner:
        alter = sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(spec["name"]), sql.Identifier(owner))
        return [statement_step(alter, render)]
    return []


def setting_steps(changes: list[SettingChange], render: Render) -> list[Step]:
    """ALTER SYSTEM SET (or RESET, for a value put back to its default) of each changed setting, in order."""
    steps = []
    for change in changes:
        name = sql.Identifier(*change.name.split("."))
        if change.values is None:
            statement = sql.SQL("ALTER SYSTEM RESET {}").format(name)
        else:
            values = sql.SQL(", ").join(sql.Literal(v) for v in change.values)
            statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(name, values)
        steps.append(statement_step(statement, render, change=change))
    return steps


def extension_steps(installed: bool, render: Render) -> list[Step]:
    if installed:
        return []
    return [statement_step(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(LIBRARY)), render)]


def session_steps(picked: list[dict[str, t.Any]]) -> list[Step]:
    """One pg_terminate_backend per picked session; the executor ends it only while it is still in that idle spell."""
    return [Step(f"SELECT pg_terminate_backend({s['pid']})", {"session": s}) for s in picked]


def table_steps(plan: TablePlan, vacuum_all: bool, analyze_all: bool, full: bool, render: Render) -> list[Step]:
    """One database-wide VACUUM or ANALYZE, or one statement per table the plan picked."""
    if plan.database_wide:
        options = [o for o, on in (("FULL", full), ("ANALYZE", analyze_all or full)) if on]
        text = "ANALYZE" if not vacuum_all else f"VACUUM ({', '.join(options)})" if options else "VACUUM"
        return [Step(text, {"statement": text})]
    return [
        statement_step(
            sql.SQL(f"{action.label} {{}}").format(sql.Identifier(action.table.schema, action.table.name)),
            render,
            what=f"{action.label} of {action.table.qualified}",
        )
        for action in plan.actions
    ]


def reindex_steps(targets: list[dict[str, t.Any]], concurrently: bool, render: Render) -> list[Step]:
    steps = []
    how = " CONCURRENTLY" if concurrently else ""
    for item in targets:
        if item["kind"] == "DATABASE":
            name, label = sql.Identifier(item["name"]), item["name"]
        else:
            name, label = sql.Identifier(item["schema"], item["name"]), f"{item['schema']}.{item['name']}"
        statement = sql.SQL(f"REINDEX {item['kind']}{how} {{}}").format(name)
        steps.append(
            statement_step(statement, render, item=item, label=label, what=f"REINDEX {item['kind']}{how} {label}")
        )
    return steps


class Maintenance:
    """Reads and checks everything first (plan), then carries out each operation's steps in order (apply). Every
    statement that changes something is a Step, built by the pure functions above; `perform` records it in the audit
    list (`queries`) as it starts and runs it unless in check mode, so check mode lists the same statements."""

    def __init__(self, module: t.Any, conn: t.Any, asked: Asked) -> None:
        self.module = module
        self.conn = conn
        self.asked = asked
        self.check = module.check_mode
        self.rec = Recorder(check=module.check_mode, audit="queries")
        self.result = self.rec.result
        # What plan() finds, for apply(); None where the part was not asked for.
        self.gucs: dict[str, Guc] = {}
        self.files: dict[str, list[FileEntry]] = {}
        self.database_plan: dict[str, t.Any] | None = None
        self.settings_plan: list[SettingChange] | None = None
        self.extension: dict[str, t.Any] | None = None
        self.sessions: list[dict[str, t.Any]] | None = None
        self.tables: TablePlan | None = None
        self.reindex: list[dict[str, t.Any]] | None = None
        (server,) = rows(
            conn,
            "SELECT current_setting('server_version') AS version, "
            "current_setting('server_version_num')::int AS version_num, current_database() AS database, "
            "pg_backend_pid() AS pid",
        )
        self.pid = server.pop("pid")
        self.version = server["version_num"]
        self.result["server"] = server
        self.db = server["database"]

    # --- running statements -------------------------------------------------------------------------------------

    def render(self, statement: t.Any) -> str:
        """A statement as the server receives it (identifiers and literals quoted by psycopg2)."""
        return statement.as_string(self.conn) if hasattr(statement, "as_string") else str(statement)

    def perform(self, step: Step) -> None:
        """Records a step as it starts (a failure's audit list ends at it); runs its statement unless in check mode."""
        self.rec.commands.append(step.command)
        if not self.check:
            with self.conn.cursor() as cur:
                cur.execute(step.data["statement"])

    def fail(self, what: str, exc: Exception, note: str = "") -> t.NoReturn:
        """A statement failed midway: say what, and return what was done before it."""
        message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        done = {key: value for key, value in self.result.items() if key != "server"}
        raise StackopsError(f"{what} failed: {message}.{note}", queries=self.rec.commands, **done)

    # --- the plan -----------------------------------------------------------------------------------------------

    def plan(self) -> None:
        if self.asked.ensure_database:
            self.database_plan = self.plan_database()
        if self.asked.settings or self.asked.pg_stat_statements:
            self.settings_plan = self.plan_settings()
        if self.asked.pg_stat_statements:
            self.extension = self.plan_extension()
        if self.asked.terminate_idle:
            self.sessions = self.plan_sessions()
        if self.asked.vacuum or self.asked.analyze:
            self.tables = self.plan_tables()
        if self.asked.reindex:
            self.reindex = self.plan_reindex()

    def plan_database(self) -> dict[str, t.Any]:
        spec = self.asked.ensure_database
        found = self.database(spec["name"])
        owner = spec["owner"]
        problems = []
        if owner and not rows(self.conn, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (owner,)):
            problems.append(f"the owner role {owner} does not exist (create it first, or give another owner)")
        if found is None:
            template = spec["template"]
            if template and self.database(template) is None:
                problems.append(f"the template database {template} does not exist (use template1 or template0)")
            encoding = spec["encoding"]
            if encoding and rows(self.conn, "SELECT pg_char_to_encoding(%s) < 0 AS bad", (encoding,))[0]["bad"]:
                problems.append(f"{encoding} is not an encoding PostgreSQL knows (use one such as UTF8)")
        if problems:
            raise StackopsError(f"ensure_database {spec['name']}: {'; '.join(problems)}. Nothing was changed.")
        return {"found": found, "owner": owner}

    def database(self, name: str) -> dict[str, t.Any] | None:
        found = rows(
            self.conn,
            "SELECT datname AS name, pg_catalog.pg_get_userbyid(datdba) AS owner, "
            "pg_catalog.pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype "
            "FROM pg_catalog.pg_database WHERE datname = %s",
            (name,),
        )
        return found[0] if found else None

    def read_settings(self) -> tuple[dict[str, Guc], dict[str, list[FileEntry]]]:
        gucs = {row["name"].lower(): Guc.from_row(row) for row in rows(self.conn, SETTINGS)}
        try:
            entries = rows(self.conn, FILE_SETTINGS)
        except DatabaseError as exc:
            raise StackopsError(
                f"Cannot read the configuration files (pg_file_settings) as {self.asked.login.user}: "
                f"{str(exc).strip().splitlines()[0]}. Connect as a superuser, or grant it pg_read_all_settings."
            ) from None
        files: dict[str, list[FileEntry]] = {}
        for row in entries:
            files.setdefault(row["name"].lower(), []).append(FileEntry(**row))
        return gucs, files

    def plan_settings(self) -> list[SettingChange]:
        gucs, files = self.read_settings()
        wanted = dict(self.asked.settings or {})
        if self.asked.pg_stat_statements:
            given = next((key for key in wanted if key.lower() == SPL), None)
            if given is not None:
                wanted[given] = with_library(split_list(wanted[given] or ""), LIBRARY) or wanted[given]
            else:
                libraries = configured(gucs[SPL], files.get(SPL, []))
                added = with_library(libraries if isinstance(libraries, tuple) else (), LIBRARY)
                if added is not None:
                    wanted[SPL] = list(added)
        known = [key.lower() for key in wanted if key.lower() in gucs]
        self.gucs, self.files = gucs, files
        return plan_settings(wanted, gucs, files, self.not_allowed(known))

    def not_allowed(self, names: list[str]) -> list[str]:
        """The settings the login role may not ALTER SYSTEM: per parameter from 15, else all but for a superuser."""
        if not names:
            return []
        if self.version >= 150000:
            query = (
                "SELECT name FROM unnest(%s::text[]) AS name WHERE NOT has_parameter_privilege(name, 'ALTER SYSTEM')"
            )
            return [row["name"] for row in rows(self.conn, query, (names,))]
        (role,) = rows(self.conn, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user")
        return [] if role["rolsuper"] else names

    def plan_extension(self) -> dict[str, t.Any]:
        found = rows(
            self.conn,
            "SELECT installed_version FROM pg_catalog.pg_available_extensions WHERE name = %s",
            (LIBRARY,),
        )
        if not found:
            raise StackopsError(
                f"The {LIBRARY} extension is not available on this server; install PostgreSQL's contrib modules "
                "(Debian's postgresql-NN package has them; elsewhere postgresql-contrib)."
            )
        return {"installed": found[0]["installed_version"] is not None}

    def plan_sessions(self) -> list[dict[str, t.Any]]:
        flt = self.asked.session_filter or {}
        return pick_sessions(
            redacted(rows(self.conn, SESSIONS)),
            self.pid,
            self.asked.states,
            self.asked.idle_for,
            flt.get("databases") or (),
            flt.get("users") or (),
            flt.get("applications") or (),
        )

    def resolve(self, option: str, names: list[str], kinds: t.Collection[str]) -> list[dict[str, t.Any]]:
        """Each name as the server resolves it (search path, quoting), or StackopsError naming every bad one."""
        found, problems = [], []
        for name in names:
            try:
                relation = rows(self.conn, RELATION, (name,))
            except DatabaseError as exc:
                problems.append(f"{name!r} is not a valid relation name ({str(exc).strip().splitlines()[0]})")
                continue
            if not relation:
                problems.append(f"{name} was not found in database {self.db}")
            elif relation[0]["relkind"] not in kinds:
                what = "an index" if relation[0]["relkind"] in ("i", "I") else "not a table"
                problems.append(f"{name} is {what}")
            else:
                found.append(relation[0])
        if problems:
            raise StackopsError(
                f"{option}: {'; '.join(problems)}. Give tables{' or indexes' if option == 'reindex' else ''} of "
                f"{self.db}, schema-qualified when they are not on the search path. Nothing was changed."
            )
        return found

    def stats(self, oids: list[int]) -> list[TableStat]:
        found = rows(self.conn, TABLE_STATS, (oids,))
        return [TableStat(**{key: stamp(value) for key, value in row.items()}) for row in found]

    def plan_tables(self) -> TablePlan:
        vacuum, analyze = self.asked.vacuum, self.asked.analyze
        every = [row["oid"] for row in rows(self.conn, USER_TABLES)] if True in (vacuum, analyze) else []

        def oids(value: bool | list[str], option: str) -> list[int]:
            if value is True:
                return every
            return [row["oid"] for row in self.resolve(option, value or [], VACUUM_KINDS)]

        vacuum_oids, analyze_oids = oids(vacuum, "vacuum"), oids(analyze, "analyze")
        th = self.asked.thresholds
        whole = (
            not isinstance(vacuum, list)
            and not isinstance(analyze, list)
            and not th.for_vacuum
            and th.min_modified_pct is None
        )
        stats = self.stats(sorted(set(vacuum_oids) | set(analyze_oids)))
        return plan_tables(stats, set(vacuum_oids), set(analyze_oids), self.asked.full, th, database_wide=whole)

    def plan_reindex(self) -> list[dict[str, t.Any]]:
        if self.asked.reindex is True:
            targets = [{"kind": "DATABASE", "schema": None, "name": self.db, "oid": None}]
        else:
            found = self.resolve("reindex", t.cast("list[str]", self.asked.reindex), REINDEX_KINDS)
            targets = [{**row, "kind": REINDEX_KINDS[row.pop("relkind")]} for row in found]
        check_reindex([item for item in targets if item["schema"]], self.asked.concurrently, self.version)
        for item in targets:
            item["before_bytes"] = self.index_bytes(item)
        return targets

    def index_bytes(self, item: dict[str, t.Any]) -> int:
        if item["kind"] == "DATABASE":
            query = "SELECT coalesce(sum(pg_relation_size(oid)), 0)::bigint AS bytes FROM pg_class WHERE relkind = 'i'"
            return rows(self.conn, query)[0]["bytes"]
        # REINDEX CONCURRENTLY gives an index a new oid: look it up by name again.
        name = f"{sql.Identifier(item['schema'], item['name']).as_string(self.conn)}"
        query = (
            "SELECT CASE WHEN c.relkind IN ('i', 'I') THEN pg_relation_size(c.oid) ELSE pg_indexes_size(c.oid) END "
            "AS bytes FROM pg_catalog.pg_class c WHERE c.oid = to_regclass(%s)"
        )
        found = rows(self.conn, query, (name,))
        return found[0]["bytes"] if found else 0

    # --- the changes --------------------------------------------------------------------------------------------

    def apply(self) -> None:
        if self.asked.lock_timeout:
            with self.conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", (self.asked.lock_timeout * 1000,))
        operations: list[tuple[str, t.Any, t.Callable[[t.Any], None]]] = [
            ("database", self.database_plan, self.apply_database),
            ("settings", self.settings_plan, self.apply_settings),
            ("pg_stat_statements", self.extension, self.apply_extension),
            ("sessions", self.sessions, self.apply_sessions),
            ("tables", self.tables, self.apply_tables),
            ("reindex", self.reindex, self.apply_reindex),
        ]
        for name, plan, operation in operations:
            if plan is not None:
                with self.rec.timed(name):
                    operation(plan)

    def apply_database(self, plan: dict[str, t.Any]) -> None:
        spec, found, owner = self.asked.ensure_database, plan["found"], plan["owner"]
        steps = database_steps(spec, found, owner, self.render)
        try:
            for step in steps:
                self.perform(step)
        except DatabaseError as exc:
            self.fail(f"ensure_database {spec['name']}", exc)
        for key, label in (("encoding", "encoding"), ("lc_collate", "collate"), ("lc_ctype", "ctype")):
            if found is not None and spec[key] and spec[key].lower() != str(found[label]).lower():
                self.module.warn(
                    f"Database {spec['name']} exists with {label} {found[label]}, not {spec[key]}, which cannot "
                    "change in place (dump it, create it anew and restore)."
                )
        if self.check:
            after = dict(found or {"name": spec["name"], "encoding": spec["encoding"]})
            after["owner"] = owner or after.get("owner") or self.asked.login.user
        else:
            after = self.database(spec["name"]) or {}
        self.rec.changed |= bool(steps)
        self.result["database"] = {**after, "existed": found is not None, "created": found is None}
        self.rec.diff("database", found, after)

    def apply_settings(self, plan: list[SettingChange]) -> None:
        changes = [c for c in plan if c.changed]
        written: list[SettingChange] = []
        for step in setting_steps(changes, self.render):
            change = step.data["change"]
            try:
                self.perform(step)
            except DatabaseError as exc:
                self.undo_settings(written)
                self.fail(f"ALTER SYSTEM of {change.name} (the settings written before it were put back)", exc)
            written.append(change)
        if changes:
            self.reload()
        self.rec.changed |= bool(changes)
        self.result["settings"] = [c.report() for c in plan]
        self.result["pending_restart"] = self.pending(plan)
        if self.result["pending_restart"]:
            names = ", ".join(p["name"] for p in self.result["pending_restart"])
            self.module.warn(
                f"PostgreSQL needs a restart to apply {names}: a reload does not change them, so the server still "
                "runs with the old values. Restart it (in a maintenance window)."
            )
        self.rec.diff("settings", {c.name: c.before for c in changes}, {c.name: c.after for c in changes})

    def undo_settings(self, written: list[SettingChange]) -> None:
        """Puts postgresql.auto.conf back as it was for the settings written before a failure."""
        for change in written:
            key = change.name.lower()
            entries = [e for e in self.files.get(key, []) if e.in_auto_conf]
            name = sql.Identifier(*change.name.split("."))
            if entries:
                guc = self.gucs[key]
                value = lenient(guc, entries[-1].setting)
                literals = sql.SQL(", ").join(sql.Literal(v) for v in literal(guc, value))
                statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(name, literals)
            else:
                statement = sql.SQL("ALTER SYSTEM RESET {}").format(name)
            with self.conn.cursor() as cur:
                cur.execute(statement)

    def reload(self) -> None:
        (before,) = rows(self.conn, "SELECT pg_conf_load_time() AS at")
        self.perform(RELOAD)
        if self.check:
            return
        # The reload is a signal: wait until this session has re-read the files, so pg_settings is current.
        deadline = time.monotonic() + RELOAD_WAIT_S
        while rows(self.conn, "SELECT pg_conf_load_time() AS at")[0]["at"] <= before["at"]:
            if time.monotonic() > deadline:
                self.module.warn(f"The server had not re-read its configuration {RELOAD_WAIT_S:g}s after the reload.")
                return
            time.sleep(0.05)

    def pending(self, plan: list[SettingChange]) -> list[dict[str, t.Any]]:
        """Settings waiting for a restart: from pg_settings after the reload, or predicted in check mode."""
        if self.check:
            gucs, files = self.gucs, self.files
            names = {g.name for g in gucs.values() if g.pending_restart}
            for change in plan:
                if change.changed:
                    (names.add if change.restart else names.discard)(change.name)
            after = {c.name.lower(): c.after for c in plan if c.changed}
        else:
            gucs, files = self.read_settings()
            names = {g.name for g in gucs.values() if g.pending_restart}
            after = {}
        found = []
        for name in sorted(names, key=str.lower):
            guc = gucs[name.lower()]
            target = after.get(name.lower()) or show(guc, configured(guc, files.get(name.lower(), [])))
            found.append({"name": guc.name, "running": show(guc, lenient(guc, guc.setting)), "configured": target})
        return found

    def apply_extension(self, plan: dict[str, t.Any]) -> None:
        try:
            for step in extension_steps(plan["installed"], self.render):
                self.perform(step)
                self.rec.changed = True
        except DatabaseError as exc:
            self.fail(f"CREATE EXTENSION {LIBRARY} in {self.db}", exc)
        running = lenient(self.gucs[SPL], self.gucs[SPL].setting)
        configured_now = next((s for s in self.settings_plan or [] if s.name == SPL), None)
        self.result["pg_stat_statements"] = {
            "database": self.db,
            "installed": True,
            "created": not plan["installed"],
            "preloaded": isinstance(running, tuple) and LIBRARY in running,
            "configured": True if configured_now is None else LIBRARY in split_list(configured_now.after or ""),
        }
        self.rec.diff("pg_stat_statements", {"installed": plan["installed"]}, {"installed": True})

    def apply_sessions(self, picked: list[dict[str, t.Any]]) -> None:
        ended, kept = [], []
        kill = TERMINATE_WAITING if self.version >= 140000 else TERMINATE
        for step in session_steps(picked):
            session = step.data["session"]
            report: dict[str, t.Any] = {
                k: session[k] for k in ("pid", "user", "database", "application", "client", "state", "query")
            }
            report["idle_s"] = int(session["idle_s"])
            # Recorded only: what runs is the guarded call below, which ends the session only if still idle.
            self.rec.commands.append(step.command)
            if self.check:
                ended.append(report)
                continue
            try:
                found = rows(self.conn, kill, {**session, "wait_ms": TERMINATE_WAIT_MS})
            except DatabaseError as exc:
                kept.append({**report, "reason": str(exc).strip().splitlines()[0]})
                continue
            if found and found[0]["ended"]:
                ended.append(report)
            else:
                kept.append(
                    {**report, "reason": "it left that idle spell (became active or ended) before it was ended"}
                )
        if any("reason" in k and "permission" in k["reason"] for k in kept):
            self.module.warn("Some sessions could not be ended (see not_terminated): the login role lacks the right.")
        self.rec.changed |= bool(ended)
        self.result["terminated"] = ended
        self.result["not_terminated"] = kept
        left = {k["pid"] for k in kept}
        self.rec.diff("sessions", [describe(s) for s in picked], [describe(s) for s in picked if s["pid"] in left])

    def apply_tables(self, plan: TablePlan) -> None:
        if any(action.full for action in plan.actions):
            self.module.warn(
                "VACUUM FULL takes an ACCESS EXCLUSIVE lock on each table while it rewrites it: no reads or writes "
                "until it is done. It needs free disk space for a copy of the table; run it in a maintenance window."
            )
        steps = table_steps(plan, self.asked.vacuum is True, self.asked.analyze is True, self.asked.full, self.render)
        for done, step in enumerate(steps):
            try:
                self.perform(step)
            except DatabaseError as exc:
                if not plan.database_wide:
                    self.record_tables(plan, done=done)
                what = step.data["what"] if not plan.database_wide else f"{step.command} of database {self.db}"
                self.fail(what, exc)
        self.record_tables(plan)

    def record_tables(self, plan: TablePlan, done: int | None = None) -> None:
        actions = plan.actions if done is None else plan.actions[:done]
        after = {} if self.check else {s.oid: s for s in self.stats([a.table.oid for a in actions])}
        report = []
        for action in actions:
            entry = {"table": action.table.qualified, "action": action.label, "before": action.table.report()}
            if action.table.oid in after:
                entry["after"] = after[action.table.oid].report()
            report.append(entry)
        self.rec.changed |= bool(actions) or plan.database_wide
        self.result["tables"] = report
        self.result["untouched"] = plan.untouched

    def apply_reindex(self, targets: list[dict[str, t.Any]]) -> None:
        concurrently = self.asked.concurrently and self.version >= 120000
        if not concurrently:
            self.module.warn(
                "REINDEX without CONCURRENTLY blocks writes to each table, and reads that use its indexes, until it "
                "ends."
            )
        done: list[dict[str, t.Any]] = []
        for step in reindex_steps(targets, concurrently, self.render):
            item, label = step.data["item"], step.data["label"]
            leftovers = {(r["schema"], r["name"]) for r in rows(self.conn, LEFTOVER_INDEXES)} if concurrently else set()
            try:
                self.perform(step)
            except DatabaseError as exc:
                note = self.drop_leftovers(leftovers) if concurrently else ""
                self.result["reindexed"] = done
                self.fail(step.data["what"], exc, note)
            report = {"target": label, "kind": item["kind"], "concurrently": concurrently}
            report["before_bytes"] = item["before_bytes"]
            if not self.check:
                report["after_bytes"] = self.index_bytes(item)
            done.append(report)
        self.rec.changed |= bool(done)
        self.result["reindexed"] = done

    def drop_leftovers(self, earlier: set[tuple[str, str]]) -> str:
        """Drops the invalid indexes a failed REINDEX CONCURRENTLY of this run left; says what it did."""
        dropped, left = [], []
        for row in rows(self.conn, LEFTOVER_INDEXES):
            if (row["schema"], row["name"]) in earlier:
                continue
            name = f"{row['schema']}.{row['name']}"
            try:
                with self.conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                            sql.Identifier(row["schema"], row["name"])
                        )
                    )
            except DatabaseError as exc:
                left.append(f"{name} ({str(exc).strip().splitlines()[0]})")
                continue
            dropped.append(name)
        note = f" The invalid indexes it left were dropped: {', '.join(dropped)}." if dropped else ""
        if left:
            note += (
                f" It left invalid indexes that could not be dropped now: {', '.join(left)}. Drop them with DROP INDEX "
                "CONCURRENTLY once the transactions writing to the table have ended."
            )
        return note

    def finish(self) -> dict[str, t.Any]:
        return self.rec.outcome(self.module._diff)
