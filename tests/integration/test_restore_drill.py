"""The restore drill over SSH on the lab fleet: lab1, lab2 (PostgreSQL 15) and lab3 (17, the second stack shape)
drilled onto drill1 (17). A pass proves the data; a damaged
backup, a failing smoke query and a host lost mid-drill each fail that host alone, the others finish, the report
says so, and nothing is left on the drill host or the controller."""

from __future__ import annotations

import contextlib
import getpass
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

import lab
from harness.paths import LAB_INVENTORY, REPO, lab_credentials
from harness.pg import query
from harness.playbook import PlaybookRun, check_run, run_module, run_playbook

pytestmark = pytest.mark.lab_hosts("all")

PLAYBOOK = "stackops.runbooks.restore_drill"
SCHEMA = json.loads((REPO / "docs" / "schemas" / "restore_drill.v2.schema.json").read_text())
WORK = Path("/var/tmp/stackops-restore-drill")


# The fault cases drill the first shape's hosts only: lab3's part of a drill is the fleet run's.
FIRST_SHAPE = "lab1,lab2,drill1"


def drill(
    report_dir: Path, inventory: Path = LAB_INVENTORY, limit: str | None = None, **extravars: object
) -> PlaybookRun:
    return run_playbook(
        PLAYBOOK,
        inventory=inventory,
        limit=limit,
        extravars={"restore_drill_report_dir": str(report_dir), **extravars},
    )


