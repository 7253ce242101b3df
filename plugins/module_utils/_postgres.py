# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""PostgreSQL connections for the pg_* modules: options (documented once in the stackops.runbooks.postgres doc
fragment), the library check, and connecting in one place."""

from __future__ import annotations

import contextlib
import re
import traceback
import typing as t
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.stackops.runbooks.plugins.module_utils._common import (
    Login,
    StackopsError,
    check_no_control_characters,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redact import MASK, redact_connection_strings

try:
    import psycopg2
    import psycopg2.extras
    from psycopg2 import sql  # pylint: disable=unused-import  # the pg_* modules compose SQL with it
except ImportError:
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR: str | None = traceback.format_exc()
    sql = None  # reported by ensure_libs
else:
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None

# What a failed query raises; catching it never needs psycopg2 imported by the caller.
DatabaseError: type[Exception] = psycopg2.Error if HAS_PSYCOPG2 else Exception

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
# PostgreSQL cuts longer names to 63 bytes (NAMEDATALEN - 1), silently but for a NOTICE.
MAX_NAME = 63
# In a name this module makes a database with, these can only be a mistake or an attack on a script that uses it.
NOT_IN_NEW_NAMES = "\"'`;\\$"


def connection_argument_spec() -> dict[str, t.Any]:
    return {
        "login_host": {"type": "str", "default": "localhost"},
        "login_port": {"type": "int", "default": 5432},
        "login_user": {"type": "str", "default": "postgres"},
        "login_password": {"type": "str", "no_log": True},
        "login_unix_socket": {"type": "path"},
        "login_db": {"type": "str", "default": "postgres"},
        "ssl_mode": {"type": "str", "default": "prefer", "choices": SSL_MODES},
        "ca_cert": {"type": "path"},
        "connect_timeout": {"type": "int", "default": 5},
    }


def check_database_name(name: str, option: str, new: bool = False) -> str:
    """A database name as PostgreSQL's tools take it. libpq reads a dbname holding `=` (or a postgresql:// URI) as a
    connection string, so pg_dump -d, pg_restore -d and pg_dumpall -l would connect where it says: refused. A name
    the module creates (new) also may not hold quotes, backticks, semicolons, backslashes or `$`."""
    if not name:
        raise StackopsError(f"{option} is empty; give the database's name.")
    check_no_control_characters(name, option)
    if "=" in name or name.startswith(("postgresql://", "postgres://")):
        raise StackopsError(
            f"{option} {name!r} looks like a libpq connection string, which PostgreSQL's tools would follow to "
            "another server or database. Give the plain database name; the server is set by login_host and "
            "login_port."
        )
    if len(name.encode()) > MAX_NAME:
        raise StackopsError(
            f"{option} {name!r} is {len(name.encode())} bytes long; PostgreSQL cuts names to {MAX_NAME} bytes. Give "
            "a shorter name."
        )
    bad = sorted({c for c in name if c in NOT_IN_NEW_NAMES}) if new else []
    if bad:
        raise StackopsError(
            f"{option} {name!r} holds {' '.join(bad)}, which have no place in the name of a database this module "
            "creates. Use letters, digits, _ and -."
        )
    return name


def ensure_libs(module: t.Any) -> None:
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)


@dataclass(frozen=True)
class PgLogin(Login):
    """How to reach the server and log in: the connection options once checked, built at a module's input check,
    so that a bad port, timeout or login_db is refused before anything connects."""

    db: str
    ssl_mode: str
    ca_cert: str | None

    @classmethod
    def of(cls, params: Mapping[str, t.Any]) -> PgLogin:
        """From the options of connection_argument_spec."""
        return cls(
            **cls.checked(params),
            db=check_database_name(params["login_db"], "login_db"),
            ssl_mode=params["ssl_mode"],
            ca_cert=params["ca_cert"],
        )

    def to(self, db: str) -> PgLogin:
        """The same login into another database of the server."""
        return replace(self, db=check_database_name(db, "login_db"))

    def libpq(self, application: str) -> dict[str, t.Any]:
        """libpq keywords; empty values are left out so libpq's defaults apply."""
        found = {
            "host": self.unix_socket or self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.db,
            "sslmode": self.ssl_mode,
            "sslrootcert": self.ca_cert,
            "connect_timeout": self.connect_timeout,
            "application_name": application,
        }
        return {key: value for key, value in found.items() if value not in (None, "")}


