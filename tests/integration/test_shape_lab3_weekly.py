"""The weekly routine on lab3, the second stack shape (see test_shape_lab3.py), under the four-step contract. Its own
module because the routine's prune acts on the Docker engine every lab host shares: this module holds the engine's
lock for the routine alone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.test_shape_lab3 import BACKUPS, HOST, backups

from harness.playbook import assert_four_step

pytestmark = pytest.mark.lab_hosts("lab3", "engine")

ROUTINE_WEEKLY = "stackops.runbooks.routine_weekly"


@pytest.fixture
def weekly_backups() -> Iterator[Path]:
    dest = BACKUPS / "weekly"
    shutil.rmtree(dest, ignore_errors=True)
    yield dest
    shutil.rmtree(dest, ignore_errors=True)


def test_routine_weekly_four_step_backs_up_sovd_db_once(weekly_backups: Path, tmp_path: Path) -> None:
    # The OS package report reads the machine every lab host shares, as test_routines does on lab1 (4 s a run).
    extravars = {**backups("weekly"), "routine_report_dir": str(tmp_path), "routine_weekly_os_updates": False}
    _check, real, *_again = assert_four_step(ROUTINE_WEEKLY, limit=HOST, extravars=extravars)
    # The backup, and whatever week-old leftovers the engine had (docker_prune's own tests prove what it takes).
    assert real.result(HOST, "Take the backup (written, synced, read back, checksummed, then renamed)")["changed"]
    facts = real.artifacts["routine_weekly"][HOST]["facts"]
    assert Path(facts["backup"]).parent == weekly_backups and Path(facts["backup"]).name.startswith("sovd_db-")
    assert facts["pulled"] == [] and facts["images_skipped"] >= 1
