"""Secrets kept out of what the modules return: password literals in PostgreSQL statement texts (redact_sql) and
secrets in container log lines (compose_logs' redactor), in every form a statement or a log line can carry them."""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _postgres
from ansible_collections.stackops.runbooks.plugins.module_utils._redact import redactor

# Statement texts as pg_stat_activity and pg_stat_statements keep them (cut at 200 characters by the modules'
# queries): (text, the secret it holds, what a report shows). The secret must be gone and the rest kept as written.
STATEMENTS = [
    ("CREATE ROLE app LOGIN PASSWORD 'uRLBE6CV2UD'", "uRLBE6CV2UD", "CREATE ROLE app LOGIN PASSWORD '********'"),
    (
        "ALTER ROLE x WITH ENCRYPTED PASSWORD 'it''s-s3cret' VALID UNTIL 'infinity'",
        "s3cret",
        "ALTER ROLE x WITH ENCRYPTED PASSWORD '********' VALID UNTIL 'infinity'",
    ),
    ("alter user x password $q$dollar-s3cret$q$", "s3cret", "alter user x password '********'"),
    ("ALTER ROLE a PASSWORD 'cut at two hundred", "two hundred", "ALTER ROLE a PASSWORD '********'"),
    (
        "UPDATE app.users SET password = 'x''y-s3cret' WHERE id = 1",
        "s3cret",
        "UPDATE app.users SET password = '********' WHERE id = 1",
    ),
    # Escape strings: a backslash escapes the quote, so the literal goes on past it.
    (r"ALTER ROLE app PASSWORD E'it\'s s3cret'", "s3cret", "ALTER ROLE app PASSWORD '********'"),
    (
        r"alter role app password e'ends\\' VALID UNTIL 'infinity'",
        "ends",
        "alter role app password '********' VALID UNTIL 'infinity'",
    ),
    (r"ALTER ROLE a PASSWORD E'cut \' at two hundred", "two hundred", "ALTER ROLE a PASSWORD '********'"),
    # Unicode escape strings, with the default escape character and with UESCAPE.
    (r"ALTER ROLE app PASSWORD U&'s\0065cr\+000065t-uni'", "uni", "ALTER ROLE app PASSWORD '********'"),
    (
        "CREATE ROLE app LOGIN PASSWORD u&'s!0065cret-uni' UESCAPE '!' VALID UNTIL 'infinity'",
        "uni",
        "CREATE ROLE app LOGIN PASSWORD '********' VALID UNTIL 'infinity'",
    ),
    # Comments between PASSWORD and the literal, nested block comments included (PostgreSQL nests them).
    (
        "ALTER ROLE app PASSWORD /* rotated */ 'hunter2x'",
        "hunter2x",
        "ALTER ROLE app PASSWORD /* rotated */ '********'",
    ),
    (
        "ALTER ROLE app PASSWORD /* a /* nested */ b */ 'hunter2x'",
        "hunter2x",
        "ALTER ROLE app PASSWORD /* a /* nested */ b */ '********'",
    ),
    (
        "ALTER ROLE app PASSWORD -- rotated\n'hunter2x' LOGIN",
        "hunter2x",
        "ALTER ROLE app PASSWORD -- rotated\n'********' LOGIN",
    ),
    (r"ALTER ROLE app PASSWORD/**/E'x\'hunter2x'", "hunter2x", "ALTER ROLE app PASSWORD/**/'********'"),
    # Foreign data wrappers' options, the option name as a keyword or quoted.
    (
        "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'pw-s3cret')",
        "s3cret",
        "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password '********')",
    ),
    (
        "ALTER USER MAPPING FOR u SERVER s OPTIONS (SET \"password\" 'pw-s3cret')",
        "s3cret",
        "ALTER USER MAPPING FOR u SERVER s OPTIONS (SET \"password\" '********')",
    ),
    # Connection strings: plain, quoted (libpq's backslash escapes inside SQL's doubled quotes), in an escape
    # string, cut short, and the client certificate's key password.
    (
        "CREATE SUBSCRIPTION s CONNECTION 'host=a password=hunter2x dbname=b' PUBLICATION p",
        "hunter2x",
        "CREATE SUBSCRIPTION s CONNECTION 'host=a password=******** dbname=b' PUBLICATION p",
    ),
    (
        "CREATE SUBSCRIPTION s CONNECTION 'host=a password=''se cret'' dbname=b' PUBLICATION p",
        "cret",
        "CREATE SUBSCRIPTION s CONNECTION 'host=a password=''********'' dbname=b' PUBLICATION p",
    ),
    (
        r"SELECT dblink_connect('c', 'host=a password = ''x\''y-s3cret'' dbname=b')",
        "s3cret",
        "SELECT dblink_connect('c', 'host=a password = ''********'' dbname=b')",
    ),
    (
        r"CREATE SUBSCRIPTION s CONNECTION E'host=a password=\'se cret\'' PUBLICATION p",
        "cret",
        "CREATE SUBSCRIPTION s CONNECTION E'host=a password=''********''' PUBLICATION p",
    ),
    (
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=b host=a password=hunter2x",
        "hunter2x",
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=b host=a password=********",
    ),
    (
        "SELECT dblink_connect('host=a sslkey=/k sslpassword=key-s3cret')",
        "s3cret",
        "SELECT dblink_connect('host=a sslkey=/k sslpassword=********')",
    ),
    # Connection URIs: the password of the user info, and a password parameter.
    (
        "SELECT dblink_connect('postgresql://app:s3cret-uri@db.example:5432/app')",
        "s3cret",
        "SELECT dblink_connect('postgresql://app:********@db.example:5432/app')",
    ),
    (
        "CREATE SUBSCRIPTION s CONNECTION 'postgres://rep:p%40ss-s3cret@10.0.0.5/app?sslmode=require' PUBLICATION p",
        "s3cret",
        "CREATE SUBSCRIPTION s CONNECTION 'postgres://rep:********@10.0.0.5/app?sslmode=require' PUBLICATION p",
    ),
    (
        "SELECT * FROM dblink('postgresql://h/app?user=a&password=s3cret-q&sslmode=require', 'SELECT 1')",
        "s3cret",
        "SELECT * FROM dblink('postgresql://h/app?user=a&password=********&sslmode=require', 'SELECT 1')",
    ),
    # Comments carry connection strings too (an application's annotation).
    (
        "SELECT 1 /* dsn=postgresql://app:s3cret-c@db/app */ -- host=a password=s3cret-l",
        "s3cret",
        "SELECT 1 /* dsn=postgresql://app:********@db/app */ -- host=a password=********",
    ),
    # A statement inside a literal or a function body, as dynamic SQL runs it.
    (
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''s3cret-dyn'''; END$$",
        "s3cret",
        "DO $$BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''********'''; END$$",
    ),
]


