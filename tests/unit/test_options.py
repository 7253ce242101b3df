"""Typed options (issue 18 item 3): options_of builds a module's frozen record from its params once, ProjectRef is
where a compose project is, and compose_service's planner reads its Options: the compose arguments it makes from
them, and the refusals of its input check."""

from __future__ import annotations

import dataclasses
import typing as t

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils._common import options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ComposeError, ProjectRef
from ansible_collections.stackops.runbooks.plugins.modules import compose_service


@dataclasses.dataclass(frozen=True)
class Example:
    name: str
    count: int
    tags: tuple[str, ...]


def test_options_of_takes_each_field_from_its_option_or_the_checked_value() -> None:
    params = {"name": "app", "count": 2, "tags": ["a", "b"], "password": "not a field"}
    record = options_of(Example, params, tags=("a", "b"))
    assert record == Example(name="app", count=2, tags=("a", "b"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.count = 3  # type: ignore[misc]


def test_options_of_refuses_a_checked_value_without_a_field() -> None:
    with pytest.raises(TypeError, match="Example has no field cuont"):
        options_of(Example, {"name": "app", "count": 2, "tags": []}, cuont=3)


def test_project_ref_of_a_compose_module_and_of_a_service_option_set() -> None:
    compose = {"project_src": "/srv/app", "files": ["a.yaml"], "project_name": None, "compose_cli": None}
    assert ProjectRef.of(compose) == ProjectRef("/srv/app", ("a.yaml",), None, (), (), None)
    service = {"compose_project_src": "/srv/app", "compose_project_name": "shop", "compose_files": None}
    assert ProjectRef.of_service(service) == ProjectRef("/srv/app", (), "shop")
    assert ProjectRef.of_service({**service, "compose_project_src": None}) is None


def params(**changes: t.Any) -> dict[str, t.Any]:
    """compose_service's params as Ansible hands them over: every option, at its default unless changed."""
    spec = compose_service.argument_spec()
    return {**{name: option.get("default") for name, option in spec.items()}, "project_src": "/srv/app", **changes}


def test_compose_service_options_hold_the_checked_values() -> None:
    o = compose_service.check_inputs(params(services=["app"], scale={"app": "3"}, timeout=5))
    assert o.project == ProjectRef("/srv/app") and o.services == ("app",) and o.scale == {"app": 3}
    assert (o.state, o.recreate, o.pull, o.build, o.wait, o.wait_timeout, o.timeout) == (
        "started",
        "auto",
        "policy",
        "policy",
        True,
        120,
        5,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"state": "absent", "remove_volumes": True}, "remove_volumes=true deletes the project's volumes"),
        ({"remove_volumes": True, "confirm": True}, "remove_volumes only applies to state=absent, not state=started"),
        ({"wait_timeout": 0}, "wait_timeout must be at least 1 second, not 0"),
        ({"timeout": -1}, "timeout must be 0 or more seconds, not -1"),
        ({"scale": {"app": "many"}}, r"scale\['app'\] must be a whole number, not 'many'"),
        ({"scale": {"app": -1}}, r"scale\['app'\] is -1"),
    ],
)
def test_compose_service_refuses_bad_input(changes: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        compose_service.check_inputs(params(**changes))


@pytest.mark.parametrize(
    ("changes", "start", "expected"),
    [
        ({}, True, ["up", "--detach"]),
        ({}, False, ["up", "--no-start", "--no-recreate"]),
        ({"recreate": "never"}, True, ["up", "--detach", "--no-recreate"]),
        ({"recreate": "always", "timeout": 7}, True, ["up", "--detach", "--force-recreate", "--timeout", "7"]),
        ({"recreate": "always", "timeout": 7}, False, ["up", "--no-start", "--no-recreate"]),
        ({"pull": "never", "build": "always"}, True, ["up", "--detach", "--pull", "never", "--build"]),
        (
            {"build": "never", "scale": {"b": 2, "a": 0}},
            True,
            ["up", "--detach", "--no-build", "--scale", "a=0", "--scale", "b=2"],
        ),
    ],
)
def test_compose_service_up_arguments(changes: dict[str, t.Any], start: bool, expected: list[str]) -> None:
    o = compose_service.check_inputs(params(**changes))
    assert compose_service.up_args(o, o.scale, start) == expected


def test_compose_service_stop_arguments_carry_the_timeout_only_when_given() -> None:
    assert compose_service.stop_args(compose_service.check_inputs(params()), "stop") == ["stop"]
    o = compose_service.check_inputs(params(timeout=0))
    assert compose_service.stop_args(o, "down") == ["down", "--timeout", "0"]
