"""Secrets stay secret on drill1: every runbook that handles a password (a backup, its restore ending with the health
check, a Redis snapshot, the online database maintenance, an incident bundle, the daily and monthly routines, a
deploy and its rollback) runs at -vvv --diff through ansible-runner with the passwords injected as extra vars (as the
AWX credential type does), while the process table of the whole machine is sampled throughout every play. No
password shows in the output, the events, the runner artifacts or any command line; what they write is private, and
so is every report, bundle and backup the runbooks have left in their usual places; nothing with a secret is left in
/tmp. The scanner itself is shown to catch a planted secret in every one of these places first.

Secret values are compared in memory only: every failure names the secret, never shows it. PYTEST_DONT_REWRITE:
pytest's assertion rewriting would print the operands of a failed comparison (a whole -vvv output, say); here a
failure shows its own message only."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2.errors
import pytest

import lab
from harness.paths import REPO, lab_credentials
from harness.pg import query
from harness.playbook import PlaybookRun
from harness.secrets import (
    KeptRun,
    Process,
    ProcessSampler,
    Secrets,
    files_under,
    lab_secrets,
    loose_modes,
    open_to_others,
    readable_contents,
    run_kept,
    run_texts,
)

pytestmark = pytest.mark.lab_hosts("drill1")

HOST = "drill1"
PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"
# Where our code and Ansible leave temporary files: module payloads and remote/local tmp dirs, our mktemp prefix.
TMP_DIRS = [Path("/tmp"), Path("/var/tmp"), Path.home() / ".ansible" / "tmp"]
TMP_PATTERNS = ("ansible_*_payload_*", "ansible-tmp-*", "ansible-local-*", "stackops.*")
# The programs that take the PostgreSQL password from their environment (PGPASSWORD), by design and as documented
# in docs/security.md: the client tools, and the docker CLI that execs them in the postgres service (`exec -e`).
PG_ENV_PROGRAMS = {"pg_dump", "pg_dumpall", "pg_restore", "psql", "docker", "docker-compose"}
PG_PASSWORD = {f"{HOST} stackops_pg_password", f"{HOST} .env POSTGRES_PASSWORD"}
FAKE = 'fake-S3cret "quoted"/and:more'
# The roles' default report folders on the controller (health check, incident bundles, routines).
REPORT_PLACES = ("stackops-health", "stackops-incidents", "stackops-routine")
# The playbooks of the sampled run (secret_runbooks.yml), by their `<play>_hosts` variable and their set_stats key.
PLAYS = (
    "backup",
    "restore",
    "redis_maintenance",
    "db_maintenance",
    "collect_diagnostics",
    "routine",
    "deploy",
    "rollback",
)
STATS = (
    "backup",
    "restore",
    "redis_maintenance",
    "db_maintenance",
    "collect_diagnostics",
    "routine_daily",
    "routine_monthly",
    "deploy",
    "rollback",
)
# The runbooks' output folders, all in the run's scratch folder: variable -> folder.
SCRATCH_PLACES = {
    "collect_diagnostics_dir": "incidents",
    "collect_diagnostics_fetch_dir": "incidents-fetched",
    "routine_report_dir": "reports",
    "routine_monthly_archive_dir": "archives",
    "routine_monthly_log_dir": "logs",
    "deploy_release_dir": "releases",
    "rollback_release_dir": "releases",
}


@pytest.fixture(scope="module")
def secrets(hosts: dict) -> Secrets:
    """Every secret of the lab, and drill1's SCRAM verifiers (a backup's globals.sql holds them, output never)."""
    verifiers = query(
        hosts[HOST], "postgres", "SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL"
    )
    return lab_secrets().plus({f"{HOST} role {name} verifier": value for name, value in verifiers})


def assert_ok(run: PlaybookRun, secrets: Secrets) -> None:
    """The harness's assert_ok, with the output's end masked."""
    failed = run.failed_hosts()
    assert run.status == "successful" and not failed, (
        f"{run.playbook} ended {run.status} (rc {run.rc}), failed hosts {sorted(failed)}:\n"
        + secrets.mask(run.stdout[-6000:])
    )


def play_windows(run: PlaybookRun) -> list[tuple[str, float, float]]:
    """(name, start, end) of each play of a run, in time.time() seconds: from its start event to the next play's, the
    last one to the run's last event."""
    stamps = [
        (event, datetime.datetime.fromisoformat(event["created"]).replace(tzinfo=datetime.timezone.utc).timestamp())
        for event in run.events
        if event.get("created")
    ]
    starts = [
        (event["event_data"].get("play", "?"), when)
        for event, when in stamps
        if event["event"] == "playbook_on_play_start"
    ]
    ends = [when for _name, when in starts[1:]] + [max(when for _event, when in stamps)]
    return [(name, start, end) for (name, start), end in zip(starts, ends)]


