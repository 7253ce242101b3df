"""compose_env's reader (plugins/module_utils/_compose_env.py): .env parsing, how each variable is shown, and the
comparison of a container's environment with compose's, over output recorded from Docker 28.2.2 and Compose 2.26.1
(tests/unit/fixtures/compose_env/: the scratch project of tests/integration/test_config_truth.py, whose .env and
compose.yaml changed after `up`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _compose_env as env

FIXTURES = Path(__file__).parent / "fixtures" / "compose_env"
# The fixture project's secrets (made up for it): none may appear in any result, nor a sha256 of one.
SECRETS = ["s3cr3t-old-pw", "s3cr3t-new-pw", "jwt-signing-key-0123", "r3dis-pw-xyz", "smtp-login-zz9"]
DIGESTS = [hashlib.sha256(s.encode()).hexdigest()[:16] for s in SECRETS]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("A=1\nB = two\n", {"A": "1", "B": "two"}),
        ("# comment\n\nexport C=3\n", {"C": "3"}),
        ("D='single # not a comment'\n", {"D": "single # not a comment"}),
        ('E="double\\nline \\"q\\""\n', {"E": 'double\nline "q"'}),
        ("F=value # a comment\nG=a#b\n", {"F": "value", "G": "a#b"}),
        ("H=\nnot a line\n", {"H": ""}),
    ],
)
def test_dotenv_lines_as_compose_reads_them(text: str, parsed: dict) -> None:
    assert env.parse_dotenv(text) == parsed


@pytest.mark.parametrize(
    ("name", "value", "kind", "shown"),
    [
        ("LOG_LEVEL", "info", "public", "info"),
        ("POSTGRES_PASSWORD", "pw", "secret", env.MASK),
        ("JWT_SECRET", "x", "secret", env.MASK),
        ("API_TOKEN", "x", "secret", env.MASK),
        ("SESSION", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "secret", env.MASK),
        ("DATABASE_URL", "postgresql://app:pw@db:5432/app", "url", f"postgresql://app:{env.MASK}@db:5432/app"),
        ("REDIS_URL", "redis://:pw@127.0.0.1:6379/0", "url", f"redis://:{env.MASK}@127.0.0.1:6379/0"),
        ("BROKER", "amqp://guest@mq/vhost", "url", "amqp://guest@mq/vhost"),
        ("DB", "postgres://u:pw@[::1]:5432/x?sslmode=require&password=pw", "url", None),
        ("SENTRY_DSN", "https://key@sentry.example/1", "secret", env.MASK),
        ("BAD_URL", "http://host:notaport/", "url", env.MASK),
    ],
)
def test_each_variable_is_shown_as_its_kind_allows(name: str, value: str, kind: str, shown: str | None) -> None:
    classify = env.Classifier()
    assert classify.kind(name, value) == kind
    if shown is None:  # the query's secret-named value is masked too
        assert env.shown(value, kind) == f"postgres://u:{env.MASK}@[::1]:5432/x?sslmode=require&password={env.MASK}"
    else:
        assert env.shown(value, kind) == shown


def test_names_given_override_and_a_known_secret_is_hidden_under_any_name() -> None:
    classify = env.Classifier(sensitive_names=["SMTP_LOGIN"], public_names=["PUBLIC_KEY_ID"])
    classify.learn({"POSTGRES_PASSWORD": "hunter22", "DATABASE_URL": "postgresql://app:urlpass9@db/app"})
    assert classify.kind("SMTP_LOGIN", "x") == "secret"
    assert classify.kind("PUBLIC_KEY_ID", "k-1") == "public"
    # A careless copy of a password under an innocent name, or inside another value, is still a secret.
    assert classify.kind("DB_PW", "hunter22") == "secret"
    assert classify.kind("REDIS_ARGS", "--requirepass urlpass9") == "secret"
    # Short values would match everything: a port is not a secret because a password contains it.
    classify.learn({"X_PASSWORD": "80"})
    assert classify.kind("PORT", "80") == "public"


def test_states_against_compose_and_the_env_file() -> None:
    running = {"PATH": "/usr/bin", "A": "1", "B": "old", "GONE": "x", "PASSWORD": "p1", "IMG": "mine"}
    wanted = {"A": "1", "B": "new", "NEW": "n", "PASSWORD": "p2", "UNSET": None}
    image = {"PATH": "/usr/bin", "IMG": "image's"}
    variables = env.compare(running, wanted, image, {"PASSWORD": "p2", "A": "1"}, env.Classifier())
    assert {k: v["state"] for k, v in variables.items()} == {
        "A": "match",
        "B": "differs",
        "GONE": "not_in_compose",
        "IMG": "not_in_compose",  # the image sets another value: compose did once
        "NEW": "not_in_container",
        "PASSWORD": "differs",
    }
    assert variables["B"] == {"kind": "public", "state": "differs", "running": "old", "compose": "new"}
    assert variables["PASSWORD"] == {
        "kind": "secret",
        "state": "differs",
        "running": env.MASK,
        "compose": env.MASK,
        "env_file": "differs",
    }
    assert variables["A"] == {"kind": "public", "state": "match", "running": "1", "env_file": "match"}
    assert variables["NEW"]["running"] is None and variables["NEW"]["compose"] == "n"


def recorded() -> tuple[list, dict, dict]:
    """The fixture project as compose_env reads it: (containers, compose services, .env)."""
    inspect = json.loads((FIXTURES / "docker-28.2.2-inspect.json").read_text())
    images = {i["Id"]: env.env_list(i["Config"]["Env"]) for i in json.loads((FIXTURES / "image.json").read_text())}
    containers = [
        (
            c["Config"]["Labels"]["com.docker.compose.service"],
            c["Name"].lstrip("/"),
            env.env_list(c["Config"]["Env"]),
            images[c["Image"]],
        )
        for c in inspect
    ]
    config = json.loads((FIXTURES / "compose-2.26.1-config.json").read_text())
    return containers, config["services"], env.parse_dotenv((FIXTURES / "dotenv").read_text())


def test_recorded_project_whose_env_file_changed_after_up() -> None:
    containers, services, dotenv = recorded()
    data, findings = env.plan(containers, services, dotenv, env.Classifier(["SMTP_LOGIN"], []))
    app = next(iter(data["services"]["app"].values()))
    assert app["recreate_needed"] is True
    assert [s for s, c in data["services"].items() if next(iter(c.values()))["recreate_needed"]] == ["app"]
    app_vars = app["variables"]
    assert app_vars["DATABASE_URL"]["state"] == "differs"
    assert app_vars["DATABASE_URL"]["running"] == f"postgresql://app:{env.MASK}@db.internal:5432/app"
    assert app_vars["DATABASE_URL"]["compose"] == f"postgresql://app:{env.MASK}@db.internal:5432/app"
    assert app_vars["LOG_LEVEL"] == {
        "kind": "public",
        "state": "differs",
        "running": "info",
        "compose": "debug",
        "env_file": "differs",
    }
    assert app_vars["JWT_SECRET"] == {"kind": "secret", "state": "match", "running": env.MASK, "env_file": "match"}
    assert app_vars["REDIS_URL"]["state"] == "match"
    assert app_vars["FEATURE_X"]["state"] == "not_in_container"
    assert "PATH" not in app_vars, "a variable only the image sets is no configuration of the project"
    assert [(f.check, f.severity) for f in findings] == [("config.recreate", "warning")]
    assert findings[0].value == ["DATABASE_URL", "FEATURE_X", "LOG_LEVEL"]
    assert "service app" in findings[0].message and "DATABASE_URL (differs)" in findings[0].message
    assert data["env_file"]["SMTP_LOGIN"]["value"] == env.MASK
    assert data["env_file"]["APP_IMAGE"]["in_containers"] is False
    text = json.dumps([data, [f.__dict__ for f in findings]])
    assert not [s for s in SECRETS + DIGESTS if s in text], "a secret reached the result"


def test_a_container_of_a_service_compose_does_not_define_now_is_left_out() -> None:
    # A service behind a profile that is not enabled: compared with nothing, all its variables would look stale.
    data, findings = env.plan([("migrate", "p-migrate-1", {"A": "1"}, {})], {"app": {}}, None, env.Classifier())
    assert data == {"services": {}, "env_file": None} and findings == []
