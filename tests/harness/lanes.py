"""Which integration modules may run at the same time: each declares the lab hosts it needs, and holds them.

With pytest-xdist (`make test` runs `-n 2`), each worker runs the modules `plan` gives it, in that order: planned on
the hosts each module needs and the time it took, so the two workers mostly work on different hosts. A module holds
a file lock per host it declares for as long as it runs, taken all at once in one global order, so modules sharing a
host never overlap and no two workers wait on each other in a circle. Without xdist nothing is locked.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import statistics
import tempfile
import typing as t
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ALL = "all"
# Not a host: the one Docker engine every host shares. Modules that make or remove images or containers outside
# compose projects (docker_prune's leftovers, builds, pulls) take it, so a prune never meets another's leftovers.
ENGINE = "engine"
# The hosts this worker holds while a module runs (None: no xdist, every host is this process's): what a check run
# may snapshot without meeting the other worker's changes.
held: list[str] | None = None


def needed(declared: Iterable[str], fleet: Iterable[str]) -> list[str]:
    """What to lock, in the one order every worker uses: "all" means every host of the fleet and the engine."""
    names = set(declared)
    return sorted({*fleet, ENGINE} if ALL in names else names)


def unknown(declared: Iterable[str], fleet: Iterable[str]) -> list[str]:
    return sorted(set(declared) - set(fleet) - {ALL, ENGINE})


# Each integration module's time in seconds, as measured by `make test` with both workers busy (refresh them with
# `python tests/tools/weights.py .build/times.tsv`); a module not listed weighs the median.
WEIGHTS = Path(__file__).with_name("weights.json")


def weights() -> dict[str, float]:
    return {name: float(seconds) for name, seconds in json.loads(WEIGHTS.read_text()).items()}


def priority(needs: Mapping[str, Collection[str]], weight: Mapping[str, float]) -> list[str]:
    """The order modules are handed out in: those of the whole fleet (the most hosts) first, then the heaviest first;
    a module not measured weighs the median."""
    default = statistics.median(weight.values()) if weight else 60.0
    widest = max((len(set(held)) for held in needs.values()), default=0)
    return sorted(needs, key=lambda module: (len(set(needs[module])) < widest, -weight.get(module, default), module))


def pick(left: list[str], needs: Mapping[str, Collection[str]], busy: Collection[str]) -> str | None:
    """The module a free worker takes: the first left whose hosts no other worker holds or will hold next; when every
    one shares a host with them, the first left, which then waits for its hosts (as its locks make it)."""
    taken = set(busy)
    return next((module for module in left if not taken & set(needs[module])), left[0] if left else None)


def plan(needs: Mapping[str, Collection[str]], weight: Mapping[str, float], workers: int) -> list[list[str]]:
    """What the scheduler's choices give when each module takes the time it weighs: a simulation of the run, for
    the tests and for reading an order before a run. The scheduler (tests/integration/conftest.py) makes the same
    choice with `pick` when a worker is free, on the hosts the other worker really holds then: planning the whole
    run ahead on the weights made modules wait out others whose time differed from their weight (1,100 s of lock
    waits in the first 23 min of a run on 2026-12-07)."""
    default = statistics.median(weight.values()) if weight else 60.0
    cost = {module: weight.get(module, default) for module in needs}
    hosts = {module: frozenset(needs[module]) for module in needs}
    left = priority(needs, weight)
    queues: list[list[str]] = [[] for worker in range(workers)]
    running: list[tuple[float, frozenset[str]]] = [(0.0, frozenset())] * workers
    while left:
        worker = min(range(workers), key=lambda index: (running[index][0], index))
        now = running[worker][0]
        others = [running[index] for index in range(workers) if index != worker and running[index][0] > now]
        busy = frozenset().union(*(held for end, held in others))
        module = t.cast(str, pick(left, hosts, busy))
        start = max([now, *(end for end, held in others if held & hosts[module])])
        running[worker] = (start + cost[module], hosts[module])
        queues[worker].append(module)
        left.remove(module)
    return queues


def declared_in(source: str) -> tuple[str, ...] | None:
    """The names of a module's `pytestmark = pytest.mark.lab_hosts(...)`, read without importing it (the xdist
    controller schedules before any worker imports a test)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            calls = node.value.elts if isinstance(node.value, ast.List) else [node.value]
            for call in calls:
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "lab_hosts"
                ):
                    return tuple(a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return None


@contextmanager
def holding(hosts: list[str], run_id: str) -> Iterator[None]:
    """Hold an exclusive lock per host until the block ends (the kernel drops them if the worker dies).

    The host locks are taken behind a turnstile, one worker at a time: flock wakes its waiters in no order, so a
    module waiting for every host would otherwise lose each host it waits for to the next module of the lane that
    just released it, and wait out a whole lane (measured: a module of "all" waited 280 s). Behind the turnstile it
    waits for the modules running when it came, and the lane's next module waits for it."""
    global held  # noqa: PLW0603 - one module at a time per worker process
    folder = Path(tempfile.gettempdir()) / f"stackops-lanes-{run_id}"
    folder.mkdir(mode=0o700, exist_ok=True)
    descriptors: list[int] = []
    try:
        turnstile = os.open(folder / "turnstile.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            for host in hosts:
                descriptor = os.open(folder / f"{host}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                descriptors.append(descriptor)
                fcntl.flock(descriptor, fcntl.LOCK_EX)
        finally:
            os.close(turnstile)
        held = [host for host in hosts if host != ENGINE]
        yield
    finally:
        held = None
        for descriptor in reversed(descriptors):
            os.close(descriptor)
