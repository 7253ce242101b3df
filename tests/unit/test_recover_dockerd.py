"""recover_service starts a stopped dockerd on the lab with the lab inventory's command: the daemon lab/lab.py starts
(no bridge network, no iptables), detached, its log where lab.py keeps it. The init script's daemon would make the
docker0 bridge, so the command must be set and must match."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

import lab

REPO = Path(__file__).resolve().parents[2]


def test_the_lab_inventory_starts_the_daemon_lab_py_starts() -> None:
    group = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all.yml").read_text())
    argv = group["recover_service_docker_start_command"]
    assert argv[:2] == ["start-stop-daemon", "--start"] and "--background" in argv and "--oknodo" in argv
    assert argv[argv.index("--output") + 1] == str(lab.DOCKERD_LOG)
    executable = argv[argv.index("--exec") + 1]
    assert Path(executable).is_absolute() and Path(executable).name == lab.DOCKERD[0]
    assert argv[argv.index("--") + 1 :] == lab.DOCKERD[1:]
    if shutil.which(lab.DOCKERD[0]):
        assert shutil.which(lab.DOCKERD[0]) == executable
