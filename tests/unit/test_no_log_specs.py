"""Every option that holds a secret is no_log: in every module's argument spec and in every role's
meta/argument_specs.yml, also where the secret sits inside a dict or a list of dicts (a role's connection options
with their login_password)."""

from __future__ import annotations

import importlib
import re
import typing as t
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(path.stem for path in (REPO / "plugins" / "modules").glob("*.py"))
ROLES = sorted(path.parts[-3] for path in (REPO / "roles").glob("*/meta/argument_specs.yml"))

# An option name that says its value is a secret: passwords, secrets, tokens, keys, credentials, HTTP headers
# (Authorization), the values to redact (the secrets themselves), process environments (PGPASSWORD) and webhooks (a
# Slack webhook URL holds its token).
SECRET_NAME = re.compile(
    r"pass|secret|token|key|credential|auth|header|redact|webhook|(?:^|_)env(?:$|_)", re.IGNORECASE
)
# Names the pattern matches whose values are no secret.
NOT_SECRET = {
    "big_keys_sample": "a number of Redis keys to sample",
    "env_files": "the paths of compose env files, not their contents",
    "deploy_env_file": "the path of the project's .env, not its contents",
    "config_change_env_file": "the path of the project's .env, not its contents",
    "collect_diagnostics_env_presence": "the names of variables whose presence is checked, never their values",
    "restore_drill_direct_key": "the path on the drill host of an SSH private key, never the key itself",
}
# A dict's description that names one of these says its values carry a secret ("connection options ... from the
# inventory's stackops_pg_password"). Narrower than SECRET_NAME: "key" and "pass" are common words in prose.
DESCRIBED_SECRET = re.compile(r"password|passphrase|secret|token|header|credential", re.IGNORECASE)


def secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and name not in NOT_SECRET


def secret_keys(value: object) -> bool:
    """Whether a value (a default) holds a key with a secret's name, at any depth."""
    if isinstance(value, Mapping):
        return any(secret_name(str(key)) or secret_keys(item) for key, item in value.items())
    if isinstance(value, list):
        return any(secret_keys(item) for item in value)
    return False


def suboptions(option: Mapping[str, t.Any]) -> Mapping[str, t.Any]:
    return option.get("options") or option.get("suboptions") or {}


def secret_inside(option: Mapping[str, t.Any], default: object, described: bool) -> str | None:
    """Why a dict (or list of dicts) carries a secret, or None."""
    inner = suboptions(option)
    if any(secret_name(name) or secret_inside(sub, sub.get("default"), described) for name, sub in inner.items()):
        return "a suboption holds a secret"
    if secret_keys(default):
        return "its default holds a secret"
    description = option.get("description") or ""
    if described and DESCRIBED_SECRET.search(" ".join(description) if isinstance(description, list) else description):
        return "its description names a secret"
    return None


def unmarked(spec: Mapping[str, t.Any], where: str, defaults: Mapping[str, t.Any], *, role: bool) -> Iterator[str]:
    """The options that hold a secret and are not no_log, with why. A module's dict whose secret suboptions are no_log
    passes: Ansible masks those values in the whole result, and no_log on the dict would also mask each of its other
    values (host, port, user) wherever they occur (test_a_no_log_suboption_masks_only_its_value). A role's
    dict is no_log whenever it carries a secret: validating a role's arguments masks nothing else."""
    for name, option in spec.items():
        path = f"{where}.{name}"
        if option.get("no_log"):
            continue
        default = defaults.get(name, option.get("default"))
        container = option.get("type") == "dict" or option.get("elements") == "dict"
        if secret_name(name):
            yield f"{path}: its name says secret"
        elif container and (role or not suboptions(option)):
            why = secret_inside(option, default, described=role)
            if why:
                yield f"{path}: {why}"
        yield from unmarked(suboptions(option), path, {}, role=role)


def module_spec(name: str) -> dict[str, t.Any]:
    module = importlib.import_module(f"ansible_collections.stackops.runbooks.plugins.modules.{name}")
    return module.argument_spec()


