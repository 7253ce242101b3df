"""Run a playbook against the lab with ansible-runner and read what happened per host."""

from __future__ import annotations

import json
import os
import tempfile
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner

from harness import lanes
from harness.paths import ANSIBLE_CONFIG, COLLECTIONS, LAB_INVENTORY, lab_hosts
from harness.snapshot import diff, snapshot

# The bin directory of the ansible-core that runs playbooks and modules: None for this interpreter's (the oldest
# supported); the integration conftest points it at the newest's for tests marked `matrix` (docs/testing.md).
controller: Path | None = None


@dataclass
class PlaybookRun:
    """The outcome of one ansible-runner run: status, per-host stats, events, set_stats artifacts."""

    playbook: str
    status: str
    rc: int
    stats: dict[str, dict[str, int]]
    events: list[dict[str, t.Any]]
    stdout: str
    check: bool = False
    artifacts: dict[str, t.Any] = field(default_factory=dict)

    @property
    def hosts(self) -> set[str]:
        return {host for counts in self.stats.values() for host in counts}

    def changed(self) -> dict[str, int]:
        """Changed task count per host, 0 for hosts that changed nothing."""
        return {host: self.stats.get("changed", {}).get(host, 0) for host in self.hosts}

    def failed_hosts(self) -> set[str]:
        return set(self.stats.get("failures", {})) | set(self.stats.get("dark", {}))

    def results(self, host: str, task: str | None = None) -> list[dict[str, t.Any]]:
        """The result dicts of a host's finished tasks (optionally one task, by name), in order."""
        return [
            e["event_data"].get("res", {})
            for e in self.events
            if e.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
            and e["event_data"].get("host") == host
            and (task is None or e["event_data"].get("task") == task)
        ]

    def result(self, host: str, task: str | None = None) -> dict[str, t.Any]:
        """The last result of a task (by name) on a host; of any task when no name is given (ad-hoc runs)."""
        found = self.results(host, task)
        assert found, f"{self.playbook}: no result for task {task!r} on {host}\n{self.stdout[-3000:]}"
        return found[-1]

    def assert_ok(self, hosts: set[str] | None = None) -> None:
        failed = self.failed_hosts() & (hosts or self.hosts)
        assert self.status == "successful" and not failed, (
            f"{self.playbook}{' --check' if self.check else ''} ended {self.status} (rc {self.rc}), "
            f"failed hosts {sorted(failed)}:\n{self.stdout[-6000:]}"
        )


def _run(check: bool, diff: bool, verbosity: int, timeout: int, label: str, **runner_args: t.Any) -> PlaybookRun:
    cmdline = [*(["--check"] if check else []), *(["--diff"] if diff else [])]
    with tempfile.TemporaryDirectory(prefix="runner-") as private_data_dir:
        runner = ansible_runner.run(
            private_data_dir=private_data_dir,
            cmdline=" ".join(cmdline) or None,
            verbosity=verbosity,
            envvars={
                "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
                "ANSIBLE_CONFIG": str(ANSIBLE_CONFIG),
                "ANSIBLE_NOCOLOR": "1",
                "PATH": os.pathsep.join([*([str(controller)] if controller else []), os.environ["PATH"]]),
            },
            settings={"job_timeout": timeout},
            quiet=True,
            **runner_args,
        )
        events = list(runner.events)
        stdout = runner.stdout.read()
        stats = runner.stats or {}
    artifacts: dict[str, t.Any] = next(
        (e["event_data"].get("artifact_data", {}) for e in events if e.get("event") == "playbook_on_stats"), {}
    )
    return PlaybookRun(
        playbook=label,
        status=runner.status,
        rc=runner.rc,
        stats={key: value for key, value in stats.items() if isinstance(value, dict)},
        events=events,
        stdout=stdout,
        check=check,
        artifacts=artifacts,
    )


def run_playbook(
    playbook: str,
    *,
    check: bool = False,
    diff: bool = False,
    extravars: Mapping[str, t.Any] | None = None,
    limit: str | None = None,
    tags: str | None = None,
    inventory: Path = LAB_INVENTORY,
    verbosity: int = 0,
    timeout: int = 1200,
) -> PlaybookRun:
    """Run a playbook (an FQCN like stackops.runbooks.backup, or a path) and collect what happened."""
    return _run(
        check,
        diff,
        verbosity,
        timeout,
        playbook,
        playbook=playbook,
        inventory=str(inventory),
        extravars=dict(extravars or {}),
        limit=limit,
        tags=tags,
    )


