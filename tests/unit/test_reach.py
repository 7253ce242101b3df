"""compose_reach's planner and probe parsers (plugins/module_utils/_reach.py), over the probes' real output.

tests/unit/fixtures/reach/ holds what each probe script printed for four edges: a listening port, a closed port, a
port that never answers (a listener with a full backlog) and a name that does not resolve, with a 1 s timeout. The
tools: Python 3.11 and bash 5.2 with coreutils' timeout (Debian bookworm, as in the lab image), and, from Debian
bookworm's packages, netcat-openbsd 1.219, busybox 1.35 (its own sh and nc) and busybox 1.35 installed as `nc`
(as Alpine does). dispatch-*-alone-*: the module's one exec (DISPATCH) with only that tool on the PATH (busybox: its
own sh and applets), probing a listening and a closed port. lab1-bookworm-* and lab3-trixie-* are the lab's own
containers (lab1's app: Python 3.11.2, bash 5.2.15; lab3's backend: Python 3.13.5, bash 5.2.37), through `docker
compose exec -T`, with three edges: the host's PostgreSQL, port 1 of the host's address, a name that does not resolve.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _reach as reach
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError

FIXTURES = Path(__file__).parent / "fixtures" / "reach"
FOUR = "open-closed-timeout-unknown.txt"

# The lab's two stack shapes as `docker compose config --format json` gives them (host networking, no ports).
LAB1 = {
    "postgres": {"network_mode": "host"},
    "redis": {"network_mode": "host"},
    "app": {"network_mode": "host", "depends_on": {"postgres": {}, "redis": {}}},
    "nginx": {"network_mode": "host", "depends_on": {"app": {}}},
}
LAB3 = {
    "db": {"network_mode": "host"},
    "redis": {"network_mode": "host"},
    "backend": {"network_mode": "host", "depends_on": {"db": {}, "redis": {}}},
    "frontend": {"network_mode": "host"},
    "nginx": {"network_mode": "host", "depends_on": {"backend": {}, "frontend": {}}},
}
# What the health_check role passes: every shape's names, those the project lacks ignored.
TARGETS = {
    "postgres": "127.0.2.1:5432",
    "db": "127.0.2.1:5432",
    "redis": "127.0.2.1:6379",
    "app": "127.0.2.1:8000",
    "backend": "127.0.2.1:8000",
    "frontend": "127.0.2.1:5173",
}
# A project on a compose network: services reach each other by name, at the ports their definitions name.
BRIDGE = {
    "db": {"expose": ["5432"]},
    "cache": {"ports": [{"target": 6379, "published": "6380", "protocol": "tcp"}, {"target": 53, "protocol": "udp"}]},
    "api": {"depends_on": {"db": {}, "cache": {}, "worker": {}}},
    "worker": {},
}


def edges_of(found: list[reach.Edge]) -> list[tuple[str, str, str, str]]:
    return [(e.source, e.target, e.address, e.origin) for e in found]


@pytest.mark.parametrize(
    ("fixture", "tool", "errors"),
    [
        (
            "python3-3.11",
            "python3",
            ["[Errno 111] Connection refused", "timed out", "[Errno -2] Name or service not known"],
        ),
        (
            "bash-5.2-coreutils-timeout",
            "bash",
            [
                "bash: connect: Connection refused",
                "no answer within 1 s",
                "bash: line 1: no-such-host.invalid: Name or",
            ],
        ),
        (
            "nc-openbsd-1.219",
            "nc",
            [
                "nc: connect to 127.0.0.1 port 47134 (tcp) failed: Connection refused",
                "nc: connect to 127.0.0.1 port 47135 (tcp) timed out: Operation now in progress",
                'nc: getaddrinfo for host "no-such-host.invalid" port 5432: Name or service not known',
            ],
        ),
        (
            "busybox-1.35-debian",
            "busybox",
            [
                "nc: can't connect to remote host (127.0.0.1): Connection refused",
                "nc: timed out",
                "nc: bad address 'no-such-host.invalid'",
            ],
        ),
        (
            "nc-is-busybox-1.35",
            "nc",
            [
                "nc: can't connect to remote host (127.0.0.1): Connection refused",
                "nc: timed out",
                "nc: bad address 'no-such-host.invalid'",
            ],
        ),
    ],
)
def test_each_tool_tells_open_closed_timeout_and_unknown(fixture: str, tool: str, errors: list[str]) -> None:
    results = reach.parse_probe(tool, (FIXTURES / f"{fixture}-{FOUR}").read_text(), 1, 4)
    assert [ok for ok, _e, _ms in results] == [True, False, False, False]
    assert results[0][1] == ""
    for (_ok, error, _ms), expected in zip(results[1:], errors):
        assert error.startswith(expected), error
    # Every tool timed each connect in the container; the one that never answered took the whole second.
    times = [ms for _ok, _e, ms in results]
    assert all(ms is not None and ms >= 0 for ms in times), times
    assert 950 <= t.cast(float, times[2]) <= 1200, times


@pytest.mark.parametrize("shape", ["lab1-bookworm", "lab3-trixie"])
def test_the_lab_containers_probe_open_closed_and_unknown(shape: str) -> None:
    # What the module runs (one exec: the tools, the one used, then its lines), and bash's probe alone.
    tools, tool, body = reach.parse_run((FIXTURES / f"{shape}-dispatch-open-closed-unknown.txt").read_text())
    assert (tools, tool) == (["python3", "bash", "timeout"], "python3")
    for used, text in (("python3", body), ("bash", (FIXTURES / f"{shape}-bash-open-closed-unknown.txt").read_text())):
        results = reach.parse_probe(used, text, 1, 3)
        assert [ok for ok, _e, _ms in results] == [True, False, False]
        assert "Connection refused" in results[1][1] and "Name or service not known" in results[2][1]
        assert all(ms is not None and 0 <= ms < 1000 for _ok, _e, ms in results)


@pytest.mark.parametrize(
    ("alone", "tools", "tool", "refused"),
    [
        ("bash", ["bash", "timeout"], "bash", "bash: connect: Connection refused"),
        ("nc", ["nc"], "nc", "nc: connect to 127.0.0.1 port 47144 (tcp) failed: Connection refused"),
        # busybox's sh finds its own applets with `command -v`: its nc is `nc`, without -z (the -e fallback).
        (
            "busybox",
            ["nc", "busybox", "timeout"],
            "nc",
            "nc: can't connect to remote host (127.0.0.1): Connection refused",
        ),
        ("none", [], None, ""),
    ],
)
def test_the_dispatcher_picks_the_best_tool_found(alone: str, tools: list[str], tool: str | None, refused: str) -> None:
    found, used, body = reach.parse_run((FIXTURES / f"dispatch-{alone}-alone-open-closed.txt").read_text())
    assert (found, used) == (tools, tool)
    if used is None:
        assert body == ""
        return
    (ok, error, ms), (not_ok, refusal, _ms) = reach.parse_probe(used, body, 1, 2)
    assert (ok, error, not_ok, refusal) == (True, "", False, refused)
    assert ms is not None


def test_a_cut_off_probe_leaves_the_rest_not_run() -> None:
    text = (FIXTURES / f"python3-3.11-{FOUR}").read_text().splitlines()[0]
    results = reach.parse_probe("python3", text, 1, 3)
    assert results[0][0] is True
    assert results[1:] == [(False, "the probe ended before this edge", None)] * 2


@pytest.mark.parametrize(
    ("start", "end", "ms"),
    [
        ("1796613128.940780", "1796613128.960338", 19.6),
        ("1796613128,940780", "1796613128,960338", 19.6),  # bash in a locale with a decimal comma
        ("1796613139909923905", "1796613139935605260", 25.7),
        ("1796613103%N", "1796613104%N", None),  # busybox date without %N
        ("", "", None),
    ],
)
def test_elapsed_ms_from_each_clock(start: str, end: str, ms: float | None) -> None:
    assert reach.elapsed_ms(start, end) == ms


def test_probe_values_are_arguments_never_script() -> None:
    edges = [reach.Edge("app", "db", "db.internal", 5432, "edges"), reach.Edge("app", "x", "::1", 6379, "edges")]
    assert reach.probe_argv("python3", 2.5, edges) == [
        "python3",
        "-c",
        reach.PYTHON,
        "2.5",
        "db.internal",
        "5432",
        "::1",
        "6379",
    ]
    assert reach.probe_argv("bash", 0.5, edges)[3:5] == ["bash", "0.5"]
    # nc -w takes whole seconds.
    assert reach.probe_argv("busybox", 0.5, edges)[3:6] == ["sh", "1", "busybox"]
    # The dispatcher's own arguments: the timeouts, the probe scripts (constants), then the pairs.
    assert reach.run_argv(0.5, edges) == [
        "sh",
        "-c",
        reach.DISPATCH,
        "sh",
        "0.5",
        "1",
        reach.PYTHON,
        reach.BASH,
        reach.NC,
        "db.internal",
        "5432",
        "::1",
        "6379",
    ]
    assert reach.probe_argv("nc", 2.1, edges)[4:] == ["3", "nc", "db.internal", "5432", "::1", "6379"]
    assert edges[1].address == "[::1]:6379"


def test_lab1_depends_on_with_the_stack_settings() -> None:
    edges, unresolved = reach.plan(LAB1, sorted(LAB1), True, [], TARGETS)
    assert edges_of(edges) == [
        ("app", "postgres", "127.0.2.1:5432", "depends_on"),
        ("app", "redis", "127.0.2.1:6379", "depends_on"),
        ("nginx", "app", "127.0.2.1:8000", "depends_on"),
    ]
    assert unresolved == []


def test_lab3_depends_on_with_the_stack_settings_and_an_explicit_edge() -> None:
    explicit = [{"from": "backend", "to": "127.0.2.4:1"}, {"from": "backend", "to": "db"}]
    edges, unresolved = reach.plan(LAB3, sorted(LAB3), True, explicit, TARGETS)
    assert edges_of(edges) == [
        ("backend", "db", "127.0.2.1:5432", "depends_on"),
        ("backend", "redis", "127.0.2.1:6379", "depends_on"),
        ("nginx", "backend", "127.0.2.1:8000", "depends_on"),
        ("nginx", "frontend", "127.0.2.1:5173", "depends_on"),
        # backend -> db again is the same edge: probed once.
        ("backend", "127.0.2.4:1", "127.0.2.4:1", "edges"),
    ]
    assert unresolved == []


def test_host_networking_without_targets_is_reported_not_guessed() -> None:
    edges, unresolved = reach.plan(LAB1, ["nginx"], True, [{"from": "app", "to": "postgres:5432"}], {})
    assert edges == []
    assert [(u.source, u.target, u.origin) for u in unresolved] == [
        ("nginx", "app", "depends_on"),
        ("app", "postgres", "edges"),
    ]


def test_a_compose_network_resolves_by_service_name_and_port() -> None:
    explicit = [{"from": "worker", "to": "db:6432"}, {"from": "worker", "to": "cache"}]
    edges, unresolved = reach.plan(BRIDGE, ["api"], True, explicit, {"worker": 9000})
    assert edges_of(edges) == [
        ("api", "cache", "cache:6379", "depends_on"),  # the container port, not the published one; udp left out
        ("api", "db", "db:5432", "depends_on"),
        ("api", "worker", "worker:9000", "depends_on"),  # a port alone in targets goes with the service's name
        ("worker", "db", "db:6432", "edges"),
        ("worker", "cache", "cache:6379", "edges"),
    ]
    assert unresolved == []
    _edges, unresolved = reach.plan(BRIDGE, ["api"], True, [], {})
    assert [(u.source, u.target) for u in unresolved] == [("api", "worker")]
    assert reach.plan(BRIDGE, ["api"], False, [], {}) == ([], [])


def test_targets_may_list_several_addresses() -> None:
    edges, _unresolved = reach.plan(LAB1, ["nginx"], True, [], {"app": ["127.0.2.1:8000", "[::1]:8000"]})
    assert [e.address for e in edges] == ["127.0.2.1:8000", "[::1]:8000"]


@pytest.mark.parametrize(
    ("explicit", "targets", "message"),
    [
        # A leading - would be an option to nc.
        ([{"from": "app", "to": "-e:5432"}], {}, "'-e' is not a host name or IP address"),
        ([{"from": "app", "to": "-e/bin/sh:5432"}], {}, "'-e/bin/sh' is not a host name or IP address"),
        ([{"from": "app", "to": "$(touch /tmp/pwned):1"}], {}, "is not a host name or IP address"),
        ([{"from": "app", "to": "db host:1"}], {}, "is not a host name or IP address"),
        ([{"from": "app", "to": "127.0.0.1:0"}], {}, "edges[0] must be a TCP port from 1 to 65535, not 0"),
        ([{"from": "app", "to": "127.0.0.1:70000"}], {}, "not 70000"),
        ([{"from": "app", "to": "127.0.0.1"}], {}, "is not host:port or a port"),
        ([{"from": "app", "to": "5432"}], {}, "is a port without a host or service"),
        ([{"from": "web", "to": "app"}], {}, "`from` 'web' is not a service of the project (it has: app, nginx"),
        ([{"from": "app"}], {}, "each edge is a dict with `from` (a service) and `to`"),
        ([{"from": "app", "to": "redis", "port": 1}], {}, "each edge is a dict"),
        ([], {"app": "8000"}, "targets.app: '8000' has no host, and service app uses host networking"),
        ([], {"app": "app:port"}, "targets.app: 'app:port' is not host:port or a port"),
    ],
)
def test_bad_edges_and_targets_are_refused(
    explicit: list[dict[str, t.Any]], targets: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(StackopsError) as caught:
        reach.plan(LAB1, sorted(LAB1), True, explicit, targets)
    assert message in str(caught.value)


def test_judge_makes_a_failed_edge_critical_and_an_unprobed_one_a_warning() -> None:
    service = reach.Edge("app", "postgres", "127.0.2.1", 5432, "depends_on")
    address = reach.Edge("app", "127.0.2.1:1", "127.0.2.1", 1, "edges")
    row, finding = reach.judge(service, True, "", 0.4, "python3")
    assert finding is None and row == {
        "from": "app",
        "to": "postgres",
        "address": "127.0.2.1:5432",
        "origin": "depends_on",
        "status": "ok",
        "ok": True,
        "error": "",
        "time_ms": 0.4,
        "tool": "python3",
    }
    _row, finding = reach.judge(service, False, "timed out", 3000.2, "python3")
    assert finding == reach.Finding(
        "reach", "critical", "app cannot reach postgres at 127.0.2.1:5432: timed out", "127.0.2.1:5432"
    )
    _row, finding = reach.judge(address, False, "[Errno 111] Connection refused", 0.1, "python3")
    assert finding is not None and finding.message == "app cannot reach 127.0.2.1:1: [Errno 111] Connection refused"
    row, finding = reach.judge(service, None, "cannot probe: ...", None, None)
    assert (row["status"], finding and finding.severity) == ("cannot_probe", "warning")
    row, finding = reach.judge(reach.Unresolved("nginx", "app", "depends_on"), None, "", None, None)
    assert (row["status"], row["address"], finding and finding.severity) == ("no_address", None, "warning")
    assert "give it in targets, as {app: 127.0.0.1:PORT}" in row["error"]
