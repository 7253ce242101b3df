"""Integration tests run against the lab fleet; `make test` brings it up before pytest starts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

import lab
from harness import lanes, playbook
from harness.paths import REPO, lab_hosts
from harness.scratch import ScratchProject, new_project


class PlannedScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with each test module as a scope. A worker that needs its next module gets the first,
    in `lanes.priority` order (the whole fleet's modules, then the heaviest), whose hosts the other worker's modules
    (the one running and the one handed to it next) do not hold: `lanes.pick`, on the real state of the run."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.order: list[str] = []
        self.needs: dict[str, list[str]] = {}

    def _split_scope(self, nodeid: str) -> str:
        return nodeid.split("::", 1)[0]

    def schedule(self) -> None:
        if self.collection is None and self._check_nodes_have_same_collection():
            nodeids = self.registered_collections[self.nodes[0]]
            scopes = list(dict.fromkeys(self._split_scope(nodeid) for nodeid in nodeids))
            self.needs = {scope: lanes.needed(self._declared(scope), lab_hosts()) for scope in scopes}
            measured = lanes.weights()
            weights = {scope: measured[Path(scope).stem] for scope in scopes if Path(scope).stem in measured}
            self.order = lanes.priority(self.needs, weights)
        super().schedule()

    def _declared(self, scope: str) -> tuple[str, ...]:
        source = self.config.rootpath / scope
        return (lanes.declared_in(source.read_text()) or ()) if source.parent == Path(__file__).parent else ()

    def _assign_work_unit(self, node: WorkerController) -> None:
        busy = {
            host
            for other, work in self.assigned_work.items()
            if other is not node
            for scope, tests in work.items()
            if not all(tests.values())
            for host in self.needs.get(scope, ())
        }
        left = [scope for scope in self.order if scope in self.workqueue]
        scope = lanes.pick(left, self.needs, busy)
        if scope is not None:
            self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> PlannedScheduling:
    return PlannedScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # the `lab` marker must be there before -m selects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every integration module declares the lab hosts it needs (the scheduler and the locks read it)."""
    fleet = lab_hosts()
    for item in items:
        if item.path.parent != Path(__file__).parent:
            continue
        module = item.getparent(pytest.Module)
        marker = module.get_closest_marker("lab_hosts") if module else None
        declared = marker.args if marker else None
        if not declared or lanes.unknown(declared, fleet):
            raise pytest.UsageError(
                f"{item.path.name}: declare the lab hosts it needs at module level, from {sorted(fleet)}, "
                f'"{lanes.ENGINE}" or "{lanes.ALL}": pytestmark = pytest.mark.lab_hosts("lab1") (got {declared!r})'
            )
        item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="module", autouse=True)
def lab_hosts_held(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under xdist, hold the module's lab hosts while it runs, so no other worker touches them meanwhile."""
    worker = getattr(request.config, "workerinput", None)
    if worker is None:
        yield
        return
    marker = request.node.get_closest_marker("lab_hosts")
    declared = marker.args if marker else ()
    with lanes.holding(lanes.needed(declared, lab_hosts()), worker["testrunuid"]):
        yield


# `make test` sets it to the newest ansible-core's bin directory: tests marked `matrix` run their playbooks and modules
# with that controller (each integration test runs once, on one of the two).
NEWEST = os.environ.get("STACKOPS_NEWEST_ANSIBLE")


@pytest.fixture(scope="session")
def newest_controller() -> Path:
    """The newest ansible-core's bin directory, once proven to be the controller a harness run gets."""
    assert NEWEST
    playbook.controller = Path(NEWEST)
    try:
        run = playbook.run_module("ansible.builtin.debug", {"var": "ansible_version.full"})
    finally:
        playbook.controller = None
    version = run.result("lab1").get("ansible_version.full", "")
    expected = (
        subprocess.run([str(Path(NEWEST) / "ansible"), "--version"], capture_output=True, text=True, check=True)
        .stdout.split("[core ", 1)[1]
        .split("]", 1)[0]
    )
    assert version == expected, f"runs under STACKOPS_NEWEST_ANSIBLE={NEWEST} got ansible-core {version!r}"
    return Path(NEWEST)


@pytest.fixture(autouse=True)
def matrix_controller(request: pytest.FixtureRequest) -> Iterator[None]:
    if NEWEST is None or request.node.get_closest_marker("matrix") is None:
        yield
        return
    playbook.controller = request.getfixturevalue("newest_controller")
    try:
        yield
    finally:
        playbook.controller = None


@pytest.fixture(scope="session", autouse=True)
def lab_is_up(request: pytest.FixtureRequest) -> None:
    """The whole lab answers, read with every host held under xdist: the other worker may be breaking one on
    purpose (its fleet modules run first)."""
    worker = getattr(request.config, "workerinput", None)
    held = lanes.holding(lanes.needed([lanes.ALL], lab_hosts()), worker["testrunuid"]) if worker else nullcontext()
    with held:
        proc = subprocess.run(
            [sys.executable, str(REPO / "lab" / "lab.py"), "status"], capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        pytest.fail(f"the lab is not up and healthy; run `make lab-up`.\n{proc.stdout}{proc.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def hosts() -> dict:
    return lab_hosts()


@pytest.fixture
def scratch(request: pytest.FixtureRequest) -> Iterator[ScratchProject]:
    """A throw-away compose project (db, backend, frontend, worker; one-shot and broken services behind profiles)
    in the lab root, reached over SSH by the modules on the test module's first lab host, whose snapshots read it;
    removed with its containers afterwards."""
    marker = request.node.get_closest_marker("lab_hosts")
    host = next((name for name in marker.args if name in lab_hosts()), None)
    assert host, f"a scratch project is reached from a lab host; {request.module.__name__} declares none"
    project = new_project(lab.ROOT / "scratch", host)
    yield project
    project.remove()
    subprocess.run(["rm", "-rf", str(project.path)], check=False)
