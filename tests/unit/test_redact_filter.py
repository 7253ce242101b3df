"""The redact filter (plugins/filter/redact.py) the admin_command role passes a command's output through before it
shows or keeps it: the given secrets in every form, and any connection string's password."""

from __future__ import annotations

from ansible_collections.stackops.runbooks.plugins.filter.redact import redact

SECRET = "pA5s/w0rd+x"


def test_values_and_connection_strings_are_masked_and_the_rest_kept() -> None:
    text = (
        "INFO  [alembic.runtime.migration] Running upgrade -> 1a2b, add index\n"
        f"connecting with password {SECRET}\n"
        "DATABASE_URL=postgresql://app:pA5s%2Fw0rd%2Bx@127.0.2.1:5432/app\n"
        "REDIS_URL=redis://:another-one@127.0.2.1:6379/0\n"
        'dsn="host=db password=third user=app"\n'
        '{"password": "pA5s\\/w0rd+x"}\n'
    )
    out = redact(text, [SECRET])
    for secret in (SECRET, "pA5s%2Fw0rd%2Bx", "another-one", "third", "pA5s\\/w0rd"):
        assert secret not in out, out
    assert out.splitlines()[0] == "INFO  [alembic.runtime.migration] Running upgrade -> 1a2b, add index"
    assert "[REDACTED]" in out.splitlines()[1]
    assert out.count("\n") == text.count("\n")


def test_no_values_and_no_text() -> None:
    assert redact("plain output\n", []) == "plain output\n"
    assert redact(None, None) == ""
