"""Integration tests run against the lab fleet; `make test` brings it up before pytest starts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import lab
from harness.paths import REPO, lab_hosts
from harness.scratch import ScratchProject, new_project


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


@pytest.fixture
def scratch() -> Iterator[ScratchProject]:
    """A throw-away compose project (db, backend, frontend, worker; one-shot and broken services behind profiles)
    in the lab root, reached by the modules on lab1 over SSH; removed with its containers afterwards."""
    project = new_project(lab.ROOT / "scratch")
    yield project
    project.remove()
    subprocess.run(["rm", "-rf", str(project.path)], check=False)