def connect(login: PgLogin, application: str, read_only: bool = False) -> tuple[t.Any, str | None]:
    """(connection, None) or (None, why not). The caller decides whether not connecting is a failure."""
    try:
        conn = psycopg2.connect(**login.libpq(application))
    except psycopg2.Error as exc:
        return None, (str(exc).strip() or type(exc).__name__).splitlines()[0]
    conn.set_session(readonly=read_only, autocommit=True)
    return conn, None


def must_connect(
    login: PgLogin,
    application: str,
    db: str | None = None,
    read_only: bool = False,
    error: type[StackopsError] = StackopsError,
) -> t.Any:
    """A connection to db (the login's database by default), or `error` naming the database, server, role and why
    not."""
    into = login.to(db) if db else login
    conn, why = connect(into, application, read_only)
    if conn is None:
        raise error(f"Cannot connect to database {into.db} at {login.target} as {login.user}: {why}")
    return conn


@contextlib.contextmanager
def connected(login: PgLogin, application: str, error: type[StackopsError] = StackopsError) -> Iterator[t.Any]:
    """A connection to the login's database for the body; a statement the server refuses becomes `error`; always
    closed."""
    conn = must_connect(login, application, error=error)
    try:
        yield conn
    except DatabaseError as exc:
        raise error(f"PostgreSQL refused a step: {str(exc).strip()}") from None
    finally:
        conn.close()


def rows(conn: t.Any, query: str, args: t.Any = None) -> list[dict[str, t.Any]]:
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(query, args)
        return [dict(row) for row in cur.fetchall()]


def reset_statistics(conn: t.Any) -> bool:
    """Zero the connected database's cumulative statistics, so that a database just restored is judged on its own
    workload: the restore's reads would otherwise sink its cache hit ratio below the health thresholds. False when the
    login may not (pg_stat_reset is for superusers and those granted it): the restore stands either way."""
    conn.set_session(readonly=False, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.pg_stat_reset()")
    except DatabaseError as err:
        if getattr(err, "pgcode", None) != "42501":  # insufficient_privilege
            raise
        return False
    return True


# The server keeps statement texts verbatim (pg_stat_activity, and pg_stat_statements for utility statements): a
# literal after PASSWORD (CREATE or ALTER ROLE, user mappings, UPDATE ... SET password = ...), a password in a
# connection string or URI (subscriptions, dblink), or either inside dynamic SQL would be a secret in a report. The
# text is read as PostgreSQL's lexer reads it, so that escape strings, Unicode strings, dollar quoting and comments
# cannot hide a literal from the redaction. Texts cut at 200 characters may end inside a literal or a comment.
SQL_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<line_comment>--[^\n]*)
    |(?P<block_comment>/\*)
    |(?P<dollar>\$(?P<tag>[A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$)
    |(?P<escape>[eE]'(?:[^'\\]|\\.?|'')*'?)
    |(?P<unicode>[uU]&'(?:[^']|'')*'?(?:\s*(?i:uescape)\s*'[^']')?)
    |(?P<standard>[nNbBxX]?'(?:[^']|'')*'?)
    |(?P<identifier>"(?:[^"]|"")*"?)
    |(?P<word>[A-Za-z_\x80-\uffff][\w$\x80-\uffff]*)
    |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
LITERALS = ("dollar", "escape", "unicode", "standard")
# Between PASSWORD and its literal: space, comments, and = (SET password = '...'), := or => (named arguments).
PASSWORD_GAP = ("space", "line_comment", "block_comment")
PASSWORD_OPERATORS = {"=", ":", ">"}
ESCAPE_BODY = re.compile(r"((?:[^'\\]|\\.?|'')*)('?)", re.DOTALL)
QUOTED_BODY = re.compile(r"((?:[^']|'')*)('?)", re.DOTALL)
E_ESCAPE = re.compile(r"''|\\([0-7]{1,3}|x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.?)", re.DOTALL)
# Dynamic SQL nests a statement in a literal; past this many levels a literal is masked whole.
MAX_DEPTH = 8
ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def sql_tokens(text: str) -> Iterator[tuple[str, str]]:
    """(kind, raw text) of each token, as PostgreSQL's lexer splits a statement; nested block comments and dollar
    quotes are whole tokens, and a token cut short by the end of the text runs to the end."""
    pos = 0
    while pos < len(text):
        match = SQL_TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:  # cannot happen: `other` matches any character
            raise AssertionError(f"no SQL token at {pos}")
        kind, end = match.lastgroup, match.end()
        if kind == "block_comment":
            depth = 1
            while depth and end < len(text):
                pair = text[end : end + 2]
                depth += 1 if pair == "/*" else -1 if pair == "*/" else 0
                end += 2 if pair in ("/*", "*/") else 1
        elif kind == "dollar":
            close = text.find(match.group("dollar"), end)
            end = len(text) if close < 0 else close + len(match.group("dollar"))
        yield kind, text[pos:end]
        pos = end


