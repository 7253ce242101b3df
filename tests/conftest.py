"""Shared pytest setup: the collection on ANSIBLE_COLLECTIONS_PATH and sys.path, the repo's ansible.cfg."""

from __future__ import annotations

import os
import sys
import time

import pytest

from harness.paths import ANSIBLE_CONFIG, COLLECTIONS

os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
os.environ.setdefault("ANSIBLE_CONFIG", str(ANSIBLE_CONFIG))
sys.path.insert(0, str(COLLECTIONS))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """With STACKOPS_TIMES set (make test sets it), append each test phase's time as it ends: a run stopped by a
    deadline still shows where its time went, which junit.xml, written at the end, does not."""
    path = os.environ.get("STACKOPS_TIMES")
    if path and not os.environ.get("PYTEST_XDIST_WORKER"):
        with open(path, "a", encoding="utf-8") as out:
            out.write(
                f"{time.strftime('%H:%M:%S')}\t{report.duration:.1f}\t{report.when}\t{report.outcome}\t{report.nodeid}\n"
            )
