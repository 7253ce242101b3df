"""Typed options (issue 18 item 3): options_of builds a module's frozen record from its params once, ProjectRef is
where a compose project is, and each converted module's planner reads its Options: what the planners make from
them, the refusals of the input checks, and no secret option in a record's repr."""

from __future__ import annotations

import dataclasses
import time
import typing as t

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _compose_env, _health, _http, _notify, _pg_checks
from ansible_collections.stackops.runbooks.plugins.module_utils import _reach as reach
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ComposeError, ProjectRef
from ansible_collections.stackops.runbooks.plugins.module_utils._images import ImageError
from ansible_collections.stackops.runbooks.plugins.modules import (
    compose_env,
    compose_exec,
    compose_images,
    compose_logs,
    compose_reach,
    compose_service,
    docker_prune,
    notify,
    stack_health,
)


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


def test_options_of_freezes_list_options_into_tuples_and_an_absent_list_into_an_empty_one() -> None:
    record = options_of(Example, {"name": "app", "count": 2, "tags": ["a", "b"]})
    assert record.tags == ("a", "b") and isinstance(record.tags, tuple)
    assert options_of(Example, {"name": "app", "count": 2, "tags": None}).tags == ()
    assert options_of(Example, {"name": None, "count": 2, "tags": []}).name is None  # only a tuple field takes ()


def test_options_of_refuses_a_checked_value_without_a_field() -> None:
    with pytest.raises(TypeError, match="Example has no field cuont"):
        options_of(Example, {"name": "app", "count": 2, "tags": []}, cuont=3)


def test_project_ref_of_a_compose_module_and_of_a_service_option_set() -> None:
    compose = {"project_src": "/srv/app", "files": ["a.yaml"], "project_name": None, "compose_cli": None}
    assert ProjectRef.of(compose) == ProjectRef("/srv/app", ("a.yaml",), None, (), (), None)
    service = {"compose_project_src": "/srv/app", "compose_project_name": "shop", "compose_files": None}
    assert ProjectRef.of_service(service) == ProjectRef("/srv/app", (), "shop")
    assert ProjectRef.of_service({**service, "compose_project_src": None}) is None


def defaults(spec: dict[str, t.Any]) -> dict[str, t.Any]:
    return {name: option.get("default") for name, option in spec.items()}


def given(module: t.Any, **changes: t.Any) -> dict[str, t.Any]:
    """A module's params as Ansible hands them over: every option, at its default unless changed (a compose
    module's project in /srv/app)."""
    found = defaults(module.argument_spec())
    return found | ({"project_src": "/srv/app"} if "project_src" in found else {}) | changes


def params(**changes: t.Any) -> dict[str, t.Any]:
    return given(compose_service, **changes)


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


# --- compose_exec -------------------------------------------------------------------------------------------


