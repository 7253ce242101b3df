"""Run a playbook against the lab with ansible-runner and read what happened per host."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import typing as t
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml

from harness import lanes
from harness.paths import ANSIBLE_CONFIG, COLLECTIONS, LAB_INVENTORY, lab_hosts
from harness.snapshot import diff, snapshot

# The bin directory of the ansible-core that runs playbooks and modules: None for this interpreter's (the oldest
# supported); the integration conftest points it at the newest's for tests marked `matrix` (docs/testing.md).
controller: Path | None = None

RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
# Actions that do not act on a host: fact gathering and argument validation (tagged `always`, so they run whatever
# --tags selects), variables, stats, messages, checks of variables, includes. A run in which only these ran on a host
# did nothing there that a contract could judge.
CONTROLLER_ONLY = frozenset(
    {
        "add_host",
        "assert",
        "debug",
        "fail",
        "gather_facts",
        "group_by",
        "import_role",
        "import_tasks",
        "include_role",
        "include_tasks",
        "include_vars",
        "meta",
        "pause",
        "set_fact",
        "set_stats",
        "setup",
        "validate_argument_spec",
    }
)


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
            for e in self._finished(host)
            if task is None or e["event_data"].get("task") == task
        ]

    def _finished(self, host: str) -> list[dict[str, t.Any]]:
        return [e for e in self.events if e.get("event") in RESULTS and e["event_data"].get("host") == host]

    def ran(self, host: str) -> list[str]:
        """The tasks that acted on a host (not skipped, not controller-only: CONTROLLER_ONLY), in order."""
        return [
            task_label(e["event_data"])
            for e in self._finished(host)
            if e["event"] != "runner_on_skipped" and action(e["event_data"]) not in CONTROLLER_ONLY
        ]

    def changed_tasks(self) -> dict[str, list[str]]:
        """Per host, the tasks that reported a change, in order (every host of the run, [] when none changed)."""
        return {
            host: [
                task_label(e["event_data"])
                for e in self._finished(host)
                if e["event"] in ("runner_on_ok", "runner_on_failed") and e["event_data"].get("res", {}).get("changed")
            ]
            for host in sorted(self.hosts)
        }

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


def action(event_data: Mapping[str, t.Any]) -> str:
    """A task's module without the collection of Ansible's own (`ansible.builtin.set_fact` -> `set_fact`)."""
    name = str(event_data.get("resolved_action") or event_data.get("task_action") or "")
    return name.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")


def task_label(event_data: Mapping[str, t.Any]) -> str:
    """A task the same in every run of a playbook: role, name and file:line (task uuids are new in each run)."""
    role = event_data.get("role")
    where = Path(str(event_data.get("task_path") or "")).name
    return f"{f'{role} : ' if role else ''}{event_data.get('task')} ({where})"


def payload_cache() -> dict[str, str]:
    """What lets every run of this session share the module payloads ansible-core builds (harness/callback/
    ansiballz_cache.py): a folder named after the collection's content and place, so a changed module is built anew.
    STACKOPS_PAYLOAD_CACHE=0 turns it off, to measure what it saves."""
    global _payload_cache  # noqa: PLW0603 - computed once per process
    if os.environ.get("STACKOPS_PAYLOAD_CACHE") == "0":
        return {}
    if _payload_cache is None:
        digest = hashlib.sha256(str(COLLECTIONS.resolve()).encode())
        plugins = COLLECTIONS.resolve() / "ansible_collections" / "stackops" / "runbooks" / "plugins"
        for path in sorted(plugins.rglob("*.py")):
            digest.update(str(path.relative_to(plugins)).encode() + b"\0" + path.read_bytes())
        folder = COLLECTIONS.parent / "ansiballz-cache" / digest.hexdigest()[:16]
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _payload_cache = {
            "STACKOPS_ANSIBALLZ_CACHE": str(folder),
            "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).with_name("callback")),
            "ANSIBLE_CALLBACKS_ENABLED": "ansiballz_cache",
        }
    return _payload_cache


_payload_cache: dict[str, str] | None = None


def _run(
    check: bool,
    diff: bool,
    verbosity: int,
    timeout: int,
    label: str,
    *,
    play: Mapping[str, t.Any] | None = None,
    envvars: Mapping[str, str] | None = None,
    **runner_args: t.Any,
) -> PlaybookRun:
    """One ansible-runner run in a private directory (0700) that is removed afterwards; `play`, when given, is
    written there (0600) and run as the playbook, so what it holds never reaches a command line."""
    cmdline = [*(["--check"] if check else []), *(["--diff"] if diff else [])]
    with tempfile.TemporaryDirectory(prefix="runner-") as private_data_dir:
        if play is not None:
            path = Path(private_data_dir) / "play.yml"
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                yaml.safe_dump([dict(play)], out, sort_keys=False)
            runner_args["playbook"] = str(path)
        runner = ansible_runner.run(
            private_data_dir=private_data_dir,
            cmdline=" ".join(cmdline) or None,
            verbosity=verbosity,
            envvars={
                "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
                "ANSIBLE_CONFIG": str(ANSIBLE_CONFIG),
                "ANSIBLE_NOCOLOR": "1",
                **payload_cache(),
                "PATH": os.pathsep.join([*([str(controller)] if controller else []), os.environ["PATH"]]),
                **(envvars or {}),
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
    """Run one module on lab hosts, as the only task of a play (result(host) is its result). The play is a file in
    the run's private directory: `ansible HOSTS -m MODULE -a JSON` would put the arguments, passwords included, on
    ansible's command line for every user of the machine to read (`ps`). Its output is ad hoc's (the `minimal`
    callback: each host's result in full), so what a module prints stays as visible to the tests as before."""
    play = {
        "name": module,
        "hosts": hosts,
        "gather_facts": False,
        # Through JSON as before: the values a module got from `-a JSON` (tuples as lists, ...).
        "tasks": [{"name": module, module: json.loads(json.dumps(dict(args)))}],
    }
    return run_play(
        play,
        check=check,
        diff=diff,
        inventory=inventory,
        verbosity=verbosity,
        timeout=timeout,
        envvars={"ANSIBLE_STDOUT_CALLBACK": "minimal"},
    )


def run_play(
    play: Mapping[str, t.Any],
    *,
    check: bool = False,
    diff: bool = False,
    inventory: Path = LAB_INVENTORY,
    verbosity: int = 0,
    timeout: int = 600,
    envvars: Mapping[str, str] | None = None,
) -> PlaybookRun:
    """Run one play written by a test, as a file in the run's private directory: what it holds (passwords too)
    never reaches a command line."""
    label = str(play.get("name", "play"))
    return _run(check, diff, verbosity, timeout, label, play=play, envvars=envvars, inventory=str(inventory))


def lab_hosts_of(pattern: str | None) -> list[str]:
    """The lab hosts a run's limit (or ad-hoc host pattern) names, every host for a group or no limit; under xdist,
    of those only the ones this worker holds (another worker may be changing the rest)."""
    fleet = sorted(lab_hosts())
    named = [name for name in (pattern or "").split(",") if name in fleet] or fleet
    return [name for name in named if lanes.held is None or name in lanes.held]


class _Watched:
    """The runs of one contract, each followed by an independent snapshot of every lab host the run may touch
    (harness/snapshot.py): a step's snapshot is the next step's "before", so each is taken once."""

    def __init__(self, run: t.Callable[..., PlaybookRun], args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> None:
        self.run, self.args, self.kwargs = run, args, kwargs
        pattern = kwargs.get("limit", kwargs.get("hosts", "lab1" if run is run_module else None))
        self.hosts = lab_hosts_of(pattern)
        self.state = self.snapshots()

    def snapshots(self) -> dict[str, t.Any]:
        """Each host's snapshot, the hosts side by side (a fleet contract reads four)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(zip(self.hosts, pool.map(snapshot, self.hosts)))

    def step(self, check: bool, name: str, refused: str | None = None) -> PlaybookRun:
        """One run: it succeeds (or, given `refused`, fails on a host with that text), it acted on every host it
        reached, and afterwards the hosts it reported no change on (every host, in check mode) are as they were."""
        result = self.run(*self.args, check=check, **self.kwargs)
        if refused is None:
            result.assert_ok()
            assert_ran(result, name)
        else:
            assert result.status == "failed" and refused in result.stdout, result.stdout[-3000:]
            assert result.failed_hosts(), f"{result.playbook}: refused, but on no host:\n{result.stdout[-3000:]}"
            assert not any(result.changed().values()), result.changed()
        after = self.snapshots()
        reported = result.changed()
        changes = [
            f"{host}: {line}"
            for host in self.hosts
            if check or not reported.get(host)
            for line in diff(self.state[host], after[host])
        ]
        self.state = after
        assert not changes, (
            f"{result.playbook}: the {name} changed the lab{'' if check else ' on hosts it reported no change on'}:\n"
            + "\n".join(changes[:40])
        )
        return result


def assert_ran(result: PlaybookRun, name: str) -> None:
    """A run that reached no host, or did nothing on one (only skipped or controller-side tasks: a tag, limit or
    `when` that selects nothing), proves nothing about it: every contract refuses it."""
    label = f"{result.playbook} ({name})"
    assert result.hosts, f"{label}: no host ran (a limit or host pattern that matches none?):\n{result.stdout[-3000:]}"
    idle = sorted(host for host in result.hosts if not result.ran(host))
    assert not idle, (
        f"{label}: no task acted on {idle}, every task was skipped or ran on the controller alone (a tag, limit or "
        f"`when` that selects nothing?):\n{result.stdout[-3000:]}"
    )


def check_run(
    run: t.Callable[..., PlaybookRun], *args: t.Any, refused: str | None = None, **kwargs: t.Any
) -> PlaybookRun:
    """A --check run that must act on every host it reaches and succeed (or, given `refused`, fail with that text
    on a host) and change nothing, as an independent snapshot of each host it may touch (PostgreSQL, Redis,
    nginx files and workers, containers: harness/snapshot.py) shows before and after."""
    return _Watched(run, args, kwargs).step(True, "--check", refused)


def four_step(run: t.Callable[..., PlaybookRun], *args: t.Any, **kwargs: t.Any) -> list[PlaybookRun]:
    """The collection's idempotence contract on the lab, as community.docker tests its modules:

    1. --check reports what a real run would change and changes nothing, 2. the real run changes exactly those tasks
    on each host (the same tasks in the same order, not only as many), 3. --check again and 4. a real run again
    report no change on any host. Every run must act on every host it reaches (assert_ran), and an independent
    snapshot of the hosts after each run shows that the three runs that report no change (and the first real run on
    the hosts where it reports none) changed nothing.
    """
    watched = _Watched(run, args, kwargs)
    check_first, real_first = watched.step(True, "first --check"), watched.step(False, "first real run")
    label = real_first.playbook
    assert check_first.changed_tasks() == real_first.changed_tasks(), (
        f"{label}: --check predicted changes in {check_first.changed_tasks()}, the real run made them in "
        f"{real_first.changed_tasks()}"
    )
    assert check_first.changed() == real_first.changed(), (
        f"{label}: --check predicted changes {check_first.changed()}, the real run made {real_first.changed()}"
    )
    runs = [check_first, real_first]
    for check, name in ((True, "second --check"), (False, "second real run")):
        result = watched.step(check, name)
        assert not any(result.changed().values()), (
            f"{label}: the {name} still changed {result.changed_tasks()}:\n" + (result.stdout[-4000:])
        )
        runs.append(result)
    return runs


def read_only(run: t.Callable[..., PlaybookRun], *args: t.Any, **kwargs: t.Any) -> list[PlaybookRun]:
    """The contract of what only reads (facts, health checks, the daily routine): --check and a real run both act on
    every host they reach, report no change, and change nothing an independent snapshot after each shows. The
    four-step's last two runs would repeat these two on the same unchanged stack, so they are left out."""
    watched = _Watched(run, args, kwargs)
    runs = []
    for check in (True, False):
        name = "read-only --check run" if check else "read-only run"
        result = watched.step(check, name)
        assert not any(result.changed().values()), (
            f"{result.playbook}: a {name} changed {result.changed_tasks()}:\n" + result.stdout[-4000:]
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