def sha256_check(directory: Path, *sidecars: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sha256sum", "-c", *sidecars], cwd=directory, capture_output=True, text=True, check=False)


def sidecars_hold(run: PlaybookRun) -> list[Path]:
    """Every report has a `<file>.sha256` that `sha256sum -c` accepts, with the report's mode; the reports."""
    artifact = run.artifacts["restore_drill"]
    reports = [Path(artifact[f"report_{ext}"]) for ext in ("json", "md", "html")]
    for report in reports:
        sidecar = report.with_name(f"{report.name}.sha256")
        assert sidecar.read_text().endswith(f"  {report.name}\n"), sidecar.read_text()
        assert sidecar.stat().st_mode & 0o777 == report.stat().st_mode & 0o777 == 0o640
        checked = sha256_check(report.parent, sidecar.name)
        assert checked.returncode == 0 and checked.stdout == f"{report.name}: OK\n", checked
    return reports


def evidence(run: PlaybookRun, report_dir: Path) -> dict:
    """The run's JSON document, validated against the published schema, with its reports and their checksums
    next to it."""
    artifact = run.artifacts["restore_drill"]
    document = json.loads(Path(artifact["report_json"]).read_text())
    jsonschema.validate(document, SCHEMA)
    sidecars_hold(run)
    assert Path(artifact["report_md"]).read_text().startswith(f"# Restore drill {document['run_id']}")
    html = Path(artifact["report_html"]).read_text()
    assert "<svg" in html and "<script" not in html
    assert artifact["summary"] == document["summary"]
    assert sorted(p.name for p in report_dir.iterdir() if p.name.startswith(".")) == [], "staging left behind"
    return document


def by_host(document: dict) -> dict[str, dict]:
    return {r["host"]: r for r in document["results"]}


def nothing_left(drill_host: lab.Host) -> None:
    left = query(drill_host, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE '%\\_restore\\_%'")
    assert left == [], f"scratch databases left on drill1: {left}"
    assert not WORK.exists() or list(WORK.iterdir()) == [], f"copies left on drill1: {list(WORK.iterdir())}"


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"


@pytest.mark.matrix
def test_a_drill_proves_every_database_and_writes_the_evidence(hosts: dict, reports: Path, tmp_path: Path) -> None:
    smoke = [{"name": "customers", "query": "SELECT count(*) FROM app.customers", "expect": 20000}]
    first = drill(
        reports, restore_drill_fresh_backup=True, restore_drill_negative_control=True, restore_drill_smoke_queries=smoke
    )
    first.assert_ok()
    document = evidence(first, reports)
    assert document["summary"] == {
        "databases": 3,
        "passed": 3,
        "failed": 0,
        "unreachable": 0,
        "status": "pass",
        "failed_hosts": [],
    }
    for name, result in by_host(document).items():
        checks = {c["name"]: c for c in result["checks"]}
        assert result["drill_host"] == "drill1" and result["backup"]["fresh"], result
        assert all(checks[n]["passed"] for n in ("checksums", "row_counts", "sentinel", "amcheck", "smoke:customers"))
        assert checks["negative_control"]["passed"] and "sha256" in checks["negative_control"]["detail"]
        assert result["rto_s"] > 0 and 0 <= result["rpo_hours"] < 1 and result["rows"] > 390000
        db = hosts[name].shape.db
        assert result["cleanup"]["files_removed"] and result["cleanup"]["dropped"][0].startswith(
            f"{name}_{db}_restore_"
        )
    # PostgreSQL 15 and 17 backups (their manifests say), each restored on drill1's 17.
    manifests = {
        name: json.loads((lab.ROOT / "backups" / name / r["backup"]["name"] / "manifest.json").read_text())
        for name, r in by_host(document).items()
    }
    assert query(hosts["drill1"], "postgres", "SHOW server_version")[0][0].startswith("17.")
    assert {name: str(m["server_version"]).split(".", maxsplit=1)[0] for name, m in manifests.items()} == {
        "lab1": "15",
        "lab2": "15",
        "lab3": "17",
    }
    nothing_left(hosts["drill1"])
    # Run from this checkout with ansible-playbook: the provenance names it, and no AWX job.
    assert document["provenance"] == {
        "awx_job_id": None,
        "awx_job_template": None,
        "awx_schedule": None,
        "awx_workflow_job_id": None,
        "awx_execution_node": None,
        "launch_type": "ansible-playbook",
        "user": getpass.getuser(),
        "collection_version": yaml.safe_load((REPO / "galaxy.yml").read_text())["version"],
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip(),
    }
    # A report changed after the run no longer matches its sidecar.
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    md = Path(first.artifacts["restore_drill"]["report_md"])
    for path in (md, md.with_name(f"{md.name}.sha256")):
        shutil.copy2(path, tampered / path.name)
    (tampered / md.name).write_text(md.read_text().replace(": PASS", ": FAIL", 1))
    refused = sha256_check(tampered, f"{md.name}.sha256")
    assert refused.returncode == 1 and f"{md.name}: FAILED" in refused.stdout, refused

    # A second run, as AWX would launch it (the variables AWX gives every job, docs/restore_drill_report.md), drills
    # the newest backups as they are, shows both runs in the trend, and archives its evidence on drill1 and
    # through a task file of the user's.
    awx = {
        "awx_job_id": 4711,
        "awx_job_launch_type": "manual",
        "awx_job_template_name": "stackops restore drill",
        "awx_user_name": "auditor-demo",
        "awx_user_email": "auditor@example.com",
        "awx_execution_node": "awx-task-0",
        "awx_project_revision": "0123456789abcdef0123456789abcdef01234567",
    }
    archive = tmp_path / "archive"  # on drill1, whose filesystem the lab shares
    handed = tmp_path / "handed.json"
    hook = tmp_path / "archive_tasks.yml"
    hook.write_text(
        "- name: Keep the list of files handed over\n"
        "  ansible.builtin.copy:\n"
        f"    dest: {handed}\n"
        '    content: \'{{ {"run_id": restore_drill_run_id, "files": restore_drill_archive_files} | to_json }}\'\n'
        "    mode: '0600'\n"
    )
    second = drill(
        reports,
        restore_drill_archive_host="drill1",
        restore_drill_archive_dir=str(archive),
        restore_drill_archive_tasks=str(hook),
        **awx,
    )
    second.assert_ok()
    assert len(list(reports.glob("restore-drill-*.json"))) == 2
    assert document["run_id"] in Path(second.artifacts["restore_drill"]["report_md"]).read_text()
    again = evidence(second, reports)
    assert again["provenance"] == {
        **document["provenance"],
        "awx_job_id": 4711,
        "awx_job_template": "stackops restore drill",
        "awx_execution_node": "awx-task-0",
        "launch_type": "manual",
        "user": "auditor-demo",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
    }
    reported = {ext: Path(second.artifacts["restore_drill"][f"report_{ext}"]) for ext in ("json", "md", "html")}
    assert "auditor@example.com" not in reported["json"].read_text()
    assert "| AWX job | 4711 |" in reported["md"].read_text()
    assert "<tr><th>user</th><td>auditor-demo</td></tr>" in reported["html"].read_text()
    files = [str(p) for report in reported.values() for p in (report, report.with_name(f"{report.name}.sha256"))]
    assert sorted(p.name for p in archive.iterdir()) == sorted(Path(f).name for f in files)
    for name in files:
        assert (archive / Path(name).name).read_bytes() == Path(name).read_bytes()
    assert archive.stat().st_mode & 0o777 == 0o750
    checked = sha256_check(archive, *(p.name for p in archive.glob("*.sha256")))
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 3, checked
    assert json.loads(handed.read_text()) == {"run_id": again["run_id"], "files": files}


def test_a_damaged_backup_and_a_wrong_answer_fail_their_host_and_are_cleaned_up(hosts: dict, reports: Path) -> None:
    """lab2's newest backup gets a flipped byte; lab1's restored data answers a smoke query wrongly."""
    backup = run_playbook("stackops.runbooks.backup", limit="lab2")
    backup.assert_ok()
    dump = Path(backup.artifacts["backup"]["lab2"]["path"]) / "app.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 3] ^= 0x10
    dump.write_bytes(bytes(data))
    try:
        wrong = [{"name": "customers", "query": "SELECT count(*) FROM app.customers", "expect": 1}]
        run = drill(reports, limit=FIRST_SHAPE, restore_drill_smoke_queries=wrong)
        assert run.status == "failed" and "The restore drill failed for lab1, lab2" in run.stdout
        document = evidence(run, reports)
        results = by_host(document)
        assert document["summary"]["status"] == "fail" and document["summary"]["failed_hosts"] == ["lab1", "lab2"]
        assert results["lab2"]["status"] == "fail" and "app.dump has sha256" in results["lab2"]["reason"]
        assert results["lab1"]["status"] == "fail" and "smoke:customers" in results["lab1"]["reason"]
        smoke = next(c for c in results["lab1"]["checks"] if c["name"] == "smoke:customers")
        assert smoke == {"name": "smoke:customers", "passed": False, "detail": "answered [[20000]], expected 1"}
        assert results["lab1"]["cleanup"]["dropped"], "the failed restore's database was not dropped"
        nothing_left(hosts["drill1"])
    finally:
        shutil.rmtree(dump.parent)


class Forwarder:
    """lab2's SSH reached through a relay on another loopback address; closing it takes lab2 down mid-run."""

    def __init__(self, listen: str, target: tuple[str, int]) -> None:
        self.server = socket.create_server((listen, target[1]))
        self.target = target
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while not self.closed:
            try:
                client, _addr = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)

    def close(self) -> None:
        self.closed = True
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def lab2_through_relay(tmp_path: Path) -> Iterator[tuple[Path, Forwarder]]:
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inventory)
    hosts_file = inventory / "hosts.yml"
    spec = yaml.safe_load(hosts_file.read_text())
    spec["all"]["children"]["stack"]["hosts"]["lab2"] = {
        "ansible_host": "127.0.2.12",
        "ansible_ssh_extra_args": "-o HostKeyAlias=[127.0.2.2]:2222",
        "stackops_pg_host": "127.0.2.2",
        "stackops_redis_host": "127.0.2.2",
    }
    hosts_file.write_text(yaml.safe_dump(spec))
    relay = Forwarder("127.0.2.12", ("127.0.2.2", 2222))
    yield inventory, relay
    relay.close()