def test_compose_exec_options_hold_the_checked_values_and_hide_env_values() -> None:
    o = compose_exec.check_inputs(
        given(compose_exec, service="db", argv=["psql"], env={"PGPASSWORD": 5}, ok_rc=[0, 1], read_only=True)
    )
    assert (o.project, o.service, o.argv, o.env, o.ok_rc, o.read_only) == (
        ProjectRef("/srv/app"),
        "db",
        ("psql",),
        {"PGPASSWORD": "5"},
        (0, 1),
        True,
    )
    secret = compose_exec.check_inputs(given(compose_exec, service="db", argv=["true"], env={"PGPASSWORD": "s3cr3t"}))
    assert "s3cr3t" not in repr(secret)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"argv": []}, r"argv is empty; give the command to run as a list"),
        ({"index": 0}, r"index must be 1 or more \(the first container is 1\), not 0\."),
    ],
)
def test_compose_exec_refuses_bad_input(changes: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        compose_exec.check_inputs(given(compose_exec, service="db", **{"argv": ["true"], **changes}))


def test_compose_exec_arguments_from_its_options() -> None:
    o = compose_exec.check_inputs(
        given(
            compose_exec, service="db", argv=["psql", "-c", "SELECT 1"], index=2, user="postgres", env={"B": 1, "A": 2}
        )
    )
    assert compose_exec.exec_args(o) == [
        *["exec", "-T", "--index", "2", "--user", "postgres", "-e", "A", "-e", "B"],
        *["db", "psql", "-c", "SELECT 1"],
    ]


# --- compose_logs -------------------------------------------------------------------------------------------


def test_compose_logs_options_hold_the_compiled_pattern_and_hide_redacted_values() -> None:
    o = compose_logs.check_inputs(
        given(compose_logs, services=["app"], pattern="error", ignore_case=True, redact=["s3cr3t"])
    )
    assert o.services == ("app",) and o.pattern is not None and o.pattern.search("ERROR: x")
    assert o.redact == ("s3cr3t",) and "s3cr3t" not in repr(o)
    assert compose_logs.check_inputs(given(compose_logs, pattern="error")).pattern.search("ERROR") is None  # type: ignore[union-attr]
    assert compose_logs.check_inputs(given(compose_logs, pattern="")).pattern is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pattern": "("}, r"pattern '\(' is not a valid regular expression"),
        ({"tail": "-5"}, r"tail must be a number of lines or 'all', not '-5'\."),
    ],
)
def test_compose_logs_refuses_bad_input(changes: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        compose_logs.check_inputs(given(compose_logs, **changes))


READ = [
    "app-1  | 2026-12-07T03:00:02.000000000Z error: password s3cr3t refused",
    "db-1   | 2026-12-07T03:00:01.000000000Z ready",
    "app-1  | 2026-12-07T03:00:00.000000000Z error: boot",
]


def test_compose_logs_selects_redacts_and_orders_the_kept_lines() -> None:
    o = compose_logs.check_inputs(given(compose_logs, pattern="error", redact=["s3cr3t"]))
    assert compose_logs.select(o, READ) == [READ[0].replace("s3cr3t", "[REDACTED]"), READ[2]]
    by_time = compose_logs.check_inputs(given(compose_logs, timestamps=True))
    assert compose_logs.select(by_time, READ) == [READ[2], READ[1], READ[0]]


@pytest.mark.parametrize(("return_lines", "expected"), [(-1, READ), (0, []), (2, READ[1:]), (9, READ)])
def test_compose_logs_returns_the_last_lines_asked_for(return_lines: int, expected: list[str]) -> None:
    assert (
        compose_logs.returned(compose_logs.check_inputs(given(compose_logs, return_lines=return_lines)), READ)
        == expected
    )


# --- compose_images -----------------------------------------------------------------------------------------


def test_compose_images_options_and_their_refusal() -> None:
    o = compose_images.check_inputs(given(compose_images, services=["app"], pull=True, registry_timeout=3))
    assert (o.project, o.services, o.pull, o.fail_on_pull_error, o.registry_timeout) == (
        ProjectRef("/srv/app"),
        ("app",),
        True,
        True,
        3,
    )
    with pytest.raises(ImageError, match=r"registry_timeout must be more than 0 seconds, not 0\."):
        compose_images.check_inputs(given(compose_images, registry_timeout=0))


def test_compose_images_asks_the_registry_within_the_timeout_given(monkeypatch: pytest.MonkeyPatch) -> None:
    timeouts: list[int] = []

    class Registry:
        def __init__(self, _docker: t.Any, timeout: int, _config: t.Any) -> None:
            timeouts.append(timeout)

        def digest(self, _ref: t.Any) -> str:
            raise ImageError("no registry here")

    class Docker:
        def registry_config(self) -> dict[str, t.Any]:
            return {}

        def platform(self) -> str:
            return "linux/amd64"

    monkeypatch.setattr(compose_images, "Registry", Registry)
    module = type("Module", (), {"check_mode": True})()
    sources = [compose_images.Source("app", "registry.example/app:1", "", "")]
    fetches = compose_images.pull_all(module, Docker(), sources, {"registry.example/app:1": None}, 7)  # type: ignore[arg-type]
    assert timeouts == [7] and fetches["registry.example/app:1"].error == "no registry here"


# --- compose_reach ------------------------------------------------------------------------------------------

SERVICES = {"app": {"depends_on": {"db": {}}}, "db": {"expose": ["5432"]}}


@pytest.mark.parametrize("timeout", [0.05, 61])
def test_compose_reach_refuses_a_timeout_out_of_range(timeout: float) -> None:
    with pytest.raises(reach.ReachError, match=f"timeout must be from 0.1 to 60 seconds, not {timeout:g}\\."):
        compose_reach.check_inputs(given(compose_reach, timeout=timeout))


def test_compose_reach_plans_the_edges_its_options_name() -> None:
    o = compose_reach.check_inputs(
        given(compose_reach, services=["app"], edges=[{"from": "app", "to": "10.0.0.9:80"}], targets={"db": 6432})
    )
    assert (o.services, o.depends_on, o.timeout, o.fail_on) == (("app",), True, 3, "critical")
    edges, unresolved = reach.plan(SERVICES, list(o.services), o.depends_on, list(o.edges), o.targets)
    assert [(e.source, e.target, e.host, e.port, e.origin) for e in edges] == [
        ("app", "db", "db", 6432, "depends_on"),
        ("app", "10.0.0.9:80", "10.0.0.9", 80, "edges"),
    ]
    assert unresolved == []
    alone = compose_reach.check_inputs(given(compose_reach, depends_on=False))
    assert reach.plan(SERVICES, ["app"], alone.depends_on, list(alone.edges), alone.targets) == ([], [])


# --- compose_env, and fail_on given to finish ---------------------------------------------------------------


def test_compose_env_options_name_the_variables_shown_as_secrets_or_as_they_are() -> None:
    o = compose_env.check_inputs(given(compose_env, services=["app"], sensitive_names=["SMTP_LOGIN"], fail_on="never"))
    assert (o.project, o.services, o.fail_on) == (ProjectRef("/srv/app"), ("app",), "never")
    assert o.names == _compose_env.Names(("SMTP_LOGIN",), ())
    classify = _compose_env.Classifier(o.names.sensitive_names, o.names.public_names)
    assert classify.kind("SMTP_LOGIN", "someone") == "secret"


def test_finish_takes_fail_on_from_the_options() -> None:
    warning = [_health.Finding("config", "warning", "stale")]
    with pytest.raises(StackopsError, match="Health is warning: stale"):
        _health.finish(warning, {}, "warning")
    assert _health.finish(warning, {}, "critical")["status"] == "warning"


# --- stack_health -------------------------------------------------------------------------------------------


def health_params(**changes: t.Any) -> dict[str, t.Any]:
    return given(stack_health, **changes)


def test_stack_health_options_hold_the_merged_thresholds_and_hide_the_parts_secrets() -> None:
    postgres = defaults(stack_health.argument_spec()["postgres"]["options"]) | {"login_password": "s3cr3t", "top": 5}
    endpoint = defaults(_http.http_argument_spec()["endpoints"]["options"]) | {"url": "http://127.0.0.1/health"}
    http = defaults(stack_health.argument_spec()["http"]["options"]) | {
        "endpoints": [endpoint | {"headers": {"X-Token": "t0ken"}}]
    }
    o = stack_health.check_inputs(
        health_params(
            thresholds={"restarts_warning": 3},
            postgres=postgres,
            http=http,
            config={"sensitive_names": ["K"], "public_names": []},
        )
    )
    assert o.thresholds == {**stack_health.DEFAULTS, "restarts_warning": 3.0}
    assert o.config == _compose_env.Names(("K",), ()) and o.nginx_test == ("nginx", "-t")
    assert isinstance(o.http, _http.Health) and [(e.name, e.url, e.headers) for e in o.http.endpoints] == [
        ("http://127.0.0.1/health", "http://127.0.0.1/health", {"X-Token": "t0ken"})
    ]
    assert isinstance(o.postgres, _pg_checks.Health) and o.postgres.top == 5 and o.redis is None
    assert o.postgres.login.password == "s3cr3t" and o.postgres.thresholds == _pg_checks.DEFAULTS
    assert "s3cr3t" not in repr(o) and "t0ken" not in repr(o)
    plain = stack_health.check_inputs(health_params())
    assert (plain.config, plain.http, plain.thresholds) == (None, None, stack_health.DEFAULTS)


def test_a_stack_health_part_whose_options_are_refused_is_that_parts_critical_finding() -> None:
    postgres = defaults(stack_health.argument_spec()["postgres"]["options"]) | {"login_port": 0}
    redis = defaults(stack_health.argument_spec()["redis"]["options"]) | {"thresholds": {"memory": 1}}
    o = stack_health.check_inputs(health_params(postgres=postgres, redis=redis))
    assert isinstance(o.postgres, StackopsError) and isinstance(o.redis, StackopsError)
    module = type("Module", (), {"check_mode": False})()
    found = {name: stack_health.timed(module, name, part) for name, part in stack_health.parts(module, o).items()}
    assert [f.message for f in found["postgres"][1]] == [
        "postgres: login_port must be a TCP port from 1 to 65535, not 0."
    ]
    assert found["redis"][1][0].message.startswith("redis: Unknown threshold 'memory'")
    assert not found["postgres"][3] and not found["redis"][3]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nginx_test": ["sh", "-c", "x"]}, "nginx_test must be nginx's config test"),
        ({"thresholds": {"restarts": 1}}, "Unknown threshold 'restarts'"),
        ({"postgres": {"top": 0}}, r"postgres.top must be at least 1, not 0\."),
        ({"redis": {"big_keys_sample": 0}}, r"redis.big_keys_sample must be at least 1, not 0\."),
        ({"http": {"timeout": 0, "ca_path": None, "endpoints": []}}, r"timeout must be more than 0 seconds, not 0\."),
    ],
)
def test_stack_health_refuses_bad_input_before_anything_is_read(changes: dict[str, t.Any], message: str) -> None:
    with pytest.raises(StackopsError, match=message):
        stack_health.check_inputs(health_params(**changes))