def escaped_forms(value: str) -> dict[str, str]:
    """Forms of a value that a client may log and that no scanner's as-is, JSON or URL form equals (the lab's
    passwords have no character that JSON or a URL escapes): every character percent-encoded, in upper and lower case
    hexadecimal, and every character a JSON \\u escape."""
    raw = value.encode("utf-8")
    return {
        "percent-encoded": "".join(f"%{byte:02X}" for byte in raw),
        "percent-encoded in lower case": "".join(f"%{byte:02x}" for byte in raw),
        "JSON \\u escapes": "".join(f"\\u{ord(char):04x}" for char in value),
    }


def tmp_entries() -> set[Path]:
    return {path for folder in TMP_DIRS if folder.is_dir() for pattern in TMP_PATTERNS for path in folder.glob(pattern)}


def container_tmp(host: lab.Host) -> set[str]:
    return set(lab.compose(host, "exec", "-T", "postgres", "ls", "-A", "/tmp").stdout.split())


@dataclass
class Observed:
    kept: KeptRun
    sampler: ProcessSampler
    processes: list[Process]
    samples: int
    scratch: Path
    started: float
    new_tmp: set[Path]
    new_container_tmp: set[str]
    logged: dict[str, str]


@pytest.fixture(scope="module")
def observed(hosts: dict, secrets: Secrets, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """One -vvv --diff run of the runbooks on drill1, with the passwords as extra vars (AWX's credential
    injection), the process table sampled throughout; backups and snapshots go to a scratch folder."""
    host = hosts[HOST]
    scratch = lab.ROOT / "scratch" / f"secrets-{uuid.uuid4().hex[:8]}"
    credentials = lab_credentials(HOST)
    app = lab.compose(host, "ps", "-q", "app").stdout.strip()
    extravars = {
        **{
            name: credentials[name]
            for name in ("stackops_pg_password", "stackops_pg_app_password", "stackops_redis_password")
        },
        **{f"{play}_hosts": HOST for play in PLAYS},
        "stackops_backup_dest": str(scratch / "backups"),
        "stackops_redis_snapshot_dest": str(scratch / "redis"),
        "restore_confirm": True,
        "restore_keep_previous": 0,
        "redis_maintenance_snapshot": True,
        # The app opens a connection per request: the swap needs no stop and start of it (time is scarce).
        "restore_stop_services": [],
        # Everything the other runbooks write goes to the scratch folder too.
        **{name: str(scratch / folder) for name, folder in SCRATCH_PLACES.items()},
        # The image that runs, named in .env: a release of its own, which the rollback (with .env) undoes.
        "deploy_image": subprocess.run(
            ["docker", "inspect", "--format", "{{.Config.Image}}", app], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "rollback_config": True,
    }
    tmp_before, container_before, started = tmp_entries(), container_tmp(host), time.time()
    # The rollback puts .env back (the deploy adds the image's line); a run cut short must not leave it changed, or
    # the next deploy of the same image would have nothing to do.
    env_file = host.dir / ".env"
    env_before = env_file.read_bytes()
    # PostgreSQL logs a refused value (and the statement): the PostgreSQL password in escaped forms, for the bundle's
    # and the monthly log export's redaction.
    logged = escaped_forms(credentials["stackops_pg_password"])
    for form in logged.values():
        with pytest.raises(psycopg2.errors.InvalidTextRepresentation):
            query(host, "postgres", "SELECT %s::int", (form,))
    try:
        with ProcessSampler(secrets, max_samples=100_000, max_seconds=1200) as sampler:
            kept = run_kept(
                str(PLAYBOOKS / "secret_runbooks.yml"),
                tmp_path_factory.mktemp("artifacts"),
                secrets,
                extravars=extravars,
                limit=HOST,
                diff=True,
            )
        yield Observed(
            kept=kept,
            sampler=sampler,
            processes=sampler.processes(),
            samples=sampler.samples,
            scratch=scratch,
            started=started,
            new_tmp=tmp_entries() - tmp_before,
            new_container_tmp=container_tmp(host) - container_before,
            logged=logged,
        )
    finally:
        if env_file.read_bytes() != env_before:
            env_file.write_bytes(env_before)
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


# --- the scanner can fail ---------------------------------------------------------------------------------------


def test_the_scanner_catches_a_planted_secret_everywhere_it_looks(tmp_path: Path) -> None:
    planted = Secrets({"planted": FAKE})
    assert "fake-S3cret" not in repr(planted), "repr shows the value"
    # In output as it is, as JSON escapes it (events, artifacts) and as a URL carries it.
    for text in (f"x {FAKE} y", json.dumps({"a": FAKE}), f"postgresql://u:{urllib.parse.quote(FAKE, safe='')}@h/db"):
        assert planted.find(text) == ["planted"], planted.mask(text)
    assert planted.mask(f"x {FAKE} y") == "x <planted> y", "mask left the value"
    assert planted.find("nothing here") == [], "found a secret in clean text"
    # In files, however deep, and inside a zip (Ansible's module payloads).
    (tmp_path / "artifacts" / "job_events").mkdir(parents=True)
    (tmp_path / "artifacts" / "job_events" / "1.json").write_text(f'{{"stdout": "{FAKE}"}}')
    (tmp_path / "artifacts" / "clean").write_text("nothing")
    with zipfile.ZipFile(tmp_path / "artifacts" / "payload.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("args.json", f'{{"password": "{FAKE}"}}')
    found = planted.scan_tree(tmp_path / "artifacts")
    assert found == {"job_events/1.json": ["planted"], "payload.zip": ["planted"]}, found
    # Modes: a 0644 file in a 0755 folder is open to others; the same file in a 0700 folder is not. (In /tmp itself:
    # pytest's tmp_path is under a 0700 folder, where nothing is open to others.)
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        shared, report = Path(folder), Path(folder) / "report.json"
        shared.chmod(0o755)
        report.write_text("{}")
        report.chmod(0o644)
        loose, readable = loose_modes(shared), open_to_others(shared)
        assert loose == {folder: "0o755", str(report): "0o644"}, loose
        assert readable == [str(report)], readable
        shared.chmod(0o700)
        assert open_to_others(shared) == [], "a file in a 0700 folder counted as readable"
    # The process table: a secret in a command line and in an environment, both seen and kept masked.
    with ProcessSampler(planted, max_seconds=20) as sampler:
        proc = subprocess.Popen(
            ["sh", "-c", "sleep 0.6", FAKE], env={**os.environ, "DEMO_PASSWORD": FAKE}, stdout=subprocess.DEVNULL
        )
        proc.wait(timeout=20)
    mine = [p for p in sampler.processes() if p.pid == proc.pid and p.program == "sh"]
    assert mine and mine[0].in_command == ["planted"] and mine[0].in_environ == ["planted"], mine
    assert "fake-S3cret" not in mine[0].command and "<planted>" in mine[0].command, mine[0].command
    assert sampler.samples >= 5, sampler.samples


# --- the runbooks on drill1 -------------------------------------------------------------------------------------


def test_no_secret_in_the_output_or_events_of_a_vvv_run(observed: Observed, secrets: Secrets) -> None:
    run = observed.kept.run
    assert_ok(run, secrets)
    # Really -vvv, and the passwords really were module arguments, shown masked where the controller echoes them:
    # ansible-core 2.21 no longer returns a module's `invocation`, so its results show no arguments at all.
    assert "ESTABLISH SSH CONNECTION" in run.stdout, "the run was not at -vvv"
    core = re.search(r"^ansible-playbook \[core (\d+)\.(\d+)", run.stdout, re.MULTILINE)
    assert core, "no version banner in the -vvv output"
    if (int(core[1]), int(core[2])) < (2, 21):
        assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.stdout, "no masked module argument in the -vvv output"
    else:
        assert "invocation" not in run.stdout
    done = {
        "backup": bool(run.artifacts["backup"][HOST]["path"]),
        "restore": bool(run.artifacts["restore"][HOST]["previous_db"]),
        "snapshot": bool(run.artifacts["redis_maintenance"][HOST]["snapshot"]["sha256"]),
        "health": run.artifacts["restore"][HOST]["health"] in ("ok", "warning"),
        "deploy": run.artifacts["deploy"][HOST]["status"] == "deployed",
        **{key: HOST in run.artifacts.get(key, {}) for key in STATS},
    }
    assert all(done.values()), f"not every runbook did its work: {done}"
    leaks = {where: names for where, text in run_texts(run) if (names := secrets.find(text))}
    assert not leaks, f"secrets in the run's output or events: {leaks}"


def test_runner_artifacts_hold_no_secret_and_the_extra_vars_file_is_private(
    observed: Observed, secrets: Secrets
) -> None:
    kept = observed.kept
    files = sorted(str(p.relative_to(kept.artifact_dir)) for p in kept.artifact_dir.rglob("*") if p.is_file())
    assert any(f.endswith("/command") for f in files) and any("/job_events/" in f for f in files), files
    found = secrets.scan_tree(kept.artifact_dir)
    assert not found, f"secrets in the runner artifacts: {found}"
    readable = open_to_others(kept.artifact_dir)
    assert not readable, f"runner artifacts other users can read: {readable}"
    # The extra vars are the one file with the passwords: 0600, in 0700 folders, gone with the private data dir.
    holders = {f.path: (oct(f.mode), f.secrets) for f in kept.private if f.secrets}
    assert list(holders) == ["env/extravars"], holders
    assert holders["env/extravars"][0] == "0o600", holders
    injected = {f"{HOST} stackops_pg_password", f"{HOST} stackops_redis_password"}
    assert injected <= set(holders["env/extravars"][1]), f"the extra vars lack the passwords: {holders}"
    assert kept.private_dirs["."] == 0o700 and kept.private_dirs["env"] == 0o700, kept.private_dirs


def test_an_environment_credential_lands_in_the_runner_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the recommended setup injects extra vars: ansible-runner writes its whole environment into
    artifacts/<id>/command, and every process of the run carries it."""
    demo = Secrets({"demo": f"env-{uuid.uuid4().hex}"})
    monkeypatch.setenv("STACKOPS_DEMO_PASSWORD", demo.value("demo"))
    with ProcessSampler(demo, max_seconds=300) as sampler:
        kept = run_kept(str(PLAYBOOKS / "env_credential.yml"), tmp_path / "artifacts", demo, extravars={})
    assert_ok(kept.run, demo)
    found = demo.scan_tree(kept.artifact_dir)
    assert [path.rsplit("/", 1)[-1] for path in found] == ["command"], found
    carriers = {p.program for p in sampler.processes() if p.in_environ}
    assert any("ansible-playbook" in p.command for p in sampler.processes() if p.in_environ), carriers


def test_no_secret_in_any_command_line_and_the_pg_password_only_in_documented_environments(
    observed: Observed, secrets: Secrets
) -> None:
    # Only drill1's secrets: the other hosts are other tests', which may run beside this one on the same machine
    # (their own tools, the lab's commands) and are not what this run is judged on.
    mine = secrets.of(f"{HOST} ", "ssh ")
    names = set(mine.names())
    seen = observed.processes
    assert observed.samples >= 50, observed.samples
    # The sampling watched every playbook of the run from its start to the next one's (or the run's end), with no
    # pause a process living a second could slip through.
    plays = play_windows(observed.kept.run)
    assert len(plays) >= len(STATS), f"the run had {len(plays)} plays: {[name for name, _start, _end in plays]}"
    gaps = {name: round(observed.sampler.longest_gap(start, end), 2) for name, start, end in plays}
    assert max(gaps.values()) < 1.0, f"plays with a stretch of a second or more unsampled: {gaps}"
    # The sampling saw the work: the dump, the roles, the read-back, the restore, and the deploy's and the rollback's
    # surge (a compose project of its own).
    for what in (
        "pg_dump -Fc",
        "pg_dumpall --globals-only",
        "pg_restore -f /dev/null",
        "pg_restore --exit-on-error",
        f"-p stackops-{HOST}-surge",
    ):
        assert any(what in p.command for p in seen), f"no `{what}` process was sampled in {observed.samples} samples"
    in_commands = [(p.command[:300], p.in_command) for p in seen if names & set(p.in_command)]
    assert not in_commands, f"secrets in command lines: {in_commands}"
    # Environments outside the containers (where compose gives every process the service's variables).
    holders = [p for p in seen if p.container == "" and names & set(p.in_environ)]
    assert any(p.program in PG_ENV_PROGRAMS for p in holders), "PGPASSWORD was never seen: is environ read at all?"
    unexpected = [
        (p.command[:200], p.uid, p.in_environ)
        for p in holders
        if p.program not in PG_ENV_PROGRAMS or not (names & set(p.in_environ)) <= PG_PASSWORD or p.uid != 0
    ]
    assert not unexpected, f"secrets in the environment of processes other than the PostgreSQL clients: {unexpected}"


def test_what_the_runbooks_write_is_private(observed: Observed, secrets: Secrets) -> None:
    run = observed.kept.run
    backup = Path(run.artifacts["backup"][HOST]["path"])
    snapshot = Path(run.artifacts["redis_maintenance"][HOST]["snapshot"]["path"])
    assert backup.parent == observed.scratch / "backups", backup
    assert snapshot.parent == observed.scratch / "redis", snapshot
    # Backups and snapshots: folders 0700, files 0600, each from the folder the module made.
    for folder in (backup.parent, snapshot.parent):
        loose = loose_modes(folder)
        assert not loose, f"not 0700/0600: {loose}"
    suffixes = sorted(p.suffix for p in snapshot.parent.iterdir())
    assert suffixes == [".rdb", ".sha256"], f"a staging folder was left beside the snapshot: {suffixes}"
    # A backup holds the roles' SCRAM verifiers (globals.sql), never a password.
    plain = Secrets({name: secrets.value(name) for name in secrets.names() if "verifier" not in name})
    found = plain.scan_tree(backup.parent)
    assert not found, f"passwords in the backup: {found}"
    # The bundle, the routines' reports, archive and log export: 0700/0600, and the deploy's releases (files keep
    # their modes, in 0700 folders) private; no secret in the reports, the bundle or the redacted log export.
    places = {folder: observed.scratch / folder for folder in ("incidents-fetched", "reports", "archives", "logs")}
    assert all(any(place.rglob("*")) for place in places.values()), f"a runbook wrote nothing: {places}"
    loose = {name: found for name, place in places.items() if (found := loose_modes(place))}
    assert not loose, f"not 0700/0600: {loose}"
    readable = open_to_others(observed.scratch)
    assert not readable, f"files other users can read: {readable}"
    leaks = {
        name: found for name in ("incidents-fetched", "reports", "logs") if (found := secrets.scan_tree(places[name]))
    }
    assert not leaks, f"secrets in the bundle, reports or log export: {leaks}"


def test_logs_are_redacted_in_escaped_forms_in_the_bundle_and_the_log_export(observed: Observed, hosts: dict) -> None:
    logs = lab.compose(hosts[HOST], "logs", "--no-log-prefix", "postgres").stdout
    missing = [name for name, form in observed.logged.items() if form not in logs]
    assert not missing, f"postgres did not log the password {missing}"
    for folder in ("incidents-fetched", "logs"):
        paths = files_under(observed.scratch / folder)
        texts = [b"\n".join(readable_contents(path)).decode("utf-8", errors="replace") for path in paths]
        left = sorted({name for name, form in observed.logged.items() for text in texts if form in text})
        assert not left, f"the PostgreSQL password {left} in {folder}"
        assert any("[REDACTED]" in text for text in texts), f"nothing redacted in {folder}: {paths}"


def test_no_report_bundle_or_backup_the_runbooks_left_is_open_to_others(secrets: Secrets) -> None:
    """An auditor's sweep of where the runbooks write, in the lab and by the roles' defaults: drill reports, routine
    reports and archives, health reports, incident bundles, backups and their copies, deploy releases, whatever runs
    left them."""
    places = [lab.ROOT / name for name in ("backups", "backup-copies", "reports", "archives", "logs")]
    places += [*(lab.ROOT / "hosts").glob("*/releases"), *Path("/var/tmp").glob("stackops-*")]
    places.append(Path("/var/backups/stackops"))
    swept = [place for place in places if place.exists()]
    assert lab.ROOT / "reports" in swept, f"nothing to sweep: {swept}"
    readable = [path for place in swept for path in open_to_others(place)]
    assert not readable, f"files other users can read: {readable}"
    # Reports and bundles carry findings, never a secret (backups hold verifiers, project archives the .env).
    reports = [place for place in swept if place.name == "reports" or place.name.startswith(REPORT_PLACES)]
    found = {str(place): hits for place in reports if (hits := secrets.scan_tree(place))}
    assert not found, f"secrets in reports or bundles: {found}"


def test_nothing_with_a_secret_is_left_in_tmp(observed: Observed, secrets: Secrets) -> None:
    mine = secrets.of(f"{HOST} ", "ssh ")
    # Module payloads left by any run (a killed module leaves its zip behind): code, never arguments.
    payloads = [p for p in Path("/tmp").glob("ansible_*_payload_*") if p.is_dir()]
    left = {str(p): found for p in [*payloads, *observed.new_tmp] if p.exists() and (found := mine.scan_tree(p))}
    assert not left, f"temporary files with secrets: {left}"
    # Our own temporary folder in the postgres service (the dump's staging) is gone.
    staging = [name for name in observed.new_container_tmp if name.startswith("stackops.")]
    assert not staging, f"left in /tmp of {HOST}'s postgres service: {staging}"
