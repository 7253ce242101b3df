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


def plan(needs: Mapping[str, Collection[str]], weight: Mapping[str, float], workers: int) -> list[list[str]]:
    """The order each worker runs the modules in: a simulation of the run on the modules' weights.

    The worker free first takes the first module, in the order "all"-host modules first and then heaviest first,
    whose hosts no module running on another worker holds; when every module left needs such a host, it takes the
    first one left and waits, as the real run's locks will make it. Handing out whole lanes instead measured 39 min
    for 3,700 s of tests on two workers: the modules of several hosts waited out whole modules of the others'."""
    default = statistics.median(weight.values()) if weight else 60.0
    cost = {module: weight.get(module, default) for module in needs}
    hosts = {module: frozenset(needs[module]) for module in needs}
    widest = max((len(held) for held in hosts.values()), default=0)
    left = sorted(needs, key=lambda module: (len(hosts[module]) < widest, -cost[module], module))
    queues: list[list[str]] = [[] for worker in range(workers)]
    running: list[tuple[float, frozenset[str]]] = [(0.0, frozenset())] * workers
    while left:
        worker = min(range(workers), key=lambda index: (running[index][0], index))
        now = running[worker][0]
        others = [running[index] for index in range(workers) if index != worker and running[index][0] > now]
        busy = frozenset().union(*(held for end, held in others))
        module = next((name for name in left if not hosts[name] & busy), left[0])
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
