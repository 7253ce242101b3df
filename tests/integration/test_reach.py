"""compose_reach on the lab: each service reaches its dependencies from inside its own container, per edge.

lab1 (the classic shape: app -> postgres and redis, nginx -> app; lab3's shape is test_reach_lab3.py's) through the
stack settings; a closed port named as an explicit edge is a failed edge; a scratch project on lab1 gives a
container with no probe tool on its PATH and one whose dependency does not listen (network_mode none). Every run
only reads: the read-only contract's independent snapshot of each host before and after, and changed=false in check
mode and for real. What the module says is open or closed is checked again from the controller with a plain socket.
"""

from __future__ import annotations

import pytest

from harness.paths import lab_hosts
from harness.playbook import assert_module_read_only, run_module
from harness.scratch import ScratchProject, healthy_after, service
from harness.web import by_edge, connects

pytestmark = pytest.mark.lab_hosts("lab1")

REACH = "stackops.runbooks.compose_reach"


@pytest.mark.matrix
def test_lab1_edges_and_a_closed_port() -> None:
    lab1 = lab_hosts()["lab1"]
    addr = lab1.addr
    args = {
        "project_src": str(lab1.dir),
        "project_name": lab1.project,
        "targets": {"postgres": f"{addr}:5432", "redis": f"{addr}:6379", "app": f"{addr}:8000"},
        "edges": [{"from": "app", "to": f"{addr}:1"}],
        "timeout": 2,
        "fail_on": "never",
    }
    check, real = assert_module_read_only(REACH, args)
    for run in (check, real):
        result = run.result("lab1")
        assert result["changed"] is False
        edges = by_edge(result["edges"])
        # Grouped by the service the probe runs in: one exec in each.
        assert list(edges) == [("app", "postgres"), ("app", "redis"), ("app", f"{addr}:1"), ("nginx", "app")]
        for key in [("app", "postgres"), ("app", "redis"), ("nginx", "app")]:
            edge = edges[key]
            assert (edge["status"], edge["ok"], edge["error"], edge["tool"]) == ("ok", True, "", "python3"), edge
            assert 0 <= edge["time_ms"] < 2000 and edge["origin"] == "depends_on"
            assert connects(edge["address"])
        closed = edges[("app", f"{addr}:1")]
        assert (closed["status"], closed["ok"], closed["origin"]) == ("failed", False, "edges")
        assert "Connection refused" in closed["error"], closed
        assert not connects(closed["address"])
        assert result["summary"] == {"ok": 3, "failed": 1, "cannot_probe": 0, "no_address": 0}
        assert result["status"] == "critical"
        assert [f["message"] for f in result["findings"]] == [
            f"app cannot reach {addr}:1: [Errno 111] Connection refused"
        ]
        assert result["probes"]["app"]["tools"] == ["python3", "bash", "timeout"]


def test_a_container_without_tools_and_a_dependency_that_does_not_listen(scratch: ScratchProject) -> None:
    # No probe tool on the PATH (as in a distroless image): exec finds neither sh nor python3. The loop names its
    # programs by path.
    bare = service(
        command=["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do /bin/sleep 0.2; done"],
        environment={"PATH": "/nonexistent"},
        healthcheck={"disable": True},
        **healthy_after("db"),
    )
    scratch.write({"db": service(), "backend": service(**healthy_after("db")), "bare": bare})
    assert scratch.compose("up", "-d").returncode == 0
    args = scratch.args(targets={"db": "127.0.0.1:5432"}, timeout=1, fail_on="never")
    _check, real = assert_module_read_only(REACH, args)
    result = real.result("lab1")
    edges = by_edge(result["edges"])
    # network_mode none: the container's own loopback, where nothing listens on 5432.
    backend = edges[("backend", "db")]
    assert (backend["status"], backend["address"], backend["tool"]) == ("failed", "127.0.0.1:5432", "python3")
    assert "Connection refused" in backend["error"]
    blind = edges[("bare", "db")]
    assert (blind["status"], blind["ok"], blind["time_ms"]) == ("cannot_probe", None, None)
    assert "has none of python3, bash, nc or busybox (nor sh to look for them)" in blind["error"]
    assert "add one to its image" in blind["error"]
    assert result["status"] == "critical"
    assert {f["severity"] for f in result["findings"]} == {"critical", "warning"}
    # Bad input is refused with the value and the fix, before anything runs.
    refused = run_module(REACH, scratch.args(edges=[{"from": "backend", "to": "-e/bin/sh:5432"}]))
    assert refused.failed_hosts() == {"lab1"}
    message = refused.result("lab1")["msg"]
    assert "'-e/bin/sh' is not a host name or IP address" in message and "Traceback" not in message
