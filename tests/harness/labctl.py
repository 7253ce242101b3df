"""Bring the lab back after a test breaks it on purpose: the real repair path, `lab/lab.py up`."""

from __future__ import annotations

import subprocess
import sys

from harness.paths import REPO


def lab_up() -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "lab" / "lab.py"), "up"], capture_output=True, text=True, check=False, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
