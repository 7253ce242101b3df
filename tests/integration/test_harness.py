"""The harness itself: runs reach every lab host over SSH, and each way the contracts (four-step, read-only,
check_run) can fail is shown failing, on a small playbook under playbooks/ that does that one wrong thing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.playbook import (
    assert_four_step,
    assert_module_four_step,
    assert_read_only,
    check_run,
    run_module,
    run_playbook,
)
from harness.secrets import ProcessSampler, Secrets

pytestmark = pytest.mark.lab_hosts("lab1", "lab2")

PLAYBOOKS = Path(__file__).parent / "playbooks"
LEAK = PLAYBOOKS / "check_mode_leak.yml"


@pytest.fixture
def leak(hosts: dict) -> Iterator[Path]:
    """A file under lab1's nginx directory (which the snapshot reads), removed afterwards."""
    path = hosts["lab1"].dir / "nginx" / "contract-leak.txt"
    yield path
    path.unlink(missing_ok=True)


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
def test_four_step_passes_an_idempotent_change(tmp_path: Path) -> None:
    extravars = {"marker_dir": str(tmp_path), "marker_content": "four-step"}
    playbook = str(PLAYBOOKS / "marker_file.yml")
    check_first, real_first, *_idempotent = assert_four_step(playbook, limit="lab1,lab2", extravars=extravars)
    assert check_first.changed() == {"lab1": 1, "lab2": 1}
    written = ["Write the marker (marker_file.yml:6)"]
    assert check_first.changed_tasks() == real_first.changed_tasks() == {"lab1": written, "lab2": written}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab1.txt", "lab2.txt"]
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


def test_a_tag_that_selects_nothing_is_not_a_four_step(tmp_path: Path) -> None:
    """Only the `always` task (a debug on the controller) runs: four runs without a change, which proves nothing."""
    with pytest.raises(AssertionError, match=r"first --check\): no task acted on \['lab1'\]"):
        assert_four_step(
            str(PLAYBOOKS / "tagged_marker.yml"), limit="lab1", tags="nothing", extravars={"marker_dir": str(tmp_path)}
        )
    assert not any(tmp_path.iterdir())


def test_a_host_pattern_that_matches_no_host_is_not_a_four_step(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no host ran"):
        assert_module_four_step("ansible.builtin.file", {"path": str(tmp_path / "x"), "state": "touch"}, hosts="nohost")


def test_four_step_rejects_a_change_predicted_on_another_task(tmp_path: Path) -> None:
    """--check and the real run change one task each on lab1, as many but not the same."""
    with pytest.raises(AssertionError, match=r"--check predicted changes in \{'lab1': \['Look for the marker"):
        assert_four_step(
            str(PLAYBOOKS / "predicted_elsewhere.yml"), limit="lab1", extravars={"marker_dir": str(tmp_path)}
        )


def test_four_step_sees_what_the_second_check_run_wrote(tmp_path: Path, leak: Path) -> None:
    extravars = {"marker_dir": str(tmp_path), "leak_path": str(leak)}
    with pytest.raises(AssertionError, match=r"the second --check changed the lab:\nlab1: nginx/files/contract-leak"):
        assert_four_step(str(PLAYBOOKS / "leak_when_converged.yml"), limit="lab1", extravars=extravars)


def test_read_only_sees_what_its_real_run_wrote_though_it_reported_nothing(leak: Path) -> None:
    with pytest.raises(
        AssertionError, match=r"read-only run changed the lab on hosts it reported no change on:\nlab1: nginx/files"
    ):
        assert_read_only(str(PLAYBOOKS / "leak_in_real_run.yml"), limit="lab1", extravars={"leak_path": str(leak)})


def test_module_arguments_reach_no_command_line() -> None:
    """run_module writes a play into the run's private directory: the arguments (here a token in the message of a
    two-second wait) are on no process's command line while the machine's process table is sampled."""
    token = Secrets({"token": f"argv-{uuid.uuid4().hex}"})
    with ProcessSampler(token, max_seconds=120) as sampler:
        run = run_module("ansible.builtin.wait_for", {"timeout": 2, "msg": token.value("token")})
    run.assert_ok()
    seen = sampler.processes()
    assert any("bin/ansible" in p.command for p in seen), f"the run was not sampled ({sampler.samples} samples)"
    shown = [p.command[:200] for p in seen if p.in_command]
    assert not shown, f"module arguments on a command line: {shown}"