def test_stack_health_runs_the_parts_its_options_name() -> None:
    module = type("Module", (), {"check_mode": False})()
    assert list(stack_health.parts(module, stack_health.check_inputs(health_params()))) == ["services"]
    http = defaults(stack_health.argument_spec()["http"]["options"]) | {"endpoints": []}
    assert list(stack_health.parts(module, stack_health.check_inputs(health_params(http=http)))) == ["services", "http"]


# --- docker_prune -------------------------------------------------------------------------------------------


def test_docker_prune_options_hold_the_age_in_seconds() -> None:
    o = docker_prune.check_inputs(given(docker_prune, older_than="2d", labels=["job=nightly"], docker_cli="/bin/d"))
    assert (o.older_than, o.labels, o.keep_labels, o.images, o.containers, o.docker_cli) == (
        172800,
        ("job=nightly",),
        ("com.docker.compose.project",),
        True,
        True,
        "/bin/d",
    )
    with pytest.raises(docker_prune.PruneError, match="older_than '2 weeks' is not a duration"):
        docker_prune.check_inputs(given(docker_prune, older_than="2 weeks"))


def container(name: str, labels: dict[str, str], finished: str) -> dict[str, t.Any]:
    return {
        "Id": name,
        "Name": f"/{name}",
        "Created": "2026-01-01T00:00:00Z",
        "State": {"Status": "exited", "FinishedAt": finished},
        "Config": {"Labels": labels, "Image": "busybox"},
    }


