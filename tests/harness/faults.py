"""The fault suite's tools (tests/integration/test_faults*.py): playbook runs batched in one fault window, the
failure a user reads at the end of a run, the proof that no run printed a traceback, and what a fault must leave
unchanged on a lab host."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import time
import typing as t
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import lab
from harness.playbook import PlaybookRun, run_playbook

# What only a crash prints: a Python traceback (a module or plugin that raised) or Ansible's wrapper of a module that
# died without a result.
CRASH_MARKS = ("Traceback (most recent call last)", "MODULE FAILURE", "MODULE_FAILURE")


@dataclass(frozen=True)
class Case:
    """One playbook run in a fault window and how it must end: each host of `fail` fails, and the last failure the
    run printed for it holds every entry of `says` (a string, or a tuple of strings of which one must be there);
    every other host of the run succeeds."""

    playbook: str
    says: tuple[str | tuple[str, ...], ...] = ()
    extravars: dict[str, t.Any] = field(default_factory=dict)
    tags: str | None = None
    limit: str = "lab2"
    fail: tuple[str, ...] = ("lab2",)

    def run(self) -> PlaybookRun:
        return run_playbook(
            f"stackops.runbooks.{self.playbook}", limit=self.limit, tags=self.tags, extravars=self.extravars
        )


def run_batch(cases: dict[str, Case], workers: int = 4) -> dict[str, PlaybookRun]:
    """The cases of one fault window at once: each only reads, or fails before it changes anything, so they do not
    disturb each other, and the window costs about as long as its slowest run."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {label: pool.submit(case.run) for label, case in cases.items()}
        return {label: future.result() for label, future in futures.items()}


def crashes(run: PlaybookRun) -> list[str]:
    """Every place a crash left its mark in the run: task results (also the per-item results of loops) and the
    output. ansible-core 2.19 adds `exception: (traceback unavailable)` to every failure: that is no crash."""
    found = []
    for event in run.events:
        data = event.get("event_data", {})
        text = json.dumps(data.get("res", {}))
        found += [f"{data.get('task')}: {mark}" for mark in CRASH_MARKS if mark in text]
    found += [f"output: {mark}" for mark in CRASH_MARKS if mark in run.stdout]
    return found


def failures(run: PlaybookRun, host: str) -> list[tuple[str, str]]:
    """(task, message) of each failure on a host in the order they happened, rescued ones too; unreachable counts."""
    return [
        (e["event_data"].get("task", ""), str(e["event_data"]["res"].get("msg", "")))
        for e in run.events
        if e.get("event") in ("runner_on_failed", "runner_on_unreachable")
        and e["event_data"].get("host") == host
        and not e["event_data"].get("ignore_errors")
    ]


def assert_outcome(case: Case, run: PlaybookRun) -> dict[str, str]:
    """The case's run ended as documented on every host, with no crash anywhere; returns each failed host's last
    failure message."""
    assert not crashes(run), f"{case.playbook}: a crash in the run: {crashes(run)}\n{run.stdout[-3000:]}"
    assert set(case.fail) <= run.hosts, f"{case.playbook} did not run on {sorted(set(case.fail) - run.hosts)}"
    messages = {}
    for host in sorted(run.hosts):
        seen = failures(run, host)
        if host not in case.fail:
            assert host not in run.failed_hosts(), f"{case.playbook} should succeed on {host}: {seen}"
            continue
        assert host in run.failed_hosts(), f"{case.playbook} should fail on {host}:\n{run.stdout[-3000:]}"
        assert seen, f"{case.playbook}: {host} failed without a failed task"
        messages[host] = seen[-1][1]
        missing = [s for s in case.says if not any(one in messages[host] for one in alternatives(s))]
        assert not missing, f"{case.playbook}: the last failure on {host} lacks {missing}: {seen[-1]}"
    return messages


def alternatives(said: str | tuple[str, ...]) -> tuple[str, ...]:
    return (said,) if isinstance(said, str) else said


def files_digest(*roots: t.Any) -> dict[str, str]:
    """sha256 of every file under the given paths (files or directories) that exist."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for path in paths:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


class Container(t.NamedTuple):
    id: str
    state: str
    started: str  # State.StartedAt: a stop and start keep the id and the state, not this


def containers(host: lab.Host) -> dict[str, Container]:
    """Each service's container of the host's project, with when it last started."""
    found = lab.containers(host)
    ids = [c["id"] for c in found.values()]
    inspected = lab.run(["docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", *ids]).stdout if ids else ""
    started = dict(line.split(" ", 1) for line in inspected.splitlines())
    return {service: Container(c["id"], c["state"], started[c["id"]]) for service, c in found.items()}


def restarted(before: dict[str, Container], after: dict[str, Container]) -> list[str]:
    """The services whose container is the same one, started again in between."""
    return sorted(
        s for s, c in after.items() if s in before and before[s].id == c.id and before[s].started != c.started
    )


def stack_state(host: lab.Host) -> dict[str, t.Any]:
    """What a refused or failed run must leave as it found it: each container (id, state and start time, so a stop
    and start shows), the project's .env and compose file, nginx's configuration (the maintenance flag among it) and
    the releases a deploy records."""
    return {
        "containers": containers(host),
        "files": files_digest(host.dir / ".env", host.dir / "compose.yaml", host.dir / "nginx"),
        "releases": sorted(p.name for p in (host.dir / "releases").iterdir())
        if (host.dir / "releases").exists()
        else [],
    }


def ready(host: lab.Host) -> int:
    try:
        with urllib.request.urlopen(f"http://{host.addr}/health/ready", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def wait_healthy(host: lab.Host, timeout: float = 120) -> None:
    """The host's services run and are healthy, and the app answers ready (it checks PostgreSQL and Redis)."""
    deadline = time.monotonic() + timeout
    while True:
        services = lab.containers(host)
        healthy = set(services) == set(host.shape.ports) and all(
            c["state"] == "running" and c["health"] == "healthy" for c in services.values()
        )
        if healthy and ready(host) == 200:
            return
        assert time.monotonic() < deadline, f"{host.name} is not healthy after the repair: {services}"
        time.sleep(1)