def test_a_host_lost_mid_drill_is_reported_and_the_others_finish(
    hosts: dict, reports: Path, lab2_through_relay: tuple[Path, Forwarder]
) -> None:
    inventory, relay = lab2_through_relay
    backups = lab.ROOT / "backups" / "lab2"
    before = set(backups.glob("app-*")) if backups.exists() else set()
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(
            run=drill(reports, inventory=inventory, limit=FIRST_SHAPE, restore_drill_fresh_backup=True)
        )
    )
    worker.start()
    # lab2 answers until its fresh backup is taken, then its SSH goes away.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (set(backups.glob("app-*")) - before):
        time.sleep(0.05)
    relay.close()
    worker.join(timeout=600)
    run: PlaybookRun = result["run"]
    assert "lab2" in run.stats.get("dark", {}), run.stdout[-3000:]
    document = evidence(run, reports)
    results = by_host(document)
    assert results["lab1"]["status"] == "pass", results["lab1"]
    assert results["lab2"]["status"] == "unreachable" and results["lab2"]["reason"].startswith("no result")
    assert document["summary"]["unreachable"] == 1 and document["summary"]["failed_hosts"] == ["lab2"]
    nothing_left(hosts["drill1"])


# A restyled HTML report (restore_drill_html_template): the user's own page, given the run's fields.
RESTYLED = """<!DOCTYPE html><html><body class="mine"><h1>{{ run_id }}: {{ summary.status }}</h1>
{% for r in results %}<p class="{{ r.status | status_class }}">{{ r.host }} {{ r.database }} RTO {{ r.rto_s }}</p>
{% endfor %}{{ charts.rto }}</body></html>
"""