def test_docker_prune_plans_what_its_options_select() -> None:
    o = docker_prune.check_inputs(given(docker_prune, labels=["job"]))
    cutoff = 1_800_000_000.0 - o.older_than
    containers = [
        container("old", {"job": "x"}, "2026-01-02T00:00:00Z"),
        container("kept", {"job": "x", "com.docker.compose.project": "shop"}, "2026-01-02T00:00:00Z"),
        container("unlabelled", {}, "2026-01-02T00:00:00Z"),
        container("recent", {"job": "x"}, "2027-01-15T00:00:00Z"),
    ]
    planned = docker_prune.plan_containers(containers, o.keep_labels, cutoff, o.labels)
    assert [c["id"] for c in planned] == ["old"]


def test_docker_prune_run_plans_with_its_options_in_check_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = [
        container("old", {"job": "x"}, "2026-01-02T00:00:00Z"),
        container("kept", {"job": "x", "com.docker.compose.project": "shop"}, "2026-01-02T00:00:00Z"),
    ]

    class Docker:
        def __init__(self, _module: t.Any, cli: str | None) -> None:
            assert cli == "/opt/docker"

        def read(self, *_args: str) -> str:
            return "old kept"

        def inspect(self, kind: str, _ids: list[str]) -> list[dict[str, t.Any]]:
            return stopped if kind == "container" else []

    monkeypatch.setattr(docker_prune, "Docker", Docker)
    module = type("Module", (), {"check_mode": True})()
    module.params = given(docker_prune, images=False, labels=["job=x"], docker_cli="/opt/docker")
    result = docker_prune.run_module(module)
    assert (result["changed"], [c["id"] for c in result["containers"]], result["images"]) == (True, ["old"], [])


