"""Every playbook on lab3, the second stack shape (runbook 001's: services db, redis, backend, frontend and nginx; the
database sovd_db owned by the non-superuser sovd_user; the superuser dba; PostgreSQL 17, Redis 8.0, nginx 1.26),
reached through its inventory variables alone (inventories/lab/host_vars/lab3/main.yml), under the contracts of
lab1 and lab2: the four-step for what converges, the read-only pair for what only reads, and a check_run (an
independent snapshot before and after --check) for what acts on every run. Each real run is checked for what it
did to this shape. The backups of this module go to a directory of its own (stackops_backup_dest), so that a
backup taken elsewhere on lab3 never stands in for one taken here."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
import redis
from integration.test_backup_restore_playbooks import started_at
from integration.test_deploy_rollback import FAST as LAB2_FAST
from integration.test_deploy_rollback import record, releases, surge_containers
from integration.test_maintenance_window import status_from_outside, webhook
from integration.test_recover_service import ready
from psycopg2 import sql

import lab
from harness.labctl import lab_up
from harness.paths import lab_credentials
from harness.pg import query
from harness.playbook import PlaybookRun, assert_four_step, assert_read_only, check_run, run_playbook

# The weekly routine, which prunes the Docker engine every host shares, is in test_shape_lab3_weekly.py: holding the
# engine lock for this whole module would keep the other lane's engine modules waiting.
pytestmark = pytest.mark.lab_hosts("lab3", "drill1")

HOST = "lab3"
SERVICES = ["backend", "db", "frontend", "nginx", "redis"]
BACKUPS = lab.ROOT / "backups" / "lab3-shape-test"
READY = {"status": "ready", "database": "ok", "redis": "ok"}

BACKUP = "stackops.runbooks.backup"
RESTORE = "stackops.runbooks.restore"
RESTORE_DRILL = "stackops.runbooks.restore_drill"
DB_MAINTENANCE = "stackops.runbooks.db_maintenance"
REDIS_MAINTENANCE = "stackops.runbooks.redis_maintenance"
ROUTINE_MONTHLY = "stackops.runbooks.routine_monthly"
MAINTENANCE_WINDOW = "stackops.runbooks.maintenance_window"
RECOVER_SERVICE = "stackops.runbooks.recover_service"
DEPLOY = "stackops.runbooks.deploy"
ROLLBACK = "stackops.runbooks.rollback"
COLLECT_DIAGNOSTICS = "stackops.runbooks.collect_diagnostics"

# A tag of the backend's own image: a deploy to it recreates the service (its image reference changes) and adds
# no image to the Docker engine that other modules share.
V2 = "stackops-lab:lab3-shape-v2"
# lab2's quick deploy settings, without the scratch database they name on lab2.
FAST = {name: value for name, value in LAB2_FAST.items() if name != "stackops_pg_db"}


def backups(name: str) -> dict[str, str]:
    """The inventory's backup directory, moved to one of this module's."""
    return {"stackops_backup_dest": str(BACKUPS / name)}


def backend_image(host: lab.Host) -> str:
    return subprocess.check_output(
        ["docker", "inspect", "--format", "{{.Config.Image}}", f"{host.project}-backend-1"], text=True
    ).strip()


@pytest.fixture(scope="module")
def lab3(hosts: dict) -> Iterator[lab.Host]:
    shutil.rmtree(BACKUPS, ignore_errors=True)
    yield hosts[HOST]
    shutil.rmtree(BACKUPS, ignore_errors=True)


# --- what only reads ----------------------------------------------------------------------------------------------


def facts_show_the_shape(result: dict) -> None:
    assert result["postgres"].startswith("17.") and result["redis"].startswith("8.0."), result
    assert result["nginx"].startswith("1.26."), result
    assert result["ready"] == READY and result["unreadable"] == []
    assert sorted(result["containers"]) == [f"stackops-lab3-{service}-1" for service in SERVICES]


def health_sees_every_service(result: dict) -> None:
    assert result["status"] == "ok", result["critical"] + result["warning"]
    assert result["services"] == dict.fromkeys(SERVICES, "running")
    assert (result["postgres"], result["redis"]) == ("ok", "ok")
    statuses = {name: endpoint["status"] for name, endpoint in result["endpoints"].items()}
    assert statuses == {"liveness": 200, "readiness": 200, "tls": 200, "websocket": 101, "cors": 204}


def daily_is_healthy(result: dict) -> None:
    assert result["facts"]["health"] == "ok" and result["status"] in ("ok", "warning"), result


READ_ONLY: dict[str, Callable[[dict], None]] = {
    "stack_facts": facts_show_the_shape,
    "health_check": health_sees_every_service,
    "routine_daily": daily_is_healthy,
}


@pytest.mark.parametrize("playbook", sorted(READ_ONLY))
def test_what_only_reads_sees_the_shape_and_changes_nothing(lab3: lab.Host, playbook: str, tmp_path: Path) -> None:
    extravars = {"health_check_report_dir": str(tmp_path), "routine_report_dir": str(tmp_path)}
    runs = assert_read_only(f"stackops.runbooks.{playbook}", limit=HOST, extravars=extravars)
    READ_ONLY[playbook](runs[1].artifacts[playbook][HOST])


# --- the database -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def taken(lab3: lab.Host) -> list[PlaybookRun]:
    """The backup runbook's four steps: a backup is taken when none is younger than an hour, so the second pair
    finds the first one's and takes none."""
    extravars = {**backups("backup"), "backup_if_older_than_hours": 1}
    return assert_four_step(BACKUP, limit=HOST, extravars=extravars)