def run_module(
    module: str,
    args: Mapping[str, t.Any],
    *,
    hosts: str = "lab1",
    check: bool = False,
    diff: bool = False,
    inventory: Path = LAB_INVENTORY,
    verbosity: int = 0,
    timeout: int = 600,
) -> PlaybookRun:
    """Run one module ad hoc on lab hosts (as `ansible HOSTS -m MODULE -a JSON`); result(host) is its result."""
    return _run(
        check,
        diff,
        verbosity,
        timeout,
        module,
        module=module,
        module_args=json.dumps(dict(args)),
        host_pattern=hosts,
        inventory=str(inventory),
    )


def lab_hosts_of(pattern: str | None) -> list[str]:
    """The lab hosts a run's limit (or ad-hoc host pattern) names, every host for a group or no limit; under xdist,
    of those only the ones this worker holds (another worker may be changing the rest)."""
    fleet = sorted(lab_hosts())
    named = [name for name in (pattern or "").split(",") if name in fleet] or fleet
    return [name for name in named if lanes.held is None or name in lanes.held]


def check_run(
    run: t.Callable[..., PlaybookRun], *args: t.Any, refused: str | None = None, **kwargs: t.Any
) -> PlaybookRun:
    """A --check run that must succeed (or, given `refused`, fail on every host with that text) and change
    nothing, as an independent snapshot of each host it may touch (PostgreSQL, Redis, nginx files and workers,
    containers: harness/snapshot.py) shows before and after."""
    hosts = lab_hosts_of(kwargs.get("limit", kwargs.get("hosts", "lab1" if run is run_module else None)))
    before = {host: snapshot(host) for host in hosts}
    result = run(*args, check=True, **kwargs)
    if refused is None:
        result.assert_ok()
    else:
        assert result.status == "failed" and refused in result.stdout, result.stdout[-3000:]
        assert not any(result.changed().values()), result.changed()
    changes = [f"{host}: {line}" for host in hosts for line in diff(before[host], snapshot(host))]
    assert not changes, f"{result.playbook} --check changed the lab:\n" + "\n".join(changes[:40])
    return result


def four_step(run: t.Callable[..., PlaybookRun], *args: t.Any, **kwargs: t.Any) -> list[PlaybookRun]:
    """The collection's idempotence contract on the lab, as community.docker tests its modules:

    1. --check reports what a real run would change and changes nothing (an independent snapshot of the hosts says
    so), 2. the real run changes exactly that, 3. --check again and 4. a real run again report no change on any host.
    """
    runs = [check_run(run, *args, **kwargs)]
    for check in (False, True, False):
        result = run(*args, check=check, **kwargs)
        result.assert_ok()
        runs.append(result)
    check_first, real_first, check_again, real_again = runs
    label = real_first.playbook
    assert check_first.changed() == real_first.changed(), (
        f"{label}: --check predicted changes {check_first.changed()}, the real run made {real_first.changed()}"
    )
    for name, result in (("second --check", check_again), ("second real run", real_again)):
        assert not any(result.changed().values()), (
            f"{label}: the {name} still changed {result.changed()}:\n" + (result.stdout[-4000:])
        )
    return runs


def read_only(run: t.Callable[..., PlaybookRun], *args: t.Any, **kwargs: t.Any) -> list[PlaybookRun]:
    """The contract of what only reads (facts, health checks, the daily routine): --check (with the snapshots of
    check_run) and a real run both change nothing on any host. The four-step's last two runs would repeat these two
    on the same unchanged stack, so they are left out."""
    runs = []
    for check in (True, False):
        result = check_run(run, *args, **kwargs) if check else run(*args, check=False, **kwargs)
        result.assert_ok()
        assert not any(result.changed().values()), (
            f"{result.playbook}: a read-only {'--check ' if check else ''}run changed {result.changed()}:\n"
            + result.stdout[-4000:]
        )
        runs.append(result)
    return runs


def assert_read_only(playbook: str, **kwargs: t.Any) -> list[PlaybookRun]:
    return read_only(run_playbook, playbook, **kwargs)


def assert_module_read_only(module: str, args: Mapping[str, t.Any], **kwargs: t.Any) -> list[PlaybookRun]:
    return read_only(run_module, module, args, **kwargs)


def assert_four_step(playbook: str, **kwargs: t.Any) -> list[PlaybookRun]:
    return four_step(run_playbook, playbook, **kwargs)


def assert_module_four_step(module: str, args: Mapping[str, t.Any], **kwargs: t.Any) -> list[PlaybookRun]:
    return four_step(run_module, module, args, **kwargs)