def test_a_drill_beside_production_on_the_same_host_touches_nothing(hosts: dict, reports: Path, tmp_path: Path) -> None:
    """No drill host: lab1's backup restored on lab1's own server, into a scratch database dropped afterwards. The
    HTML report is the user's restyled template."""
    lab1 = hosts["lab1"]
    before = query(lab1, "postgres", "SELECT datname FROM pg_database ORDER BY 1")
    counts = query(lab1, "app", "SELECT count(*) FROM app.orders")
    mine = tmp_path / "mine.html.j2"
    mine.write_text(RESTYLED)
    run = run_playbook(
        PLAYBOOK,
        limit="lab1",
        extravars={
            "restore_drill_report_dir": str(reports),
            "restore_drill_target": "{{ inventory_hostname }}",
            "restore_drill_html_template": str(mine),
        },
    )
    run.assert_ok()
    document = evidence(run, reports)
    (result,) = document["results"]
    assert result["host"] == result["drill_host"] == "lab1" and result["status"] == "pass", result
    page = Path(run.artifacts["restore_drill"]["report_html"]).read_text()
    assert page.startswith('<!DOCTYPE html><html><body class="mine">'), page[:200]
    assert f'<p class="pass">lab1 app RTO {result["rto_s"]:.1f}</p>' in page, page
    assert query(lab1, "postgres", "SELECT datname FROM pg_database ORDER BY 1") == before
    assert query(lab1, "app", "SELECT count(*) FROM app.orders") == counts


def test_check_mode_is_refused_and_changes_nothing_on_any_host(reports: Path) -> None:
    """A drill cannot be rehearsed: check mode could copy no backup to the drill host. It is refused with what to
    run instead, writes no evidence, and every host is as it was."""
    refusal = "A restore drill does nothing in check mode"
    check_run(run_playbook, PLAYBOOK, refused=refusal, extravars={"restore_drill_report_dir": str(reports)})
    assert not reports.exists() or not any(reports.iterdir())