def test_backup_four_step_dumps_sovd_db_in_the_db_service(taken: list[PlaybookRun]) -> None:
    check, real, *_again = taken
    assert check.changed() == real.changed() == {HOST: 1}
    summary = real.artifacts["backup"][HOST]
    manifest = json.loads((Path(summary["path"]) / "manifest.json").read_text())
    assert (manifest["database"], manifest["owner"]) == ("sovd_db", "sovd_user")
    assert manifest["source"]["service"] == "db" and manifest["server_version"].startswith("17.")
    assert manifest["globals"] and summary["rows"] > 390000


@pytest.fixture
def previous_databases(lab3: lab.Host) -> Iterator[None]:
    yield
    for (name,) in query(lab3, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'sovd\\_db\\_%'"):
        query(lab3, "postgres", sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_restore_swaps_sovd_db_and_the_backend_serves_from_it(
    lab3: lab.Host, taken: list[PlaybookRun], previous_databases: None
) -> None:
    query(lab3, "sovd_db", "CREATE TABLE public.shape_marker (note text)")
    extravars = {**backups("backup"), "restore_confirm": True}
    check_run(run_playbook, RESTORE, limit=HOST, extravars=extravars)
    backend_before = started_at(lab3, "backend")
    run = run_playbook(RESTORE, limit=HOST, extravars=extravars)
    run.assert_ok()
    summary = run.artifacts["restore"][HOST]
    assert summary["src"] == taken[1].artifacts["backup"][HOST]["path"] and summary["health"] == "ok"
    assert summary["previous_db"].startswith("sovd_db_pre_restore_") and summary["rows"] > 390000
    assert query(lab3, "sovd_db", "SELECT to_regclass('public.shape_marker')") == [(None,)]
    assert query(lab3, summary["previous_db"], "SELECT to_regclass('public.shape_marker')") == [("shape_marker",)]
    owner = "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = 'sovd_db'"
    assert query(lab3, "postgres", owner) == [("sovd_user",)]
    # The backend was stopped for the swap and serves from the restored database.
    assert started_at(lab3, "backend") != backend_before and ready(lab3) == 200


def test_restore_drill_of_a_fresh_sovd_db_backup_on_drill1(lab3: lab.Host, tmp_path: Path) -> None:
    """A fresh backup (pg_dump in lab3's db service, with a sentinel row) restored on drill1 and proven."""
    extravars = {**backups("drill"), "restore_drill_report_dir": str(tmp_path), "restore_drill_fresh_backup": True}
    refusal = "A restore drill does nothing in check mode"
    check_run(run_playbook, RESTORE_DRILL, refused=refusal, limit=HOST, extravars=extravars)
    run = run_playbook(RESTORE_DRILL, limit=HOST, extravars=extravars)
    run.assert_ok()
    (result,) = run.artifacts["restore_drill"]["results"]
    assert (result["host"], result["database"], result["drill_host"], result["status"]) == (
        HOST,
        "sovd_db",
        "drill1",
        "pass",
    ), result
    checks = {check["name"]: check["passed"] for check in result["checks"]}
    assert result["backup"]["fresh"] and checks["sentinel"] is True and checks["amcheck"] is True
    assert result["rows"] > 390000 and [name for name, passed in checks.items() if passed is False] == []
    assert result["cleanup"]["dropped"][0].startswith("lab3_sovd_db_restore_")


def test_db_maintenance_four_step_ends_an_idle_transaction_of_sovd_user(lab3: lab.Host) -> None:
    """A session of the application's role left idle in a transaction, as the runbooks find one."""
    application = "lab3-shape-test"
    stuck = psycopg2.connect(
        host=lab3.addr,
        user="sovd_user",
        dbname="sovd_db",
        password=lab_credentials(HOST)["stackops_pg_app_password"],
        application_name=application,
    )
    try:
        with stuck.cursor() as cur:
            cur.execute("SELECT count(*) FROM app.customers")
        time.sleep(1.2)  # idle in transaction for longer than db_maintenance_idle_for
        extravars = {
            "db_maintenance_terminate_idle": True,
            "db_maintenance_idle_for": 1,
            "db_maintenance_session_users": ["sovd_user"],
            "db_maintenance_session_applications": [application],
        }
        check, real, *_again = assert_four_step(DB_MAINTENANCE, limit=HOST, extravars=extravars)
    finally:
        stuck.close()
    # The session; after the restore above also the tables it left without statistics (analyzed).
    assert check.result(HOST, "End the idle sessions, idle_for=1")["changed"] is True
    summary = real.artifacts["db_maintenance"][HOST]
    assert (summary["status"], summary["database"], summary["terminated"]) == ("ok", "sovd_db", 1)


def test_redis_maintenance_four_step_clears_the_cache_keys(lab3: lab.Host) -> None:
    db = 9  # db 0 is the backend's
    r = redis.Redis(host=lab3.addr, password=lab_credentials(HOST)["stackops_redis_password"], db=db)
    r.flushdb()
    r.mset({**{f"session:{i}": 1 for i in range(200)}, **{f"user:{i}": 1 for i in range(50)}})
    extravars = {"redis_maintenance_db": db, "redis_maintenance_delete_patterns": ["session:*"]}
    try:
        check, real, *_again = assert_four_step(REDIS_MAINTENANCE, limit=HOST, extravars=extravars)
        assert check.changed() == {HOST: 1}
        assert real.artifacts["redis_maintenance"][HOST]["deleted"] == 200 and r.dbsize() == 50
    finally:
        r.flushdb()
        r.close()


# --- the monthly routine (the weekly one: test_shape_lab3_weekly.py) --------------------------------------------------


def test_routine_monthly_four_step_archives_the_project_and_audits_the_backend(lab3: lab.Host, tmp_path: Path) -> None:
    month = time.strftime("%Y%m", time.gmtime())
    archive = lab.ROOT / "archives" / f"lab3-stack-{month}.tar.gz"
    logs = lab.ROOT / "logs" / f"lab3-logs-{month}.log.gz"
    for path in (archive, Path(f"{archive}.sha256"), logs):
        path.unlink(missing_ok=True)
    extravars = {**backups("backup"), "routine_report_dir": str(tmp_path)}
    _check, real, *_again = assert_four_step(ROUTINE_MONTHLY, limit=HOST, extravars=extravars)
    assert real.changed()[HOST] >= 2
    facts = real.artifacts["routine_monthly"][HOST]["facts"]
    assert Path(facts["archive"]) == archive and Path(facts["logs"]) == logs
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"./.env", "./compose.yaml", "./frontend/index.html", "./nginx/conf.d/sovd.conf"} <= names
    assert f"{Path(facts['backup']).name}/manifest.json" in names
    assert not [name for name in names if name.startswith("./data/")]
    assert "backend-1" in gzip.decompress(logs.read_bytes()).decode()
    (audit,) = facts["audits"]
    assert audit["service"] == "backend" and any(name.lower() == "psycopg2" for name, _v in audit["packages"])


# --- the site -----------------------------------------------------------------------------------------------------


def test_maintenance_window_serves_503_through_nginx_while_the_backend_is_stopped(lab3: lab.Host) -> None:
    extravars = {"maintenance_window_stop_services": ["backend"]}
    planned = check_run(run_playbook, MAINTENANCE_WINDOW, limit=HOST, extravars=extravars)
    assert planned.result(HOST, "Stop the services the work needs stopped")["changed"] is True
    backend_before = lab.compose(lab3, "ps", "-q", "backend").stdout.strip()
    with webhook(lab3) as (url, events):
        run = run_playbook(
            MAINTENANCE_WINDOW,
            limit=HOST,
            extravars={**extravars, "maintenance_window_webhook": url, "maintenance_window_reason": "lab3 window"},
        )
    run.assert_ok()
    assert [event["event"] for event in events] == ["started", "finished"]
    seen = events[0]["visitors_saw"]
    assert (503, "900") in seen and set(seen) <= {(200, None), (503, "900")}, set(seen)
    assert status_from_outside(lab3) == (200, None)
    # Stopped and started, not recreated.
    assert lab.compose(lab3, "ps", "-q", "backend").stdout.strip() == backend_before


def test_recover_service_four_step_brings_the_backend_back_with_nginx(lab3: lab.Host) -> None:
    lab.compose(lab3, "stop", "backend")
    try:
        assert ready(lab3) == 502
        extravars = {"recover_service_services": ["backend"]}
        check, real, *_again = assert_four_step(RECOVER_SERVICE, limit=HOST, extravars=extravars)
    except BaseException:
        lab_up()
        raise
    assert check.changed() == {HOST: 1}
    summary = real.artifacts["recover_service"][HOST]
    assert any("stackops-lab3-backend-1 is exited" in problem for problem in summary["problems_before"])
    assert summary["actions"] == ["start backend", "restart nginx"] and ready(lab3) == 200


@pytest.fixture
def deployable(lab3: lab.Host) -> Iterator[str]:
    """V2 tagged; afterwards lab3 is back on its image, .env and upstream, with no surge and no release."""
    image = backend_image(lab3)
    env = (lab3.dir / ".env").read_bytes()
    upstream = lab3.dir / "nginx" / "conf.d" / "sovd.conf"
    site = upstream.read_bytes()
    known = releases(lab3)
    subprocess.run(["docker", "tag", image, V2], check=True)
    yield image
    subprocess.run(["docker", "rm", "--force", *surge_containers(lab3)], capture_output=True, check=False)
    if upstream.read_bytes() != site:
        upstream.write_bytes(site)
        lab.compose(lab3, "exec", "-T", "nginx", "nginx", "-c", "/etc/nginx/stackops/nginx.conf", "-s", "reload")
    if (lab3.dir / ".env").read_bytes() != env:
        (lab3.dir / ".env").write_bytes(env)
    lab.compose(lab3, "up", "--detach", "--wait", "backend")
    for name in releases(lab3) - known:
        shutil.rmtree(lab3.dir / "releases" / name)
    if not known:
        shutil.rmtree(lab3.dir / "releases", ignore_errors=True)
    subprocess.run(["docker", "rmi", V2], capture_output=True, check=False)


def test_deploy_four_step_and_rollback_switch_the_backend_image(lab3: lab.Host, deployable: str) -> None:
    upstream = (lab3.dir / "nginx" / "conf.d" / "sovd.conf").read_bytes()
    _check, real, *_again = assert_four_step(DEPLOY, limit=HOST, extravars={"deploy_image": V2, **FAST})
    result = real.artifacts["deploy"][HOST]
    assert (result["status"], result["service"], result["previous_image"]) == ("deployed", "backend", deployable)
    assert backend_image(lab3) == V2 and f"BACKEND_IMAGE={V2}\n" in (lab3.dir / ".env").read_text()
    saved = record(result["release"])
    assert saved["upstream"]["name"] == "backend" and saved["image_var"] == "BACKEND_IMAGE"
    assert (lab3.dir / "nginx" / "conf.d" / "sovd.conf").read_bytes() == upstream and surge_containers(lab3) == []
    assert ready(lab3) == 200

    check_run(run_playbook, ROLLBACK, limit=HOST, extravars=FAST)
    back = run_playbook(ROLLBACK, limit=HOST, extravars=FAST)
    back.assert_ok()
    rolled = back.artifacts["rollback"][HOST]
    assert (rolled["image"]["previous_image"], rolled["image"]["image"]) == (V2, deployable)
    assert rolled["health"] == "ok" and backend_image(lab3) == deployable and ready(lab3) == 200


def test_collect_diagnostics_bundles_the_shape(lab3: lab.Host, tmp_path: Path) -> None:
    extravars = {
        "collect_diagnostics_dir": str(tmp_path / "host"),
        "collect_diagnostics_fetch_dir": str(tmp_path / "controller"),
        "collect_diagnostics_addresses": [lab3.addr],
    }
    check_run(run_playbook, COLLECT_DIAGNOSTICS, limit=HOST, extravars=extravars)
    assert not (tmp_path / "controller").exists()
    run = run_playbook(COLLECT_DIAGNOSTICS, limit=HOST, extravars=extravars)
    run.assert_ok()
    summary = run.artifacts["collect_diagnostics"][HOST]
    assert summary["severity"] == "ok"
    fetched = Path(summary["controller_path"])
    ports = (fetched / "ports.txt").read_text()
    for port, program in ((80, "nginx"), (5432, "postgres"), (6379, "redis-server"), (8000, "python3")):
        assert f"{port}: {lab3.addr}:{port} by {program}" in ports, ports
    state = json.loads((fetched / "state.json").read_text())
    assert sorted(state["services"]) == SERVICES and state["postgres"]["status"] == "ok"
    assert "| backend | running |" in (fetched / "incident.md").read_text()
