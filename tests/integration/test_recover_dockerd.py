"""recover_service with the Docker daemon stopped (issue 17): told not to start it, the role leaves it stopped and
fails at its first read; in check mode it reports the start and starts nothing; for real it starts the daemon with
the lab inventory's command (lab/lab.py's own dockerd), waits until it answers and recovers the stack.

One dockerd runs every lab host's containers, so the module holds them all; run it alone:
`flock -x /tmp/team/engine.lock pytest tests/integration/test_recover_dockerd.py`."""

from __future__ import annotations

import pytest

import lab
from harness.faults import ready
from harness.labctl import dockerd_stopped
from harness.playbook import PlaybookRun, run_playbook

pytestmark = pytest.mark.lab_hosts("all")

PLAYBOOK = "stackops.runbooks.recover_service"
START = "recover_service : Start the Docker daemon"


def changed(run: PlaybookRun) -> list[str]:
    """lab2's changed tasks without their file:line."""
    return [task.split(" (")[0] for task in run.changed_tasks()["lab2"]]


def test_a_stopped_docker_daemon_is_started_and_the_stack_recovered(hosts: dict) -> None:
    host = hosts["lab2"]
    with dockerd_stopped():
        off = run_playbook(PLAYBOOK, limit="lab2", extravars={"recover_service_start_docker": False})
        assert off.failed_hosts() == {"lab2"}, off.stdout[-3000:]
        assert "The Docker daemon does not answer" in off.stdout
        assert START not in changed(off)
        assert not lab.docker_answers()

        check = run_playbook(PLAYBOOK, limit="lab2", check=True)
        check.assert_ok()
        assert changed(check) == [START]
        planned = check.artifacts["recover_service"]["lab2"]
        assert planned["docker_started"][:2] == ["start-stop-daemon", "--start"], planned
        assert planned["actions"] == ["start the Docker daemon"]
        assert not lab.docker_answers(), "check mode started the daemon"

        real = run_playbook(PLAYBOOK, limit="lab2")
        real.assert_ok()
        assert lab.docker_answers()
        done = real.artifacts["recover_service"]["lab2"]
        assert done["docker_started"] == planned["docker_started"]
        assert "Cannot connect to the Docker daemon" in done["problems_before"][0]
        assert done["actions"][0] == "start the Docker daemon" and len(done["actions"]) > 1, done
        assert ready(host) == 200
