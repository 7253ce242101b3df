"""Parsers and planners of plugins/module_utils/_compose.py over output recorded from Compose 2.26.1
(tests/unit/fixtures/compose/, captured on the lab with a scratch project)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _compose as compose

FIXTURES = Path(__file__).parent / "fixtures" / "compose"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_ps_json_lines_of_2_26_1() -> None:
    containers = compose.parse_ps(fixture("2.26.1-ps-running-exited-created.jsonl"))
    by_service = {c.service: c for c in containers}
    assert sorted(by_service) == ["backend", "db", "migrate", "worker"]
    assert (by_service["db"].state, by_service["db"].health, by_service["db"].running) == ("running", "healthy", True)
    assert (by_service["migrate"].state, by_service["migrate"].exit_code) == ("exited", 3)
    assert by_service["worker"].state == "created" and not by_service["worker"].running
    # Labels arrive as one comma-joined string; null Publishers become no ports.
    assert by_service["db"].labels["com.docker.compose.service"] == "db"
    assert by_service["db"].labels["com.docker.compose.config-hash"]
    assert by_service["db"].ports == []


def test_ps_json_array_before_2_21() -> None:
    # Compose < 2.21.0 printed one JSON array (docker/compose#10918): the same rows, constructed from the
    # 2.26.1 capture in that shape, with Publishers present for one container.
    rows = [json.loads(line) for line in fixture("2.26.1-ps-running-exited-created.jsonl").splitlines()]
    rows[0]["Publishers"] = [
        {"URL": "127.0.0.1", "TargetPort": 80, "PublishedPort": 8080, "Protocol": "tcp"},
        {"URL": "", "TargetPort": 81, "PublishedPort": 0, "Protocol": "tcp"},
    ]
    from_array = compose.parse_ps(json.dumps(rows))
    from_lines = compose.parse_ps(fixture("2.26.1-ps-running-exited-created.jsonl"))
    assert [c.name for c in from_array] == [c.name for c in from_lines]
    backend = next(c for c in from_array if c.service == "backend")
    assert backend.ports == [{"url": "127.0.0.1", "targetport": 80, "publishedport": 8080, "protocol": "tcp"}]


def test_ps_of_an_empty_project() -> None:
    assert compose.parse_ps("") == []
    assert compose.parse_ps("[]\n") == []


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("a=1,b=2", {"a": "1", "b": "2"}),
        (
            "com.docker.compose.depends_on=db:service_healthy:false,redis:service_healthy:false,x=1",
            {"com.docker.compose.depends_on": "db:service_healthy:false,redis:service_healthy:false", "x": "1"},
        ),
        ({"a": "1"}, {"a": "1"}),
        (None, {}),
    ],
)
def test_labels(labels: object, expected: dict) -> None:
    assert compose.parse_labels(labels) == expected


@pytest.mark.parametrize(
    ("name", "changes", "statuses"),
    [
        ("2.26.1-dry-run-up-unchanged.txt", False, {"Running", "Waiting", "Healthy"}),
        (
            "2.26.1-dry-run-up-creates-and-starts.txt",
            True,
            {"Running", "Creating", "Created", "Waiting", "Healthy", "Starting", "Started"},
        ),
        (
            "2.26.1-dry-run-up-recreate.txt",
            True,
            {"Recreate", "Recreated", "Starting", "Started", "Waiting", "Healthy"},
        ),
    ],
)
def test_dry_run_output(name: str, changes: bool, statuses: set) -> None:
    actions, unknown = compose.parse_dry_run(fixture(name))
    assert unknown == []
    assert compose.would_change(actions) is changes
    assert {status for _kind, _name, status in actions} == statuses


def test_dry_run_keeps_lines_it_does_not_know() -> None:
    actions, unknown = compose.parse_dry_run(" DRY-RUN MODE -  Container x-1  Frobnicating\nError: boom\n")
    assert actions == [] and unknown == ["DRY-RUN MODE -  Container x-1  Frobnicating", "Error: boom"]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("2.26.1-4\n", (2, 26, 1)),
        ("v2.29.7", (2, 29, 7)),
        ("Docker Compose version v2.18.1", (2, 18, 1)),
        ("docker-compose version 1.29.2, build unknown", (1, 29, 2)),
        ("garbage", None),
    ],
)
def test_versions(text: str, version: tuple | None) -> None:
    assert compose.parse_version(text) == version


SERVICES = {
    "db": {},
    "redis": {},
    "backend": {"depends_on": {"db": {}, "redis": {}}},
    "frontend": {"depends_on": {"backend": {}}},
    "worker": {"depends_on": {"db": {}}},
    "nginx": {"depends_on": {"frontend": {}, "backend": {}}},
}


@pytest.mark.parametrize(
    ("wanted", "dependants", "order"),
    [
        (["db"], True, ["db", "backend", "frontend", "nginx", "worker"]),
        (["db"], False, ["db"]),
        (["redis", "frontend"], True, ["redis", "backend", "frontend", "nginx"]),
        (["nginx", "db"], False, ["db", "nginx"]),
    ],
)
def test_dependency_order(wanted: list, dependants: bool, order: list) -> None:
    assert compose.dependency_order(SERVICES, wanted, dependants) == order


def test_dependency_cycle_is_refused() -> None:
    with pytest.raises(compose.ComposeError, match="cycle"):
        compose.dependency_order({"a": {"depends_on": {"b": {}}}, "b": {"depends_on": {"a": {}}}}, ["a"], False)


def test_dependencies_of() -> None:
    assert compose.dependencies_of(SERVICES, ["nginx"]) == ["backend", "db", "frontend", "nginx", "redis"]


def container(service: str, state: str, health: str = "", exit_code: int = 0) -> compose.Container:
    return compose.Container(
        id=service,
        name=f"p-{service}-1",
        service=service,
        state=state,
        health=health,
        exit_code=exit_code,
        image="img",
        created="",
    )


@pytest.mark.parametrize(
    ("containers", "problems", "final"),
    [
        ([container("db", "running", "healthy"), container("migrate", "exited")], [], False),
        ([container("db", "running", "starting")], ["p-db-1 is starting"], False),
        ([container("db", "running", "unhealthy")], ["p-db-1 is unhealthy"], False),
        ([container("db", "exited", exit_code=137)], ["p-db-1 is exited (exit code 137)"], False),
        (
            [container("migrate", "exited", exit_code=3)],
            ["p-migrate-1 (one-shot service migrate) exited with code 3"],
            True,
        ),
        # Seen from Compose 2.26.1 in make test: a one-shot that had exited 3 listed as running with ExitCode 3.
        (
            [container("migrate", "running", exit_code=3)],
            ["p-migrate-1 (one-shot service migrate) exited with code 3"],
            True,
        ),
        ([], ["service db has no container"], False),
    ],
)
def test_readiness(containers: list, problems: list, final: bool) -> None:
    services = {"db": {"restart": "unless-stopped"}, "migrate": {"restart": "no"}}
    wanted = sorted({c.service for c in containers} or {"db"})
    assert compose.readiness_problems(containers, services, wanted) == (problems, final)


def test_fingerprint_sees_a_one_shot_that_ran_again() -> None:
    first = container("migrate", "exited")
    again = compose.Container(**{**first.__dict__, "started": "2026-11-23T08:00:00Z"})
    assert compose.fingerprint([first]) != compose.fingerprint([again])
    assert compose.fingerprint([first]) == compose.fingerprint([container("migrate", "exited")])


# `docker inspect --format POLL_FORMAT` recorded on Docker 20.10.24 (the lab's engine): a one-shot that exited 3, a
# healthcheck not yet run, a failing one, no healthcheck, a created container, and the lab's healthy app.
POLLED = fixture("docker-20.10.24-inspect-poll.txt")
POLLED_IDS = [line.split()[0] for line in POLLED.splitlines()]


def test_poll_format_as_docker_20_10_answers_it() -> None:
    seen = compose.parse_polled(POLLED + "Error: No such object: 0123abcd\n")
    got = [(v["state"], v["health"], v["exit_code"], v["restarts"]) for v in seen.values()]
    assert got == [
        ("exited", "", 3, 0),
        ("running", "starting", 0, 0),
        ("running", "unhealthy", 0, 0),
        ("running", "", 0, 0),
        ("created", "", 0, 0),
        ("running", "healthy", 0, 0),
    ]
    assert seen[POLLED_IDS[0]]["started"] == "2026-12-07T15:26:22.979846601Z"


class Replay:
    """A module whose run_command answers with recorded output and keeps the argv it was given."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.argv: list[list[str]] = []

    def run_command(self, argv: list[str], **_kwargs: object) -> tuple[int, str, str]:
        self.argv.append(argv)
        rc, out = self.answers.pop(0)
        return rc, out, ""