def test_a_restyled_template_that_is_not_there_is_refused_before_any_drill(hosts: dict, reports: Path) -> None:
    before = query(hosts["drill1"], "postgres", "SELECT datname FROM pg_database ORDER BY 1")
    run = drill(reports, limit="lab1,drill1", restore_drill_html_template="no/such.html.j2")
    assert run.status == "failed"
    assert run.failed_hosts() == {"lab1"}, run.stdout[-3000:]
    assert (
        "restore_drill_html_template: " in run.stdout
        and "/no/such.html.j2 is not a file on the controller" in run.stdout
    )
    assert "Nothing was drilled." in run.stdout
    assert not any(run.changed_tasks().values()), run.changed_tasks()
    assert not reports.exists()
    assert query(hosts["drill1"], "postgres", "SELECT datname FROM pg_database ORDER BY 1") == before


@pytest.mark.parametrize(
    ("archive", "refusal"),
    [
        ({"restore_drill_archive_host": "vault9", "restore_drill_archive_dir": "/srv"}, "vault9 is not an inventory"),
        ({"restore_drill_archive_host": "drill1"}, 'restore_drill_archive_dir: "" must be an absolute path on drill1'),
        ({"restore_drill_archive_tasks": "no/such/tasks.yml"}, "/no/such/tasks.yml is not a file on the controller"),
    ],
)
def test_an_archive_that_cannot_be_written_is_refused_before_any_drill(
    reports: Path, archive: dict[str, str], refusal: str
) -> None:
    run = drill(reports, limit="lab1,drill1", **archive)
    assert run.status == "failed" and run.failed_hosts() == {"lab1"}, run.stdout[-3000:]
    said = " ".join(run.stdout.split())  # the YAML callback folds long messages
    assert refusal in said and "Nothing was drilled." in said, run.stdout[-3000:]
    assert not any(run.changed_tasks().values()), run.changed_tasks()
    assert not reports.exists()


def superuser(host: lab.Host) -> dict[str, str]:
    """The module options of a lab host's PostgreSQL superuser login, the client tools in its compose service."""
    return {
        "login_host": host.addr,
        "login_user": host.shape.superuser,
        "login_password": lab_credentials(host.name)["stackops_pg_password"],
        "compose_project_src": str(host.dir),
    }


