"""The lanes' host locks (tests/harness/lanes.py): a module that needs every host is not starved by a lane whose
modules release and take its hosts again one after another."""

from __future__ import annotations

import threading
import time
import uuid

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
