"""The harness itself: runs reach every lab host over SSH, and the four-step and read-only checks can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.playbook import assert_four_step, assert_read_only, check_run, run_playbook

pytestmark = pytest.mark.lab_hosts("lab1", "lab2")

PLAYBOOKS = Path(__file__).parent / "playbooks"
LEAK = PLAYBOOKS / "check_mode_leak.yml"


def test_every_lab_host_is_a_separate_ssh_target(hosts: dict) -> None:
    run = run_playbook(str(PLAYBOOKS / "ssh_identity.yml"))
    run.assert_ok()
    assert run.hosts == set(hosts)
    for name, host in hosts.items():
        # SSH_CONNECTION: client-ip client-port server-ip server-port
        connection = run.result(name, "Read the SSH connection of this task")["stdout"]
        _client, _port, server_ip, server_port = connection.split()
        assert (server_ip, server_port) == (host.addr, "2222")


@pytest.mark.matrix
def test_four_step_passes_an_idempotent_change(hosts: dict, tmp_path: Path) -> None:
    extravars = {"marker_dir": str(tmp_path), "marker_content": "four-step"}
    check_first, real_first, *_idempotent = assert_four_step(str(PLAYBOOKS / "marker_file.yml"), extravars=extravars)
    assert check_first.changed() == dict.fromkeys(hosts, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{name}.txt" for name in hosts)
    assert real_first.result("lab1", "Write the marker")["changed"] is True


@pytest.mark.matrix
def test_four_step_rejects_a_change_on_every_run() -> None:
    with pytest.raises(AssertionError, match="second --check still changed"):
        assert_four_step(str(PLAYBOOKS / "always_changed.yml"), limit="lab1")


def test_a_failed_host_is_reported_per_host(hosts: dict) -> None:
    run = run_playbook(
        str(PLAYBOOKS / "marker_file.yml"),
        extravars={"marker_dir": "/nonexistent/stackops", "marker_content": "x"},
        limit="lab1,lab2",
    )
    assert run.status == "failed"
    assert run.failed_hosts() == {"lab1", "lab2"}
    with pytest.raises(AssertionError, match="failed hosts"):
        run.assert_ok()


def test_read_only_rejects_a_playbook_that_changes_something() -> None:
    with pytest.raises(AssertionError, match="a read-only --check run changed"):
        assert_read_only(str(PLAYBOOKS / "always_changed.yml"), limit="lab1")


def test_check_run_sees_what_a_check_run_changed_though_it_reported_nothing(hosts: dict) -> None:
    leak = hosts["lab1"].dir / "nginx" / "check-mode-leak.txt"
    try:
        with pytest.raises(AssertionError, match=r"lab1: nginx/files/check-mode-leak.txt: added"):
            check_run(run_playbook, str(LEAK), limit="lab1", extravars={"leak_path": str(leak)})
    finally:
        leak.unlink(missing_ok=True)