def role_specs(role: str) -> Iterator[tuple[str, Mapping[str, t.Any], Mapping[str, t.Any]]]:
    """(entry point, its options, the role's defaults) of each entry point."""
    folder = REPO / "roles" / role
    specs = yaml.safe_load((folder / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    defaults_file = folder / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    for entry, spec in specs.items():
        yield entry, spec.get("options") or {}, defaults


def test_every_module_and_role_is_walked() -> None:
    assert len(MODULES) >= 14 and "stack_health" in MODULES, MODULES
    assert len(ROLES) >= 12 and "health_check" in ROLES, ROLES
    names = {name for role in ROLES for _entry, spec, _defaults in role_specs(role) for name in spec}
    unused = sorted(set(NOT_SECRET) - names - {n for m in MODULES for n in walk_names(module_spec(m))})
    assert not unused, f"exemptions for options that no longer exist: {unused}"


def walk_names(spec: Mapping[str, t.Any]) -> Iterator[str]:
    for name, option in spec.items():
        yield name
        yield from walk_names(suboptions(option))


@pytest.mark.parametrize("name", MODULES)
def test_module_options_that_hold_a_secret_are_no_log(name: str) -> None:
    found = list(unmarked(module_spec(name), name, {}, role=False))
    assert not found, f"not no_log: {found}"


@pytest.mark.parametrize("role", ROLES)
def test_role_options_that_hold_a_secret_are_no_log(role: str) -> None:
    found = [
        problem
        for entry, spec, defaults in role_specs(role)
        for problem in unmarked(spec, f"{role}:{entry}", defaults, role=True)
    ]
    assert not found, f"not no_log in roles/{role}/meta/argument_specs.yml: {found}"


def test_the_walk_finds_every_kind_of_unmarked_secret() -> None:
    spec: dict[str, t.Any] = {
        "login_password": {"type": "str"},
        "api_token": {"type": "str", "no_log": True},
        "conn": {"type": "dict", "options": {"login_password": {"type": "str"}}},
        "targets": {"type": "list", "elements": "dict", "options": {"auth": {"type": "dict", "no_log": True}}},
        "pg": {"type": "dict", "description": "Connection options, with the password."},
        "extra": {"type": "dict"},
        "masked": {"type": "dict", "no_log": True, "options": {"secret": {"type": "str"}}},
        "big_keys_sample": {"type": "int"},
    }
    defaults = {"extra": [{"name": "a", "headers": {"Authorization": "Bearer x"}}]}
    assert sorted(unmarked(spec, "r", defaults, role=True)) == sorted(
        [
            "r.conn: a suboption holds a secret",
            "r.conn.login_password: its name says secret",
            "r.extra: its default holds a secret",
            "r.login_password: its name says secret",
            "r.pg: its description names a secret",
            "r.targets: a suboption holds a secret",
        ]
    )
    # In a module, a dict with suboptions is judged by its suboptions; descriptions are not in the spec.
    assert sorted(unmarked(spec, "m", defaults, role=False)) == [
        "m.conn.login_password: its name says secret",
        "m.extra: its default holds a secret",
        "m.login_password: its name says secret",
    ]


def test_a_no_log_suboption_masks_only_its_value() -> None:
    """Why a module's connection dict is not no_log itself: Ansible masks a no_log suboption's value in the whole
    result, and a no_log dict would add every value in it (the host, the port, the user) to what is masked."""
    spec = module_spec("stack_health")
    params = {
        "project_src": "/srv/app",
        "postgres": {"login_host": "127.0.0.1", "login_user": "postgres", "login_password": "pw-s3cret"},
    }
    assert ArgumentSpecValidator(spec).validate(params)._no_log_values == {"pw-s3cret"}
    spec["postgres"] = {**spec["postgres"], "no_log": True}
    masked = ArgumentSpecValidator(spec).validate(params)._no_log_values
    assert {"pw-s3cret", "127.0.0.1", "postgres"} <= masked, masked
