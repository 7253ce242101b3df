"""The guarded configuration change on lab2: a variable the app reads, one no service reads and a secret-named one,
with the app's memory limit, through the four steps (with --diff and -vvv: the diff masked, no secret in any output),
read back from Docker and put back byte for byte; a change that makes the app unhealthy, reverted, with .env and the
override file as they were (sha256, mode, owner) and the stack healthy; bad input refused with nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

import lab
from harness.labctl import lab_up
from harness.playbook import PlaybookRun, assert_four_step, run_playbook
from harness.secrets import lab_secrets
from harness.snapshot import diff, snapshot

pytestmark = pytest.mark.lab_hosts("lab2")

PLAYBOOK = "stackops.runbooks.config_change"
HOST = "lab2"
OVERRIDE = "compose.override.yaml"
TOKEN = f"cc-token-{uuid.uuid4().hex}"


def files(host: lab.Host) -> dict[str, tuple[str, int, int, int] | None]:
    """.env and the override file: sha256, mode, owner and group (None when absent)."""
    found: dict[str, tuple[str, int, int, int] | None] = {}
    for name in (".env", OVERRIDE):
        path = host.dir / name
        if not path.exists():
            found[name] = None
            continue
        info = path.stat()
        found[name] = (hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mode & 0o7777, info.st_uid, info.st_gid)
    return found


def app_container(host: lab.Host) -> dict:
    name = f"{host.project}-app-1"
    out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def ready(host: lab.Host) -> int:
    try:
        with urllib.request.urlopen(f"http://{host.addr}/health/ready", timeout=5) as answer:
            return int(answer.status)
    except OSError as exc:
        return int(getattr(exc, "code", 0) or 0)


def release_of(run: PlaybookRun) -> Path:
    return Path(run.artifacts["config_change"][HOST]["release"])


def new_releases(host: lab.Host, before: set[str]) -> list[Path]:
    releases = host.dir / "releases"
    return sorted(p for p in releases.iterdir() if p.name not in before) if releases.is_dir() else []


def releases_now(host: lab.Host) -> set[str]:
    releases = host.dir / "releases"
    return {p.name for p in releases.iterdir()} if releases.is_dir() else set()


def tidy(host: lab.Host, releases_before: set[str], had_releases: bool) -> None:
    """The releases the test made go, so that other tests of lab2 find the releases they made."""
    if not had_releases:
        shutil.rmtree(host.dir / "releases", ignore_errors=True)
    for path in new_releases(host, releases_before):
        shutil.rmtree(path)


@pytest.mark.matrix
def test_a_variable_and_a_memory_limit_four_steps_then_put_back(hosts: dict) -> None:
    host = hosts[HOST]
    before, releases_before, had_releases = files(host), releases_now(host), (host.dir / "releases").is_dir()
    assert before[OVERRIDE] is None, "lab2 has a compose override left over"
    secrets = lab_secrets().plus({"config change token": TOKEN})
    change = {
        "config_change_env": {"APP_PORT": "8000", "LOG_LEVEL": "debug", "STACKOPS_TEST_TOKEN": TOKEN},
        "config_change_memory": {"app": "256m"},
    }
    try:
        runs = assert_four_step(PLAYBOOK, limit=HOST, extravars=change, diff=True)
        check, real = runs[0], runs[1]
        for run in runs:
            assert not secrets.find(run.stdout), secrets.find(run.stdout)
            assert not secrets.find(json.dumps(run.events, default=str)), "a secret in the runner's events"
        # The plan names the keys and their readers; the masked diff shows the token's line, not its value.
        shown = " ".join(check.stdout.split())
        assert "APP_PORT is read by app" in shown
        assert "Read by no service" in shown and "LOG_LEVEL, STACKOPS_TEST_TOKEN." in shown
        assert "Memory limit of app: none -> 256m" in shown
        assert "+STACKOPS_TEST_TOKEN=********" in check.stdout and "+LOG_LEVEL=debug" in check.stdout
        assert any("Recreate the services" in task for task in real.changed_tasks()[HOST])
        summary = real.artifacts["config_change"][HOST]
        assert summary["status"] == "applied"
        assert summary["keys"] == {
            "added": ["APP_PORT", "LOG_LEVEL", "STACKOPS_TEST_TOKEN"],
            "changed": [],
            "removed": [],
        }
        assert summary["read_by"]["APP_PORT"] == ["app"] and summary["services"] == ["app"]
        assert runs[3].artifacts["config_change"][HOST]["status"] == "unchanged"
        # Docker runs the app with the limit, from the override file the role owns.
        assert app_container(host)["HostConfig"]["Memory"] == 256 << 20
        assert (host.dir / OVERRIDE).read_text().startswith("# Managed by stackops.runbooks.config_change")
        env = (host.dir / ".env").read_text()
        assert env.endswith(f"APP_PORT=8000\nLOG_LEVEL=debug\nSTACKOPS_TEST_TOKEN={TOKEN}\n")
        assert files(host)[".env"][1:] == before[".env"][1:]  # mode and owner kept
        # The release keeps the previous .env as it was (content, mode) and says what was changed.
        release = release_of(real)
        assert (release.stat().st_mode & 0o777) == 0o700
        kept = release / ".env"
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == before[".env"][0]
        assert kept.stat().st_mode & 0o7777 == before[".env"][1]
        record = json.loads((release / "release.json").read_text())
        assert record["status"] == "applied" and record["previous"]["override_file"]["exists"] is False
        assert TOKEN not in (release / "release.json").read_text()
        assert ready(host) == 200
    finally:
        # Put back at -vvv: the run reads the .env that holds the token, writes it without, and shows the diff.
        back = run_playbook(
            PLAYBOOK,
            limit=HOST,
            extravars={
                "config_change_env": dict.fromkeys(change["config_change_env"]),
                "config_change_memory": {"app": None},
            },
            diff=True,
            verbosity=3,
        )
        tidy(host, releases_before, had_releases)
    back.assert_ok()
    assert not secrets.find(back.stdout), secrets.find(back.stdout)
    assert not secrets.find(json.dumps(back.events, default=str)), "a secret in the runner's events at -vvv"
    assert "-STACKOPS_TEST_TOKEN=********" in back.stdout
    assert files(host) == before
    assert app_container(host)["HostConfig"]["Memory"] == 0
    assert ready(host) == 200


def test_a_change_that_makes_the_app_unhealthy_is_reverted(hosts: dict) -> None:
    """APP_PORT where the app does not listen: the app's healthcheck (which asks ${APP_PORT:-8000}) fails."""
    host = hosts[HOST]
    before, releases_before, had_releases = files(host), releases_now(host), (host.dir / "releases").is_dir()
    app_before = app_container(host)["Id"]
    env_bytes = (host.dir / ".env").read_bytes()
    try:
        run = run_playbook(
            PLAYBOOK,
            limit=HOST,
            extravars={"config_change_env": {"APP_PORT": "8009"}, "config_change_wait_timeout": 8},
        )
        assert run.status == "failed", run.stdout[-3000:]
        message = run.result(HOST, "Fail with what happened")["msg"]
        assert "failed at Recreate the services whose configuration changed, and wait until they are ready" in message
        assert "Not ready after 8 s" in message and "app-1 is starting" in message
        assert "It was reverted: .env and compose.override.yaml are back as they were" in message
        assert "app recreated on them and ready" in message and "/health/ready answers" in message
        assert run.artifacts["config_change"][HOST]["status"] == "reverted"
        # Byte for byte, mode and owner; the override, which was not there, is not there.
        assert files(host) == before
        container = app_container(host)
        assert container["Id"] != app_before and container["State"]["Health"]["Status"] == "healthy"
        assert "APP_PORT" not in json.dumps(container["Config"]["Healthcheck"]).replace("${APP_PORT", "")
        (release,) = new_releases(host, releases_before)
        record = json.loads((release / "release.json").read_text())
        assert record["status"] == "reverted" and "Not ready after 8 s" in record["failure"]
        assert ready(host) == 200
    finally:
        tidy(host, releases_before, had_releases)
        if files(host) != before or ready(host) != 200:
            # lab up keeps an existing .env: the bytes read before go back first, then it recreates the app.
            (host.dir / ".env").write_bytes(env_bytes)
            (host.dir / OVERRIDE).unlink(missing_ok=True)
            lab_up()


