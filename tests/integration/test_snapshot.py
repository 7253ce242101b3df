"""The independent snapshot (tests/harness/snapshot.py) sees what playbooks touch: each test changes one thing on
lab1 (or drill1), shows that diff() names it, and puts it back in a finally. The snapshot's databases, nginx files
and canaries are proven in test_bad_input.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import lab
from harness.scratch import ScratchProject, service
from harness.snapshot import diff, snapshot, watching

# Tagging an image is a change to the engine every lane shares; drill1 holds the drill's report folder.
pytestmark = pytest.mark.lab_hosts("lab1", "drill1", "engine")

ADDR = "127.0.2.1"  # lab1's address; port 18081 is nobody's there
# Entries of the shared output folders that are lab1's, and some that are not (lab10 is no host).
LAB1_OUTPUTS = [
    lab.ROOT / "backups" / "lab1" / "snapshot-probe",
    lab.ROOT / "backups" / "lab1-redis" / "snapshot-probe",
    lab.ROOT / "backup-copies" / "lab1" / "snapshot-probe",
    lab.ROOT / "archives" / "lab1-stack-snapshot-probe.tar.gz",
    lab.ROOT / "logs" / "lab1-logs-snapshot-probe.log.gz",
    lab.ROOT / "reports" / "routine" / "snapshot-probe" / "lab1.json",
    Path("/var/backups/stackops/copies/lab1/snapshot-probe"),
    Path("/var/tmp/stackops-health/health-lab1.json"),
    Path("/var/tmp/stackops-incidents/lab1-snapshot-probe/bundle.txt"),
    Path("/var/tmp/stackops-incidents-fetched/lab1-snapshot-probe/bundle.txt"),
    Path("/var/tmp/stackops-restore-drill/snapshot-probe-lab1/dump"),
]
OTHERS_OUTPUTS = [
    lab.ROOT / "backups" / "lab10" / "snapshot-probe",
    lab.ROOT / "archives" / "lab10-stack-snapshot-probe.tar.gz",
    lab.ROOT / "reports" / "routine" / "snapshot-probe" / "lab10.json",
    lab.ROOT / "reports" / "restore-drill" / "snapshot-probe.json",
    Path("/var/tmp/stackops-restore-drill/snapshot-probe-lab10/dump"),
]


@pytest.fixture
def lab1(hosts: dict[str, lab.Host]) -> lab.Host:
    return hosts["lab1"]


@contextmanager
def appended(path: Path, line: bytes = b"# snapshot probe\n") -> Iterator[None]:
    """The file with a line more (made if missing, with its folders) for the block, then as it was."""
    old = path.read_bytes() if path.exists() else None
    made = [folder for folder in path.parents if not folder.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((old or b"") + line)
        yield
    finally:
        if old is None:
            path.unlink(missing_ok=True)
            for folder in made:
                folder.rmdir()
        else:
            path.write_bytes(old)


def seen(host: lab.Host, path: Path) -> list[str]:
    """What diff() names while the file has a line more; once it is back, the snapshot is as before."""
    before = snapshot(host)
    with appended(path):
        during = diff(before, snapshot(host))
    assert diff(before, snapshot(host)) == []
    return during


@pytest.mark.parametrize("name", [".env", "compose.yaml", "compose.override.yaml", "releases/snapshot-probe.json"])
def test_the_project_directory_is_read(lab1: lab.Host, name: str) -> None:
    during = seen(lab1, lab1.dir / name)
    assert any(line.startswith(f"project/{name}: ") for line in during), during


@pytest.mark.parametrize("path", LAB1_OUTPUTS, ids=str)
def test_the_host_s_backups_reports_and_bundles_are_read(lab1: lab.Host, path: Path) -> None:
    during = seen(lab1, path)  # added, or changed when a run left one there
    assert any(line.startswith(f"outputs/{str(path).lstrip('/')}: ") for line in during), during


@pytest.mark.parametrize("path", OTHERS_OUTPUTS, ids=str)
def test_another_host_s_outputs_are_not_lab1_s(lab1: lab.Host, path: Path) -> None:
    assert seen(lab1, path) == []


def test_the_drill_s_reports_are_the_drill_host_s(hosts: dict[str, lab.Host]) -> None:
    path = lab.ROOT / "reports" / "restore-drill" / "snapshot-probe.json"
    during = seen(hosts["drill1"], path)
    assert any(line.startswith(f"outputs/{str(path).lstrip('/')}: ") for line in during), during


def test_an_image_tagged_for_the_host_is_seen(lab1: lab.Host) -> None:
    probe, other = "stackops-lab:lab1-snapshot-probe", "stackops-lab:lab10-snapshot-probe"
    before = snapshot(lab1)
    try:
        for reference in (probe, other):
            subprocess.run(["docker", "tag", lab.image_tag(), reference], check=True, capture_output=True)
        during = diff(before, snapshot(lab1))
    finally:
        subprocess.run(["docker", "rmi", probe, other], check=False, capture_output=True)
    assert [line.split(": ")[0] for line in during] == [f"images/{probe}"], during
    assert diff(before, snapshot(lab1)) == []


def test_an_image_the_project_s_env_names_is_seen(lab1: lab.Host) -> None:
    before = snapshot(lab1)
    with appended(lab1.dir / ".env", b"SNAPSHOT_PROBE_IMAGE=stackops-lab:snapshot-probe\n"):
        during = diff(before, snapshot(lab1))
    assert "images/stackops-lab:snapshot-probe: added null" in during, during


def test_a_project_made_from_the_host_s_directory_is_seen(lab1: lab.Host) -> None:
    """Whatever its name: Compose labels each container with the directory it was made from."""
    folder, name = lab1.dir / "snapshot-probe", "snapshot-probe-project"
    compose = ["docker", "compose", "--project-directory", str(folder), "-p", name]
    before = snapshot(lab1)
    try:
        folder.mkdir()
        (folder / "compose.yaml").write_text(json.dumps({"services": {"probe": service()}}))
        subprocess.run([*compose, "up", "--detach"], check=True, capture_output=True)
        during = diff(before, snapshot(lab1))
    finally:
        subprocess.run([*compose, "down", "--timeout", "0"], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    assert any(line.startswith(f"projects/{name}/{name}-probe-1/status: added") for line in during), during
    assert diff(before, snapshot(lab1)) == []


def test_a_watched_scratch_project_started_is_seen(lab1: lab.Host, scratch: ScratchProject) -> None:
    before = snapshot(lab1)
    try:
        up = scratch.compose("up", "--detach", "db")
        assert up.returncode == 0, up.stderr
        during = diff(before, snapshot(lab1))
    finally:
        scratch.compose("down", "--timeout", "0")
    assert any(line.startswith(f"projects/{scratch.name}/{scratch.name}-db-1/status: added") for line in during), during
    assert diff(before, snapshot(lab1)) == []


def health(container: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Health.Status}}", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_stop_and_start_of_a_container_is_seen(lab1: lab.Host) -> None:
    nginx = f"{lab1.project}-{lab1.shape.nginx}-1"
    before = snapshot(lab1)
    try:
        subprocess.run(["docker", "stop", "--time", "5", nginx], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "start", nginx], check=True, capture_output=True)
        deadline = time.monotonic() + 60
        while health(nginx) != "healthy" and time.monotonic() < deadline:
            time.sleep(0.5)
    during = diff(before, snapshot(lab1))
    assert any(line.startswith(f"containers/{nginx}/started_at: ") for line in during), during
    assert not any(line.startswith(f"containers/{nginx}/id") for line in during), "the same container, restarted"


def test_a_watched_host_nginx_s_files_and_workers_are_seen(lab1: lab.Host, tmp_path: Path) -> None:
    root = tmp_path / "nginx"
    (root / "conf.d").mkdir(parents=True)
    (root / "nginx.conf").write_text(
        f"worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    client_body_temp_path {root}/tmp;\n    proxy_temp_path {root}/tmp;\n"
        f"    include {root}/conf.d/*.conf;\n    server {{ listen {ADDR}:18081; return 200; }}\n}}\n"
    )
    subprocess.run(["nginx", "-c", str(root / "nginx.conf")], check=True, capture_output=True)
    try:
        with watching("lab1", files=[root], nginx_pids=[root / "nginx.pid"]):
            before = snapshot(lab1)
            (root / "conf.d" / "probe.conf").write_text("# snapshot probe\n")
            subprocess.run(["nginx", "-c", str(root / "nginx.conf"), "-s", "reload"], check=True, capture_output=True)
            during = diff(before, snapshot(lab1))
        assert snapshot(lab1)["host_nginx"] == {}, "forgotten after the block"
    finally:
        subprocess.run(["nginx", "-c", str(root / "nginx.conf"), "-s", "stop"], check=False, capture_output=True)
    assert any(line.startswith(f"files/{root}/conf.d/probe.conf: added") for line in during), during
    assert any(line.startswith(f"host_nginx/{root}/nginx.pid/workers: gone [") for line in during), during


def test_a_rewrite_that_keeps_size_and_mtime_is_seen(lab1: lab.Host, tmp_path: Path) -> None:
    """The digest cache is keyed by ctime too, which no system call sets back (as `touch -r` sets mtime)."""
    probe = tmp_path / "backup.dump"
    probe.write_bytes(b"1111")
    before = snapshot(lab1, files=[tmp_path])
    stat = probe.stat()
    probe.write_bytes(b"2222")
    os.utime(probe, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert probe.stat().st_mtime_ns == stat.st_mtime_ns
    assert any(
        line.startswith(f"files/{tmp_path}/backup.dump: ") for line in diff(before, snapshot(lab1, files=[tmp_path]))
    )