def project_of(module: Replay, listed: list[compose.Container]) -> compose.ComposeProject:
    project = compose.ComposeProject.__new__(compose.ComposeProject)
    project.module = module
    project.cli = ["/usr/bin/docker", "compose"]
    project.environ = lambda: {}  # type: ignore[method-assign]
    project.containers = lambda: listed  # type: ignore[method-assign]
    return project


def known(cid: str, service: str) -> compose.Container:
    return compose.Container(cid[:12], f"p-{service}-1", service, "running", "starting", 0, "img", "")


def test_a_poll_rereads_known_containers_with_one_inspect() -> None:
    module = Replay((0, POLLED))
    before = [known(POLLED_IDS[1], "db"), known(POLLED_IDS[5], "app")]
    after = project_of(module, listed=[]).polled(before, ["db", "app"])
    assert [(c.service, c.state, c.health) for c in after] == [
        ("db", "running", "starting"),
        ("app", "running", "healthy"),
    ]
    assert module.argv == [["/usr/bin/docker", "inspect", "--format", compose.POLL_FORMAT, *[c.id for c in before]]]


@pytest.mark.parametrize(
    ("before", "wanted", "answer"),
    [
        # A container was removed or replaced: inspect fails for it.
        ([known(POLLED_IDS[5], "app"), known("0123abcd0123", "db")], ["app", "db"], (1, POLLED)),
        # A wanted service has no container yet: only the listing can show a new one.
        ([known(POLLED_IDS[5], "app")], ["app", "db"], None),
        ([], ["app"], None),
    ],
)
def test_a_poll_falls_back_to_the_listing(before: list, wanted: list, answer: tuple | None) -> None:
    listed = [known(POLLED_IDS[0], "fresh")]
    module = Replay(*([answer] if answer else []))
    assert project_of(module, listed).polled(before, wanted) is listed
    assert len(module.argv) == (1 if answer else 0)
