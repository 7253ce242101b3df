"""The command line (`python -m stackops_cli drill`, installed as `stackops drill`) on the lab: a drill of lab2 onto
drill1 from an inventory whose lab2 credentials are vault-encrypted. Without the vault password the run cannot judge
(exit 3); with --vault-password-file it passes (exit 0), and ansible-runner's artifacts of the run stay in the
--artifacts-dir folder as evidence: private, complete, and without any of the host's secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import LAB_INVENTORY, REPO, lab_credentials

pytestmark = pytest.mark.lab_hosts("lab2", "drill1")

HOST = "lab2"
CREDENTIALS = Path("host_vars") / HOST / "lab_credentials.yml"
EXIT_PASS, EXIT_RUNNER_ERROR = 0, 3


@pytest.fixture
def vaulted(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the lab inventory with lab2's credentials encrypted, and the vault password file (both 0600)."""
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inventory)
    password = tmp_path / "vault-pass"
    password.write_text(os.urandom(16).hex() + "\n")
    password.chmod(0o600)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password),
            str(inventory / CREDENTIALS),
        ],
        check=True,
        capture_output=True,
    )
    assert (inventory / CREDENTIALS).read_text().startswith("$ANSIBLE_VAULT;")
    return inventory, password


def drill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stackops_cli", "drill", "-l", f"{HOST},drill1", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def test_a_vaulted_inventory_drills_with_its_password_and_keeps_the_evidence(
    vaulted: tuple[Path, Path], tmp_path: Path
) -> None:
    inventory, password = vaulted
    evidence_root, reports = tmp_path / "evidence", tmp_path / "reports"
    common = ["-i", str(inventory), "--artifacts-dir", str(evidence_root), "--report-dir", str(reports)]

    locked = drill(*common)
    assert locked.returncode == EXIT_RUNNER_ERROR, locked.stdout + locked.stderr
    assert "vault" in locked.stdout.lower() and "NO VERDICT" in locked.stdout

    run = drill(*common, "--vault-password-file", str(password), "-e", "restore_drill_fresh_backup=true", "-v")
    assert run.returncode == EXIT_PASS, run.stdout[-3000:] + run.stderr
    assert "PASS - 1/1 databases passed" in run.stdout
    evidence = Path(run.stdout.splitlines()[-1].split()[1])
    assert evidence.parent == evidence_root and evidence_root.stat().st_mode & 0o777 == 0o700
    assert (evidence / "status").read_text() == "successful" and (evidence / "rc").read_text() == "0"
    assert any((evidence / "job_events").iterdir()), "the run's events are kept"
    stdout = (evidence / "stdout").read_text()
    assert "Using " in stdout and "as config file" in stdout, "-v reached ansible-playbook"
    command = json.loads((evidence / "command").read_text())
    assert "--vault-password-file" in command["command"] and str(password) in command["command"]
    report = json.loads(next(reports.glob("restore-drill-*.json")).read_text())
    assert [(r["host"], r["status"]) for r in report["results"]] == [(HOST, "pass")]

    secrets = [value for value in lab_credentials(HOST).values() if len(str(value)) >= 8]
    secrets.append(password.read_text().strip())
    for path in [*evidence.rglob("*"), *reports.rglob("*")]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [s for s in secrets if s in text], f"a secret is in {path}"
