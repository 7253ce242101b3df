"""Integration tests run against the lab fleet; `make test` brings it up before pytest starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.paths import REPO, lab_hosts


@pytest.fixture(scope="session", autouse=True)
def lab_is_up() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "lab" / "lab.py"), "status"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"the lab is not up and healthy; run `make lab-up`.\n{proc.stdout}{proc.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def hosts() -> dict:
    return lab_hosts()