@pytest.mark.parametrize(
    ("extravars", "task", "refused"),
    [
        (
            {"config_change_env": {"LOG-LEVEL": "x", "NOTE": "a\nb"}, "config_change_memory": {"app": "12XB"}},
            "Refuse a bad request before reading anything",
            [
                "'LOG-LEVEL' is not a valid variable name: use letters, digits and _",
                "The value of NOTE ('a\\nb') holds a line break or NUL",
                "The memory limit '12XB' of service app is not a size: write a number with b, k, m or g",
            ],
        ),
        (
            {"config_change_memory": {"worker": "1g"}},
            "Refuse what cannot be planned",
            [
                "Service(s) worker not defined in the project (it has: app, nginx, postgres, redis)",
                "fix config_change_memory",
            ],
        ),
    ],
    ids=["names-values-sizes", "unknown-service"],
)
def test_bad_input_is_refused_and_nothing_changes(hosts: dict, extravars: dict, task: str, refused: list[str]) -> None:
    state = snapshot(HOST)
    run = run_playbook(PLAYBOOK, limit=HOST, extravars=extravars)
    assert run.status == "failed" and run.failed_hosts() == {HOST}
    message = run.result(HOST, task)["msg"]
    assert message.startswith("Nothing was changed on lab2. ")
    for text in refused:
        assert text in message
    assert "Traceback" not in run.stdout
    assert not diff(state, snapshot(HOST))
    assert not any(run.changed().values())
    assert os.path.exists(hosts[HOST].dir / ".env")
