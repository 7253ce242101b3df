"""Scaling the app on lab2 behind nginx (role and playbook scale): up to three replicas through the four steps
(check mode predicts, the real run starts replica 2 on 8002 and 3 on 8003 healthy and answering before nginx's
upstream lists them, the second check and run change nothing), then back to one under a GET loop through nginx:
the replicas leave the upstream (reload confirmed) before they are removed, and no request fails. Bad requests are
refused before anything changes."""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from harness.labctl import lab_up
from harness.paths import lab_hosts
from harness.playbook import PlaybookRun, assert_four_step, check_run, run_playbook

pytestmark = pytest.mark.lab_hosts("lab2")
# Read from the declaration: the scheduler reads its literal without importing the module.
HOST_NAME = pytestmark.args[0]

SCALE = "stackops.runbooks.scale"
HOST = lab_hosts()[HOST_NAME]
LABEL = f"org.stackops.scale.of={HOST.project}/app"
FAST = {"scale_drain_seconds": 1, "scale_wait_timeout": 60}


def replicas() -> dict[str, str]:
    """Replica container name -> state (health), read with docker itself."""
    out = subprocess.run(
        ["docker", "ps", "--all", "--filter", f"label={LABEL}", "--format", "{{.Names}} {{.Status}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def get(port: int, path: str = "/health") -> int:
    conn = http.client.HTTPConnection(HOST.addr, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        return conn.getresponse().status
    finally:
        conn.close()


def changed(run: PlaybookRun) -> list[str]:
    return [task.rsplit(" (", 1)[0] for task in run.changed_tasks()[HOST_NAME]]


class Load(threading.Thread):
    """GET /health through nginx every ~20 ms, bounded (60 s, 3000 requests), counting what is not a 200."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.requests, self.failures = threading.Event(), 0, []

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and self.requests < 3000 and time.monotonic() < deadline:
            self.requests += 1
            try:
                status = get(80)
                if status != 200:
                    self.failures.append(str(status))
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.02)


@pytest.fixture(scope="module")
def upstream() -> Iterator[bytes]:
    """The host's upstream file as it was; afterwards any replica left is removed and the host repaired."""
    site = HOST.dir / "nginx" / "conf.d" / "app.conf"
    before = site.read_bytes()
    try:
        yield before
    finally:
        left = subprocess.run(
            ["docker", "ps", "--all", "--quiet", "--filter", f"label={LABEL}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if left:
            subprocess.run(["docker", "rm", "--force", *left], capture_output=True, check=False)
        (HOST.dir / "compose.scale-app.yaml").unlink(missing_ok=True)
        lab_up()


def test_scale_up_to_three_then_back_to_one(upstream: bytes) -> None:
    site = HOST.dir / "nginx" / "conf.d" / "app.conf"
    runs = assert_four_step(SCALE, limit=HOST_NAME, extravars={**FAST, "scale_replicas": 3})
    # What check mode predicted is what the real run did (the contract compares them): the override, the
    # replicas, then the upstream.
    assert changed(runs[1]) == [
        "scale : Write the replicas' compose override (no dependencies, no ports)",
        "scale : Start each replica on its port, and wait until it is healthy",
        f"scale : Point the upstream at {HOST.addr}:8000, {HOST.addr}:8002, {HOST.addr}:8003",
    ], runs[1].changed_tasks()
    found = replicas()
    assert sorted(found) == [f"{HOST.project}-app-2-app-1", f"{HOST.project}-app-3-app-1"], found
    assert all("healthy" in status for status in found.values()), found
    assert [get(port) for port in (8000, 8002, 8003)] == [200, 200, 200]
    text = site.read_text()
    assert all(f"server {HOST.addr}:{port};" in text for port in (8000, 8002, 8003)), text
    assert "keepalive 16;" in text, "the upstream's other directives are kept"
    applied = runs[1].result(HOST_NAME, f"Point the upstream at {HOST.addr}:8000, {HOST.addr}:8002, {HOST.addr}:8003")
    assert applied["validated"] and applied["applied"], applied
    assert runs[1].artifacts["scale"][HOST_NAME]["replicas_before"] == 1
    assert runs[3].artifacts["scale"][HOST_NAME]["status"] == "unchanged"

    # Back to one under load: out of the upstream (reload confirmed), drained, then removed, the highest first.
    load = Load()
    load.start()
    try:
        down = run_playbook(SCALE, limit=HOST_NAME, extravars={**FAST, "scale_replicas": 1})
    finally:
        load.stop.set()
        load.join()
    down.assert_ok()
    assert changed(down) == [
        f"scale : Point the upstream at {HOST.addr}:8000",
        "scale : Remove each replica beyond the count, the highest first",
        "scale : Remove the replicas' override once the service runs alone",
    ], down.changed_tasks()
    removed = [
        r["item"]["project"]
        for r in down.result(HOST_NAME, "Remove each replica beyond the count, the highest first")["results"]
    ]
    assert removed == [f"{HOST.project}-app-3", f"{HOST.project}-app-2"]
    assert load.requests > 20 and not load.failures, (load.requests, load.failures[:10])
    assert replicas() == {}
    assert site.read_bytes() == upstream, "the upstream is back byte for byte"
    assert not (HOST.dir / "compose.scale-app.yaml").exists()


@pytest.mark.parametrize(
    ("extravars", "refused"),
    [
        ({"scale_replicas": 0}, "scale_replicas must be a whole number of 1 or more"),
        ({"scale_replicas": 2, "scale_first_port": 8001}, "give scale_first_port a free range"),
    ],
)
def test_bad_requests_are_refused_with_nothing_changed(upstream: bytes, extravars: dict, refused: str) -> None:
    check_run(run_playbook, SCALE, limit=HOST_NAME, extravars=extravars, refused=refused)
