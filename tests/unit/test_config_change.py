"""The config_change planner (module_utils/_config_change.py) and its filters: request checks, .env edits that keep
every other byte, which services read a variable (over Compose's real uninterpolated model of a lab host), the
override's memory limits, and diffs with no secret in them."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.stackops.runbooks.plugins.filter.config_change import (
    FilterModule,
    config_change_env_text,
    config_change_errors,
    config_change_plan,
)
from ansible_collections.stackops.runbooks.plugins.module_utils import _config_change as planner

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
# `docker compose config --no-interpolate --format json` of lab2's project (Compose 2.26.1): no value of .env in it.
LAB_MODEL = (FIXTURES / "2.26.1-config-no-interpolate-lab2.json").read_text()
LAB_SERVICES: dict[str, t.Any] = json.loads(LAB_MODEL)["services"]
ENV = "LAB_ADDR=127.0.2.2\nPOSTGRES_PASSWORD=pg-s3cret\nAPP_DB_PASSWORD=app-s3cret\nREDIS_PASSWORD=redis-s3cret\n"
SECRETS = ("pg-s3cret", "app-s3cret", "redis-s3cret", "new-s3cret", "url-s3cret")


@pytest.mark.parametrize(
    ("env", "memory", "expected"),
    [
        ({"1LOG": "x"}, {}, ["'1LOG' is not a valid variable name", "e.g. LOG_LEVEL"]),
        ({"LOG-LEVEL": "x"}, {}, ["'LOG-LEVEL' is not a valid variable name"]),
        ({"LOG_LEVEL": "a\nb"}, {}, ["The value of LOG_LEVEL ('a\\nb') holds a line break", "remove it"]),
        ({"API_TOKEN": "new-s3cret\nx"}, {}, ["The value of API_TOKEN (********) holds a line break"]),
        ({"COMPOSE_FILE": "x.yaml"}, {}, ["COMPOSE_FILE is read by Compose itself", "edit it by hand"]),
        ({"DEBUG": True}, {}, ['The value of DEBUG is a bool, not a string: quote it (e.g. DEBUG: "true")']),
        ({"MIXED": "it's $HOME"}, {}, ["The value of MIXED holds both ' and one of"]),
        ({}, {"app": "12XB"}, ["The memory limit '12XB' of service app is not a size", "e.g. 512m or 1g"]),
        ({}, {"app": "512"}, ["The memory limit '512' of service app is 512 bytes", "(e.g. 512m)"]),
        ({}, {"app": "1g", "redis": "512MiB", "nginx": None, "postgres": "1.5g"}, []),
        ({"LOG_LEVEL": "debug", "OLD": None, "PORT": 8000, "URL": "https://u:p@h/x?a=1#f"}, {}, []),
    ],
)
def test_request_checks_name_the_value_and_the_fix(
    env: dict[str, t.Any], memory: dict[str, t.Any], expected: list[str]
) -> None:
    errors = " ".join(config_change_errors(env, memory))
    for text in expected:
        assert text in errors
    assert bool(errors) == bool(expected)
    assert "new-s3cret" not in errors


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512m", 512 << 20),
        ("1g", 1 << 30),
        ("1GiB", 1 << 30),
        ("512MB", 512 << 20),
        ("1.5g", 3 << 29),
        (268435456, 268435456),
        ("268435456", 268435456),
        ("12XB", None),
        ("m", None),
        (True, None),
        ("-1g", None),
    ],
)
def test_sizes_are_read_as_docker_reads_them(value: t.Any, size: int | None) -> None:
    assert planner.size_bytes(value) == size


@pytest.mark.parametrize(
    ("before", "changes", "after"),
    [
        # Untouched lines (comments, blank lines, other variables, CRLF) keep every byte.
        ("# c\nA=1\r\n\nB=2\n", {"B": "3"}, "# c\nA=1\r\n\nB=3\n"),
        ("A=1\nB=2", {"C": "x"}, "A=1\nB=2\nC=x\n"),
        ("export A=1\n", {"A": "2"}, "export A=2\n"),
        ("A=1\nB=2\nA=1\n", {"A": None}, "B=2\n"),
        ("A='x y'\n", {"A": "x y"}, "A='x y'\n"),
        ("A=1 # note\n", {"A": "1"}, "A=1 # note\n"),
        ("", {"A": "has space", "B": "$HOME", "C": "it's", "D": ""}, "A='has space'\nB='$HOME'\nC=\"it's\"\nD=\n"),
        ("# A=1\n", {"A": "2"}, "# A=1\nA=2\n"),
    ],
)
def test_env_edits_change_only_what_is_asked(before: str, changes: dict[str, str | None], after: str) -> None:
    assert planner.edit_env(before, changes) == after


def test_adding_and_removing_again_gives_the_same_bytes() -> None:
    added = config_change_env_text(ENV, {"APP_PORT": "8000", "LOG_LEVEL": "debug"})
    assert added == ENV + "APP_PORT=8000\nLOG_LEVEL=debug\n"
    assert config_change_env_text(added, {"APP_PORT": "8000", "LOG_LEVEL": "debug"}) == added
    assert config_change_env_text(added, {"APP_PORT": None, "LOG_LEVEL": None}) == ENV


def test_readers_on_the_lab_model() -> None:
    found = planner.readers(LAB_SERVICES, ["APP_PORT", "APP_IMAGE", "LAB_ADDR", "REDIS_PASSWORD", "LOG_LEVEL", "APP"])
    assert found["APP_PORT"] == ["app"]  # the app's healthcheck asks ${APP_PORT:-8000}
    assert found["APP_IMAGE"] == ["app"]
    assert found["LAB_ADDR"] == sorted(LAB_SERVICES)
    assert found["REDIS_PASSWORD"] == sorted(LAB_SERVICES)
    assert found["LOG_LEVEL"] == []
    assert found["APP"] == []  # a prefix of APP_PORT is no reference


def test_escaped_dollars_are_no_reference() -> None:
    services = {"a": {"command": ["sh", "-c", "echo $$X $${Y}"]}, "b": {"environment": {"Z": "${X:?set X}", "W": "$Y"}}}
    assert planner.readers(services, ["X", "Y"]) == {"X": ["b"], "Y": ["b"]}


def test_plan_on_the_lab_model() -> None:
    plan = config_change_plan(ENV, None, LAB_MODEL, {"APP_PORT": "8000", "LOG_LEVEL": "debug"}, {"app": "256m"})
    assert plan["errors"] == []
    assert plan["keys"] == {"added": ["APP_PORT", "LOG_LEVEL"], "changed": [], "removed": []}
    assert plan["unread"] == ["LOG_LEVEL"]
    assert plan["services"] == ["app"]
    assert plan["memory"] == {"app": {"before": None, "after": "256m"}}
    override = yaml.safe_load(plan["override_text"])
    assert override == {"services": {"app": {"mem_limit": "256m"}}}
    assert plan["override_text"].startswith(planner.MARKER)
    assert plan["needed"] and plan["env_changed"] and plan["override_changed"]


def test_plan_of_what_is_already_so_changes_nothing() -> None:
    env = ENV + "LOG_LEVEL=debug\n"
    override = planner.HEADER + "services:\n  app:\n    mem_limit: 256m\n"
    model = json.loads(LAB_MODEL)
    model["services"]["app"]["mem_limit"] = "268435456"
    plan = config_change_plan(env, override, json.dumps(model), {"LOG_LEVEL": "debug"}, {"app": "256M"})
    assert not plan["needed"] and plan["services"] == [] and plan["diff"] == []
    removed = config_change_plan(env, override, json.dumps(model), {"LOG_LEVEL": None}, {"app": None})
    assert removed["keys"]["removed"] == ["LOG_LEVEL"] and removed["override_absent"]
    assert removed["memory"] == {"app": {"before": "256m", "after": None}}
    assert removed["services"] == ["app"]


def test_a_limit_the_compose_file_sets_is_written_with_its_key() -> None:
    services = {"db": {"deploy": {"resources": {"limits": {"memory": "536870912"}}}}}
    new, changes = planner.edit_override({}, services, {"db": "1g"})
    assert new == {"services": {"db": {"deploy": {"resources": {"limits": {"memory": "1g"}}}}}}
    assert changes == {"db": {"before": "512m", "after": "1g"}}
    assert planner.edit_override({}, services, {"db": "512m"}) == ({}, {})


def test_unknown_services_and_foreign_overrides_are_refused() -> None:
    plan = config_change_plan(ENV, None, LAB_MODEL, {}, {"worker": "1g"})
    assert "Service(s) worker not defined in the project (it has: app, nginx, postgres, redis)" in plan["errors"][0]
    foreign = config_change_plan(ENV, "services: {app: {cpus: 1}}\n", LAB_MODEL, {}, {"app": "1g"})
    assert "was not written by config_change" in foreign["errors"][0]
    # Without a memory change, a foreign override is left alone.
    assert config_change_plan(ENV, "services: {}\n", LAB_MODEL, {"LOG_LEVEL": "x"}, {})["errors"] == []


def test_diffs_and_plans_hold_no_secret() -> None:
    env = ENV + "DATABASE_URL=postgresql://app:url-s3cret@db/app\n"
    plan = config_change_plan(
        env,
        None,
        LAB_MODEL,
        {"APP_DB_PASSWORD": "new-s3cret", "DATABASE_URL": "postgresql://app:new-s3cret@db/app", "LOG_LEVEL": "x"},
        {},
    )
    text = json.dumps(plan)
    assert not [s for s in SECRETS if s in text]
    assert "+APP_DB_PASSWORD=******** (changed)" in plan["diff"]
    assert "+DATABASE_URL=postgresql://app:********@db/app (changed)" in plan["diff"]
    assert "+LOG_LEVEL=x" in plan["diff"]
    assert " POSTGRES_PASSWORD=********" in plan["diff"]


def test_filter_module_names() -> None:
    assert set(FilterModule().filters()) == {
        "config_change_errors",
        "config_change_plan",
        "config_change_env_text",
        "config_change_file",
    }
