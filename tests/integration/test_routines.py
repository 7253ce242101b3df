"""The daily, weekly and monthly routines on lab1: the four-step contract for each, what each finds and writes, and
secrets kept out of what they read and export."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2.errors
import pytest
from psycopg2 import sql

import lab
from harness.paths import lab_credentials
from harness.pg import query
from harness.playbook import assert_four_step, assert_read_only, check_run, run_module, run_playbook

pytestmark = pytest.mark.lab_hosts("lab1", "engine")

ARCHIVES = lab.ROOT / "archives"
LOGS = lab.ROOT / "logs"
PLANTED = "org.stackops.test=routine-prune"


def to(reports: Path) -> dict[str, str]:
    """Reports into a folder of the test's own: a real run writes them (unchanged otherwise, no change reported), and
    the snapshot of the contracts reads the lab's report folders (tests/harness/snapshot.py)."""
    return {"routine_report_dir": str(reports), "health_check_report_dir": str(reports)}


def report(reports: Path, period: str, host: str = "lab1") -> dict:
    return json.loads((reports / period / f"{host}.json").read_text())


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def planted() -> Iterator[dict[str, str]]:
    """A stray stopped container and a dangling image, both labelled, as a week of debugging leaves them."""
    name = f"stackops-prune-test-{uuid.uuid4().hex[:8]}"
    source = docker("create", "--label", PLANTED, lab.image_tag(), "true")
    image = docker("commit", "--change", f"LABEL {PLANTED}", source)  # untagged, used by no container: dangling
    docker("rm", source)
    stray = docker("create", "--name", name, "--label", PLANTED, lab.image_tag(), "true")
    yield {"image": image, "container": stray}
    subprocess.run(["docker", "rm", "-f", stray], capture_output=True, check=False)
    subprocess.run(["docker", "rmi", image], capture_output=True, check=False)


@pytest.mark.matrix
def test_daily_reads_health_disk_and_errors_and_changes_nothing(hosts: dict, tmp_path: Path) -> None:
    host = hosts["lab1"]
    secret = lab_credentials("lab1")["stackops_redis_password"]
    # An error line in the postgres log that carries a secret, as a failed statement does.
    with pytest.raises(psycopg2.errors.UndefinedTable):
        query(host, "postgres", sql.SQL("SELECT 1 FROM {}").format(sql.Identifier(f"routine_no_such_table_{secret}")))
    extravars = {"routine_daily_error_lines": 500, **to(tmp_path)}
    runs = assert_read_only("stackops.runbooks.routine_daily", limit="lab1", extravars=extravars)
    found = report(tmp_path, "daily")
    assert found["period"] == "daily" and found["status"] in ("ok", "warning")
    assert found["facts"]["health"] in ("ok", "warning")
    assert "/" in found["facts"]["disk_used_pct"]
    assert found["facts"]["log_errors_by_container"].get("postgres-1", 0) >= 1
    lines = "\n".join(found["facts"]["log_error_lines"])
    assert "routine_no_such_table" in lines and "[REDACTED]" in lines
    for run in runs:
        assert secret not in run.stdout
    assert secret not in json.dumps(found)
    assert runs[-1].artifacts["routine_daily"]["lab1"]["status"] == found["status"]


def test_check_mode_writes_no_report() -> None:
    """The lab's own report folders, which the snapshot reads: --check writes neither the routine's report nor the
    health check's inside it (both did, as evidence of the run, until check mode was made to change nothing)."""
    check_run(run_playbook, "stackops.runbooks.routine_daily", limit="lab1")


def test_daily_fails_the_host_on_a_warning_when_asked(hosts: dict) -> None:
    run = run_playbook(
        "stackops.runbooks.routine_daily",
        limit="lab1",
        extravars={"routine_fail_on": "warning", "routine_daily_errors_warning": 1, "routine_daily_log_since": "24h"},
    )
    # The test above left an error line in the day's logs, so the day has a warning.
    assert run.failed_hosts() == {"lab1"}
    assert "the daily routine found" in run.stdout and "log lines matched the error pattern" in run.stdout


