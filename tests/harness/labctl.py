"""Bring the lab back after a test breaks it on purpose: the real repair path, `lab/lab.py up`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import lanes
from harness.paths import REPO


def lab_up() -> str:
    """Under xdist, only the stacks of the hosts this worker holds: another worker may be breaking its own."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "lab" / "lab.py"), "up", *(lanes.held or ())],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def status() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "lab" / "lab.py"), "status"], capture_output=True, text=True, check=False
    )


def repair() -> None:
    """`lab.py up`, then `lab.py status` until every host is healthy (containers start again after dockerd)."""
    lab_up()
    deadline = time.monotonic() + 180
    while (found := status()).returncode != 0:
        assert time.monotonic() < deadline, f"the lab is not healthy after the repair:\n{found.stdout}"
        time.sleep(2)


def gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"process {pid} did not end within {timeout:.0f} s"
        time.sleep(0.2)


@contextlib.contextmanager
def dockerd_stopped() -> Iterator[None]:
    """`systemctl stop docker`: SIGTERM, and dockerd stops every container before it ends. From the signal on,
    whatever fails, the daemon is started again; one still stopping is waited for first (it could answer `lab.py
    up`'s check, then end). Every lab host shares the daemon: only for modules of `lab_hosts("all")`."""
    pid = int(Path("/var/run/docker.pid").read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        gone(pid, 120)
        yield
    finally:
        with contextlib.suppress(AssertionError):
            gone(pid, 120)
        repair()