def code_point(digits: str, base: int) -> str:
    number = int(digits, base)
    return chr(number) if number <= 0x10FFFF else "\ufffd"  # the server refuses it; the text is still shown


def unescape(found: re.Match[str]) -> str:
    """One escape of an E'...' string: a doubled quote, or a backslash escape."""
    escape = found.group(1)
    if escape is None:
        return "'"
    if escape[:1] in tuple("01234567"):
        return code_point(escape, 8)
    if escape[:1] in ("x", "u", "U") and len(escape) > 1:
        return code_point(escape[1:], 16)
    return ESCAPES.get(escape, escape)


def unicode_unescape(body: str, escape_char: str) -> str:
    """The value of a U&'...' string's body."""
    esc = re.escape(escape_char)

    def one(found: re.Match[str]) -> str:
        if found.group(0) == "''":
            return "'"
        digits = found.group(1) or found.group(2)
        return code_point(digits, 16) if digits else escape_char

    return re.sub(rf"''|{esc}(?:\+([0-9A-Fa-f]{{6}})|([0-9A-Fa-f]{{4}})|{esc})", one, body)


def literal_value(kind: str, raw: str) -> tuple[str, str]:
    """The value of a literal token, and the text that closes it ("" when the text was cut inside it)."""
    if kind == "dollar":
        tag = raw[: raw.index("$", 1) + 1]
        closed = len(raw) >= 2 * len(tag) and raw.endswith(tag)
        return raw[len(tag) : len(raw) - len(tag) if closed else None], tag if closed else ""
    escape_char = "\\"
    uescape = re.search(r"(?i)'\s*uescape\s*'(.)'$", raw) if kind == "unicode" else None
    if uescape:
        escape_char, raw = uescape.group(1), raw[: uescape.start() + 1]
    parts = (ESCAPE_BODY if kind == "escape" else QUOTED_BODY).fullmatch(raw, raw.index("'") + 1)
    if parts is None:  # cannot happen: the token matched the same expression
        raise AssertionError(f"not a literal: {kind}")
    body, close = parts.group(1), parts.group(2)
    if kind == "escape":
        return E_ESCAPE.sub(unescape, body), close
    if kind == "unicode":
        return unicode_unescape(body, escape_char), close
    return body.replace("''", "'"), close


def redact_literal(kind: str, raw: str, depth: int) -> str:
    """The literal as written, or, when its value held a password (in a connection string, or in a statement of
    dynamic SQL), rewritten with the password masked."""
    if depth >= MAX_DEPTH:
        return f"'{MASK}'"  # literals in literals this deep are no statement to read, and could hide anything
    value, close = literal_value(kind, raw)
    masked = redact_tokens(redact_connection_strings(value), depth + 1)
    if masked == value:
        return raw
    if kind == "dollar":
        return f"{raw[: raw.index('$', 1) + 1]}{masked}{close}"
    # Written back in the literal's own kind (E'...' with backslash escapes), U&'...' without its UESCAPE.
    if kind in ("escape", "unicode"):
        masked = masked.replace("\\", "\\\\")
    prefix, quoted = raw[: raw.index("'")], masked.replace("'", "''")
    return f"{prefix}'{quoted}{close}"


def redact_token(kind: str, raw: str, depth: int) -> str:
    if kind in LITERALS:
        return redact_literal(kind, raw, depth)
    if kind in ("line_comment", "block_comment"):
        return redact_connection_strings(raw)
    return raw


def redact_tokens(text: str, depth: int) -> str:
    out: list[str] = []
    after_password = False
    for kind, raw in sql_tokens(text):
        if after_password and kind in LITERALS:
            out.append(f"'{MASK}'")
            after_password = False
            continue
        out.append(redact_token(kind, raw, depth))
        if kind in ("word", "identifier"):
            after_password = raw.lower() == "password" or raw == '"password"'
        elif not (kind in PASSWORD_GAP or raw in PASSWORD_OPERATORS):
            after_password = False
    return "".join(out)


def redact_sql(text: str | None) -> str | None:
    """A statement text with every password literal replaced by '********', and the passwords of connection strings
    and URIs in its literals and comments by ********."""
    if not text:
        return text
    return redact_tokens(text, 0)


def redacted(found: list[dict[str, t.Any]], key: str = "query") -> list[dict[str, t.Any]]:
    """Rows with their statement text (in key) passed through redact_sql."""
    for row in found:
        row[key] = redact_sql(row.get(key))
    return found