def test_weekly_prunes_only_leftovers_and_backs_up_once(hosts: dict, planted: dict[str, str], tmp_path: Path) -> None:
    host = hosts["lab1"]
    running = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={host.project}").split()
    extravars = {"routine_weekly_prune_older_than": "0s", **to(tmp_path)}
    check, real, *_rest = assert_four_step("stackops.runbooks.routine_weekly", limit="lab1", extravars=extravars)
    planned = check.result("lab1", "Prune Docker leftovers that nothing refers to")
    pruned = real.result("lab1", "Prune Docker leftovers that nothing refers to")
    assert planted["container"] in [c["id"] for c in planned["containers"]]
    assert planted["image"] in [i["id"] for i in planned["images"]]
    assert pruned["containers"] == planned["containers"] and pruned["images"] == planned["images"]
    assert subprocess.run(["docker", "inspect", planted["container"]], capture_output=True, check=False).returncode != 0
    assert (
        subprocess.run(["docker", "image", "inspect", planted["image"]], capture_output=True, check=False).returncode
        != 0
    )
    # Compose containers, running or stopped, are never pruned.
    assert docker("ps", "-q", "--filter", f"label=com.docker.compose.project={host.project}").split() == running
    found = report(tmp_path, "weekly")
    assert found["facts"]["backup"] and found["facts"]["backup_age_hours"] < 24
    assert found["facts"]["pulled"] == [] and found["facts"]["images_skipped"] >= 1
    assert isinstance(found["facts"]["os_upgradable"], int)


@pytest.mark.matrix
def test_docker_prune_keeps_young_and_labelled_objects(planted: dict[str, str]) -> None:
    args = {"labels": [PLANTED], "older_than": "1h"}
    young = run_module("stackops.runbooks.docker_prune", args).result("lab1")
    assert young["changed"] is False and young["containers"] == [] and young["images"] == []
    keep = {"labels": [PLANTED], "older_than": "0s", "keep_labels": ["org.stackops.test"]}
    kept = run_module("stackops.runbooks.docker_prune", keep).result("lab1")
    assert [c["id"] for c in kept["containers"]] == [] and [i["id"] for i in kept["images"]] == [planted["image"]]
    bad = run_module("stackops.runbooks.docker_prune", {"older_than": "a week"})
    assert bad.failed_hosts() == {"lab1"} and "older_than 'a week' is not a duration" in bad.result("lab1")["msg"]
    assert subprocess.run(["docker", "inspect", planted["container"]], capture_output=True, check=False).returncode == 0


@pytest.fixture
def new_month() -> Iterator[None]:
    """This month's archive and log export of lab1 removed, so the monthly routine has its work to do."""
    month = time.strftime("%Y%m", time.gmtime())
    paths = [ARCHIVES / f"lab1-stack-{month}.tar.gz", ARCHIVES / f"lab1-stack-{month}.tar.gz.sha256"]
    paths.append(LOGS / f"lab1-logs-{month}.log.gz")
    for path in paths:
        path.unlink(missing_ok=True)
    yield


def test_monthly_archives_exports_and_audits_once_a_month(hosts: dict, new_month: None, tmp_path: Path) -> None:
    secret = lab_credentials("lab1")["stackops_pg_password"]
    real = assert_four_step("stackops.runbooks.routine_monthly", limit="lab1", extravars=to(tmp_path))[1]
    assert real.changed()["lab1"] >= 2
    found = report(tmp_path, "monthly")
    archive = Path(found["facts"]["archive"])
    assert archive.stat().st_mode & 0o777 == 0o600 and archive.parent.stat().st_mode & 0o777 == 0o700
    recorded = Path(f"{archive}.sha256").read_text().split()
    assert recorded == [hashlib.sha256(archive.read_bytes()).hexdigest(), archive.name]
    assert recorded[0] == found["facts"]["archive_sha256"]
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"./.env", "./compose.yaml", "./nginx/nginx.conf"} <= set(names)
    assert not [n for n in names if n.startswith("./data/")], "live data files are not archived"
    backup = Path(found["facts"]["backup"]).name
    assert f"{backup}/manifest.json" in names
    exported = Path(found["facts"]["logs"])
    assert exported.stat().st_mode & 0o777 == 0o600
    text = gzip.decompress(exported.read_bytes()).decode()
    assert "postgres-1" in text and secret not in text
    audit = found["facts"]["audits"][0]
    assert audit["service"] == "app" and audit["tool"] is None
    assert any(name.lower() == "psycopg2" for name, _version in audit["packages"])
    # The lab's containers log with json-file and no max-size: the month's review says so.
    assert any("are not rotated" in line for line in found["warning"])