@pytest.mark.parametrize(("text", "secret", "shown"), STATEMENTS)
def test_password_literals_in_statement_texts_are_redacted(text: str, secret: str, shown: str) -> None:
    redacted = _postgres.redact_sql(text)
    assert redacted is not None and secret not in redacted
    assert redacted == shown


@pytest.mark.parametrize(
    "text",
    [
        "SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL",
        "SELECT password_hash FROM app.users WHERE id = $1",
        "ALTER ROLE a PASSWORD NULL",
        "SELECT 'E''s' AS password_hint, e'\\n', u&'\\0041' FROM t WHERE password_hash = $1",
        "SELECT note FROM t WHERE note = 'the password is rotated' -- password policy",
        "SELECT 'postgresql://h/app' AS uri, 'host=a dbname=b' AS conninfo",
        "",
    ],
)
def test_statements_without_a_password_literal_are_kept(text: str) -> None:
    assert _postgres.redact_sql(text) == text


# Log lines as the lab's services write them, each carrying SECRET in one form: (before, the form, after).
SECRET = 'pa"ss\\w0rd!/é x'
AS_JSON = json.dumps(SECRET)[1:-1]
AS_URL = urllib.parse.quote(SECRET, safe="")
LOG_LINES = [
    ("postgres-1  | FATAL:  password authentication failed for ", SECRET, ""),
    # JSON logs: the quote and backslash escaped, non-ASCII as \\u escapes (json.dumps), the slash escaped too.
    ('app-1  | {"level": "error", "dsn_password": "', AS_JSON, '"}'),
    ('app-1  | {"msg": "login", "password": "', json.dumps(SECRET, ensure_ascii=False)[1:-1], '"}'),
    ('app-1  | {"password": "', AS_JSON.replace("/", "\\/"), '"}'),
    ('app-1  | {"password": "', AS_JSON.replace("\\u00e9", "\\u00E9"), '"}'),
    # URLs: percent-encoded (quote; quote_plus as forms and query strings encode a space), hex in lower case too.
    ("app-1  | connecting to postgresql://app:", AS_URL, "@postgres/app"),
    ("nginx-1  | GET /login?user=a&password=", urllib.parse.quote_plus(SECRET), " HTTP/1.1"),
    ("app-1  | redis://:", urllib.parse.quote(SECRET), "@redis:6379/0 refused"),
    ("app-1  | url=postgresql://app:", re.sub("%[0-9A-F]{2}", lambda hex_: hex_[0].lower(), AS_URL), "@postgres/app"),
]


@pytest.mark.parametrize(("before", "form", "after"), LOG_LINES)
def test_log_redaction_catches_escaped_forms(before: str, form: str, after: str) -> None:
    assert form != SECRET or before.startswith("postgres-1")
    redacted = redactor([SECRET])(f"{before}{form}{after}")
    assert "w0rd" not in redacted
    assert redacted == f"{before}[REDACTED]{after}"


def test_log_redaction_replaces_the_longest_secret_whole_and_keeps_clean_lines() -> None:
    redact = redactor(["s3cr3t-pw", "s3cr3t-pw-longer", ""])
    assert redact("a s3cr3t-pw-longer b s3cr3t-pw") == "a [REDACTED] b [REDACTED]"
    assert redact('{"msg": "s3cr3t%2Dpw"}') == '{"msg": "[REDACTED]"}'
    assert redact('nothing secret here %21 \\" ok') == 'nothing secret here %21 \\" ok'