@pytest.fixture
def operator_backup(hosts: dict) -> Iterator[tuple[str, str, Path]]:
    """A drill login that is not a superuser (LOGIN CREATEDB, as a least-privilege drill account would be) and a
    backup, taken on drill1, of a small database it owns, without amcheck in it: (role, password, backup)."""
    drill1 = hosts["drill1"]
    role, password, db = "drill_operator", secrets.token_hex(16), "proofs_src"
    dest = lab.ROOT / "proof-tests"
    shutil.rmtree(dest, ignore_errors=True)
    query(drill1, "postgres", f"DROP DATABASE IF EXISTS {db}")
    query(drill1, "postgres", f"DROP ROLE IF EXISTS {role}")
    query(drill1, "postgres", f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD %s", (password,))
    try:
        query(drill1, "postgres", f"CREATE DATABASE {db} OWNER {role}")
        query(
            drill1,
            db,
            f"SET ROLE {role}; CREATE TABLE customers (id int PRIMARY KEY); "
            "INSERT INTO customers SELECT generate_series(1, 100)",
        )
        taken = run_module(
            "stackops.runbooks.pg_backup", {"db": db, "dest": str(dest), **superuser(drill1)}, hosts="drill1"
        )
        taken.assert_ok()
        yield role, password, Path(taken.result("drill1")["path"])
    finally:
        query(drill1, "postgres", f"DROP DATABASE IF EXISTS {db}")
        query(drill1, "postgres", f"DROP ROLE IF EXISTS {role}")
        shutil.rmtree(dest, ignore_errors=True)


def test_a_drill_that_cannot_run_amcheck_or_whose_smoke_query_answers_nothing_fails(
    hosts: dict, operator_backup: tuple[str, str, Path]
) -> None:
    """Two real faults in one drill on drill1 (PostgreSQL 17): amcheck asked for by a login that may not create it,
    and a smoke query without expect that returns no rows. Neither is a pass. The same backup drilled by the
    superuser, with expect: [], passes with amcheck run, so it is these two that failed the first drill."""
    drill1 = hosts["drill1"]
    role, password, src = operator_backup
    negative = {"name": "negative_ids", "query": "SELECT id FROM customers WHERE id < 0"}
    args = {"operation": "drill", "src": str(src), "db": "proofs_drill", "amcheck": True, **superuser(drill1)}
    operator = {**args, "login_user": role, "login_password": password, "restore_globals": False}
    run = run_module("stackops.runbooks.pg_restore", {**operator, "smoke_queries": [negative]}, hosts="drill1")
    assert "drill1" in run.failed_hosts(), run.stdout[-3000:]
    result = run.result("drill1")
    proofs = {p["name"]: p for p in result["proofs"]}
    everything = {"checksums": True, "row_counts": True, "objects": True, "sequences": True, "sentinel": None}
    assert {name: p["passed"] for name, p in proofs.items()} == {
        **everything,
        "amcheck": False,
        "smoke:negative_ids": False,
    }
    assert proofs["amcheck"]["detail"].startswith(
        "amcheck was asked for but could not run: CREATE EXTENSION amcheck failed: permission denied to create "
        'extension "amcheck". Log in as a superuser (login_user)'
    ), proofs["amcheck"]
    assert proofs["smoke:negative_ids"]["detail"].startswith("returned no rows; a smoke query without expect"), proofs
    assert "amcheck: amcheck was asked for" in result["msg"] and "smoke:negative_ids: returned no rows" in result["msg"]
    nothing_left(drill1)

    passing = run_module(
        "stackops.runbooks.pg_restore", {**args, "smoke_queries": [{**negative, "expect": []}]}, hosts="drill1"
    )
    passing.assert_ok()
    proofs = {p["name"]: p for p in passing.result("drill1")["proofs"]}
    assert {name: p["passed"] for name, p in proofs.items()} == {
        **everything,
        "amcheck": True,
        "smoke:negative_ids": True,
    }
    assert proofs["amcheck"]["detail"] == "1 B-tree indexes (with heapallindexed) and 1 tables"
    nothing_left(drill1)


@pytest.fixture
def direct_key(tmp_path: Path) -> Iterator[Path]:
    """A key of drill1's (the lab shares one filesystem) authorised on the production hosts' sshd for the direct copy,
    restricted to what scp needs; the lab's authorized_keys is exactly as it was afterwards."""
    key = tmp_path / "direct" / "id_ed25519"
    key.parent.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drill-direct", "-f", str(key)], check=True)
    authorized = lab.ROOT / "ssh" / "authorized_keys"
    before = authorized.read_text()
    line = f"restrict {key.with_suffix('.pub').read_text().strip()}\n"
    authorized.write_text(before + ("" if before.endswith("\n") else "\n") + line)
    try:
        yield key
    finally:
        authorized.write_text(before)


def watch_for_staging(report_dir: Path, seen: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        if report_dir.exists():
            seen += [p.name for p in report_dir.iterdir() if p.name.startswith(".stage-") and p.name not in seen]
        time.sleep(0.05)


def verdict_lines(run: PlaybookRun, document: dict) -> None:
    """A plain run ends with the verdict: the run, then each host's verdict, RTO and RPO, then the report's path."""
    said = " ".join(run.stdout.split())
    sm = document["summary"]
    head = f"Restore drill {document['run_id']}: {sm['status'].upper()} ({sm['passed']}/{sm['databases']} passed)"
    assert head in said, run.stdout[-3000:]
    for r in document["results"]:
        assert f"-> {r['drill_host']}" in said and f"RTO {r['rto_s']:.1f} s RPO {r['rpo_hours']:.1f} h" in said, r
    assert f"Report: {run.artifacts['restore_drill']['report_html']}" in said


def test_a_direct_copy_never_touches_the_controller_and_drills_the_same(
    hosts: dict, reports: Path, direct_key: Path
) -> None:
    """lab2's backup goes straight to drill1 (scp from drill1, the key authorised on lab2, the host key checked),
    verified there against its manifest; no staging directory is ever made on the controller; the restore runs as
    a polled async task; the verdict is the one of a drill through the controller."""
    direct = {
        "restore_drill_transfer": "direct",
        "restore_drill_direct_key": str(direct_key),
        "restore_drill_direct_known_hosts": str(lab.ROOT / "ssh" / "known_hosts"),
        "restore_drill_async": 600,
        "restore_drill_poll": 1,
    }
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_for_staging, args=(reports, seen, stop))
    watcher.start()
    try:
        run = drill(reports, limit="lab2,drill1", restore_drill_fresh_backup=True, **direct)
    finally:
        stop.set()
        watcher.join()
    run.assert_ok()
    assert seen == [], f"the controller staged the backup: {seen}"
    acted = " | ".join(run.ran("lab2"))
    assert "Fetch the backup's files to the controller" not in acted and "over SSH from lab2" in acted, acted
    copied = run.result("lab2", "Copy the backup to the drill host over SSH from lab2")
    assert copied["rc"] == 0 and str(direct_key) in copied["cmd"] and "127.0.2.2" in " ".join(copied["cmd"])
    arrived = run.result("lab2", "Verify the copy against its manifest on the drill host")
    document = evidence(run, reports)
    result = by_host(document)["lab2"]
    assert arrived["newest"]["name"] == result["backup"]["name"] and arrived["manifest"]["sha256"]
    assert run.result("lab2", "Restore into a scratch database on the drill host, prove it, drop it")["ansible_job_id"]
    verdict_lines(run, document)
    nothing_left(hosts["drill1"])

    # The same backup through the controller: the same verdict and checks.
    through = drill(reports, limit="lab2,drill1")
    through.assert_ok()
    again = by_host(evidence(through, reports))["lab2"]
    assert again["backup"]["name"] == result["backup"]["name"]
    assert (again["status"], [(c["name"], c["passed"]) for c in again["checks"]]) == (
        result["status"],
        [(c["name"], c["passed"]) for c in result["checks"]],
    )
    verdict_lines(through, evidence(through, reports))


def test_a_direct_copy_without_an_authorised_key_fails_naming_the_fix(
    hosts: dict, reports: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    run = drill(
        reports,
        limit="lab2,drill1",
        restore_drill_transfer="direct",
        restore_drill_direct_key=str(stranger),
        restore_drill_direct_known_hosts=str(lab.ROOT / "ssh" / "known_hosts"),
    )
    assert run.status == "failed", run.stdout[-3000:]
    result = by_host(evidence(run, reports))["lab2"]
    assert result["status"] == "fail", result
    reason = " ".join(result["reason"].split())
    assert "restore_drill_transfer=direct" in reason and "Permission denied" in reason, reason
    assert f"Authorise the public key of restore_drill_direct_key ({stranger}, on drill1)" in reason, reason
    assert "restore_drill_transfer=controller" in reason
    nothing_left(hosts["drill1"])

    missing = drill(reports, limit="lab2,drill1", restore_drill_transfer="direct")
    assert missing.status == "failed" and "needs restore_drill_direct_key" in " ".join(missing.stdout.split())
    assert "Nothing was drilled." in " ".join(missing.stdout.split())