def test_docker_prune_calls_the_docker_cli_its_options_name() -> None:
    module = type("Module", (), {"get_bin_path": lambda _self, _name: None})()
    assert docker_prune.Docker(module, "/opt/docker").cli == "/opt/docker"
    with pytest.raises(docker_prune.PruneError, match="The docker CLI is not on PATH"):
        docker_prune.Docker(module, None)


# --- notify -------------------------------------------------------------------------------------------------

URL = "https://hooks.example.com/services/T0/B0/s3cr3t"


def notify_params(**changes: t.Any) -> dict[str, t.Any]:
    return given(notify, url=URL, host="lab1", check="health_check", status="critical", **changes)


def test_notify_options_hold_the_rules_and_hide_the_url() -> None:
    o = notify.check_inputs(notify_params(priorities=[{"check": "backup", "priority": "P1"}], critical=["down"]))
    assert o.rules[0] == {"check": "backup", "priority": "P1"} and o.rules[1:] == tuple(_notify.DEFAULT_RULES)
    assert (o.critical, o.findings, o.after, o.state_dir) == (("down",), (), 1, "")
    assert "s3cr3t" not in repr(o)


def test_notify_alert_from_its_options() -> None:
    o = notify.check_inputs(notify_params(title="t", fields={"k": "v"}, duration_s=1.5))
    findings = [{"check": "health_check", "severity": "critical", "message": "down", "priority": "P2"}]
    alert = notify.alert_of(o, "alert", findings, {"failures": 2, "since": "then"}, "now")
    assert alert == {
        "event": "alert",
        "host": "lab1",
        "check": "health_check",
        "playbook": "health_check",
        "status": "critical",
        "severity": "P2",
        "findings": findings,
        "consecutive_failures": 2,
        "since": "then",
        "time": "now",
        "duration_s": 1.5,
        "awx_job_id": None,
        "title": "t",
        "fields": {"k": "v"},
    }
    assert notify.alert_of(notify.check_inputs(notify_params(playbook="pb")), None, [], {}, "now")["playbook"] == "pb"


def test_notify_sends_as_its_options_say_and_never_shows_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, t.Any]]] = []

    def open_url(url: str, **kwargs: t.Any) -> t.Any:
        calls.append((url, kwargs))
        raise OSError(f"refused: {url}")

    monkeypatch.setattr(notify, "open_url", open_url)
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    module = type("Module", (), {"jsonify": staticmethod(str)})()
    o = notify.check_inputs(notify_params(attempts=3, timeout=4, validate_certs=False))
    with pytest.raises(StackopsError) as raised:
        notify.send(module, o, {"a": 1})
    assert str(raised.value) == (
        "The webhook at https://hooks.example.com was not told: it could not be reached "
        "(refused: https://hooks.example.com)."
    )
    assert [(url, kw["timeout"], kw["validate_certs"]) for url, kw in calls] == [(URL, 4, False)] * 3
