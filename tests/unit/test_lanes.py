"""The lanes' host locks (tests/harness/lanes.py): a module that needs every host is not starved by a lane whose
modules release and take its hosts again one after another."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from harness import lanes


def test_a_module_of_every_host_gets_in_after_the_module_running_when_it_came() -> None:
    run_id = uuid.uuid4().hex
    order: list[str] = []
    waiting = threading.Event()

    def lane() -> None:
        # The modules of lab1's lane, each taking lab1 again the moment the previous one released it.
        for module in range(5):
            with lanes.holding(["lab1"], run_id):
                order.append(f"lab1 module {module}")
                if module == 0:
                    waiting.set()
                time.sleep(0.3)

    def fleet() -> None:
        waiting.wait()
        with lanes.holding(["engine", "lab1", "lab2"], run_id):
            order.append("fleet module")

    threads = [threading.Thread(target=lane), threading.Thread(target=fleet)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert order[:3] == ["lab1 module 0", "fleet module", "lab1 module 1"], order


def test_the_plan_runs_the_fleet_modules_first_and_keeps_the_workers_on_different_hosts() -> None:
    fleet = ["drill1", "lab1", "lab2"]
    needs = {
        "fleet": lanes.needed(["all"], fleet),
        "one": lanes.needed(["lab1"], fleet),
        "two": lanes.needed(["lab1"], fleet),
        "three": lanes.needed(["lab2"], fleet),
        "drill": lanes.needed(["lab2", "drill1"], fleet),
        "unknown": lanes.needed(["lab2"], fleet),
    }
    weight = {"fleet": 50.0, "one": 100.0, "two": 90.0, "three": 80.0, "drill": 70.0}
    queues = lanes.plan(needs, weight, 2)
    assert sorted(module for queue in queues for module in queue) == sorted(needs)
    assert queues[0][0] == "fleet"
    # Once the fleet module ends, the lab1 modules go to one worker and the lab2 ones to the other.
    assert {frozenset(queue[1:] if queue[0] == "fleet" else queue) for queue in queues} == {
        frozenset({"one", "two"}),
        frozenset({"three", "drill", "unknown"}),
    }


def test_the_plan_waits_rather_than_overlap_when_every_module_left_shares_a_host() -> None:
    needs = {"a": ["lab1"], "b": ["lab1"], "c": ["lab1"]}
    queues = lanes.plan(needs, {"a": 30.0, "b": 20.0, "c": 10.0}, 2)
    # Whatever the split, a module only starts when the one holding lab1 has ended: the plan is the heaviest first.
    assert [module for queue in queues for module in queue] in (["a", "c", "b"], ["a", "b", "c"])
    assert queues[0][0] == "a"


def test_every_integration_module_has_a_weight() -> None:
    modules = {path.stem for path in (Path(__file__).parents[1] / "integration").glob("test_*.py")}
    assert not modules - set(lanes.weights()), "run `python tests/tools/weights.py .build/times.tsv` after make test"


def test_the_order_is_the_fleet_first_then_the_heaviest() -> None:
    fleet = ["drill1", "lab1", "lab2"]
    needs = {
        "light": lanes.needed(["lab1"], fleet),
        "heavy": lanes.needed(["lab2"], fleet),
        "fleet": lanes.needed(["all"], fleet),
        "unmeasured": lanes.needed(["drill1"], fleet),
    }
    # The unmeasured module weighs the median (50): between the two others.
    assert lanes.priority(needs, {"light": 10.0, "heavy": 90.0, "fleet": 50.0}) == [
        "fleet",
        "heavy",
        "unmeasured",
        "light",
    ]


def test_a_free_worker_takes_the_first_module_on_hosts_the_other_does_not_hold() -> None:
    needs = {"a": ["lab1"], "b": ["lab1", "drill1"], "c": ["lab2"], "d": ["lab1"]}
    assert lanes.pick(["a", "b", "c", "d"], needs, busy={"lab1"}) == "c"
    assert lanes.pick(["a", "b", "c", "d"], needs, busy={"drill1"}) == "a"
    assert lanes.pick(["a", "b", "c", "d"], needs, busy=set()) == "a"
    # Every module left shares a host: the first one, which will wait for it.
    assert lanes.pick(["b", "d"], needs, busy={"lab1"}) == "b"
    assert lanes.pick([], needs, busy=set()) is None
