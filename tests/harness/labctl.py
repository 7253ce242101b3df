"""Bring the lab back after a test breaks it on purpose: the real repair path, `lab/lab.py up`."""

from __future__ import annotations

import subprocess
import sys

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
