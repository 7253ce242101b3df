"""Alerts on the lab, heard by a webhook receiver of the test's own on 127.0.0.1 (tests/harness/webhook.py). Warnings
and critical findings are provoked without changing the stack: an endpoint on a closed loopback port, a disk
threshold of 1%, a backup of a database that does not exist, a drill of a host whose backup folder is empty. lab2 and
drill1 are only read; backups, reports and alert state go to the test's own folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.playbook import PlaybookRun, check_run, run_module, run_playbook
from harness.webhook import Receiver, webhook

# lab2's lane alone: the drill of an empty backup folder fails at its first step, on lab2, and on drill1 only removes
# a work folder that was never made; holding drill1 too made this module wait out the other lane's drill1 modules.
pytestmark = pytest.mark.lab_hosts("lab2")
# Read from the declaration: the scheduler reads its literal without importing the module.
HOST_NAME = pytestmark.args[0]

PLAYBOOKS = Path(__file__).parent / "playbooks"
# The health check's host step alone (the role imported, --tags host,report): the repeated runs stay cheap.
HEALTH_HOST = str(PLAYBOOKS / "health_host.yml")
TOKEN = "s3cr3t-token"
# A service that is down, as the health check sees it: nothing listens on port 9 of the loopback.
CLOSED = [{"name": "liveness", "url": "http://127.0.0.1:9/health"}]


def alerting(receiver: Receiver, state: Path, **extra: object) -> dict[str, object]:
    return {"notify_webhook": receiver.url, "notify_state_dir": str(state), **extra}


def failures(state: Path, check: str) -> int:
    path = state / f"{HOST_NAME}.json"
    assert path.stat().st_mode & 0o777 == 0o600
    return int(json.loads(path.read_text())["checks"][check]["failures"])


def assert_no_token(*runs: PlaybookRun) -> None:
    for run in runs:
        assert TOKEN not in run.stdout and TOKEN not in json.dumps(run.events), f"{run.playbook} showed the token"


@pytest.mark.matrix
def test_the_notify_module_announces_sends_nothing_in_check_mode_and_refuses_bad_input(tmp_path: Path) -> None:
    args = {"host": HOST_NAME, "check": "maintenance_window", "status": "ok", "event": "started"}
    with webhook() as receiver:
        args["url"] = receiver.url
        check_run(run_module, "stackops.runbooks.notify", {**args, "fields": {"reason": "test"}}, hosts=HOST_NAME)
        assert receiver.take() == [], "check mode sent a message"
        sent = run_module("stackops.runbooks.notify", {**args, "fields": {"reason": "test"}}, hosts=HOST_NAME)
        sent.assert_ok()
        (body,) = receiver.take()
        assert (body["event"], body["host"], body["reason"], body["status"]) == ("started", HOST_NAME, "test", "ok")
        assert body["schema"] == "stackops.runbooks/alert/1" and sent.result(HOST_NAME)["sent"] is True
        refused = run_module(
            "stackops.runbooks.notify",
            {**args, "event": None, "status": "critical", "after": 3, "state_dir": ""},
            hosts=HOST_NAME,
        )
        assert refused.failed_hosts() == {HOST_NAME}
        assert "after 3 counts failed runs in a row, which needs a state_dir" in refused.result(HOST_NAME)["msg"]
        # The maintenance window announces through the same module, in the same generic form.
        window = run_playbook(
            str(PLAYBOOKS / "window_announce.yml"),
            limit=HOST_NAME,
            extravars={"maintenance_window_webhook": receiver.url, "maintenance_window_reason": "test window"},
        )
        window.assert_ok()
        (announced,) = receiver.take()
        assert (announced["event"], announced["host"], announced["reason"]) == ("started", HOST_NAME, "test window")
        receiver.status = 500
        down = run_module("stackops.runbooks.notify", args, hosts=HOST_NAME)
    assert down.failed_hosts() == {HOST_NAME}
    assert down.result(HOST_NAME)["msg"] == (
        f"The webhook at http://127.0.0.1:{receiver.url.split(':')[2].split('/')[0]} was not told: "
        "it answered HTTP 500 Internal Server Error."
    )
    assert len(receiver.requests) == 2, "a webhook that answers 500 is asked twice (attempts), no more"
    assert_no_token(sent, refused, window, down)


def test_the_health_check_alerts_once_after_three_failed_runs_and_recovers_once(tmp_path: Path) -> None:
    """The role's host step alone (tags host,report: one round trip), with a critical disk threshold of 1%: three
    runs, one alert on the third, then one recovery. A --check run before them sends nothing and keeps no state."""
    state = tmp_path / "alerts"
    runs: list[PlaybookRun] = []

    def health(receiver: Receiver, **extra: object) -> dict[str, object]:
        return alerting(receiver, state, notify_after=3, health_check_report_dir="", **extra)

    with webhook() as receiver:
        failing = health(receiver, health_check_disk_critical_pct=1, health_check_fail_on="never")
        runs.append(check_run(run_playbook, HEALTH_HOST, limit=HOST_NAME, tags="host,report", extravars=failing))
        assert receiver.take() == [] and not state.exists(), "check mode sent a message or kept state"
        for number in (1, 2, 3):
            runs.append(run_playbook(HEALTH_HOST, limit=HOST_NAME, tags="host,report", extravars=failing))
            runs[-1].assert_ok()
            assert failures(state, "health_check") == number
            if number < 3:
                assert receiver.take() == [], f"run {number} of 3 sent a message"
        (alert,) = receiver.take()
        runs.append(run_playbook(HEALTH_HOST, limit=HOST_NAME, tags="host,report", extravars=health(receiver)))
        runs[-1].assert_ok()
        (recovery,) = receiver.take()
    assert alert["summary"] == f"[P2] CRITICAL: health_check on {HOST_NAME} (3 runs in a row)"
    assert (alert["event"], alert["host"], alert["playbook"], alert["status"], alert["severity"]) == (
        "alert",
        HOST_NAME,
        "health_check",
        "critical",
        "P2",
    )
    assert alert["consecutive_failures"] == 3 and alert["awx_job_id"] is None
    (disk,) = alert["findings"]
    assert disk["message"].startswith("disk used on / is ") and (disk["severity"], disk["priority"]) == (
        "critical",
        "P2",
    )
    assert alert["counts"] == {"critical": 1, "warning": 0, "P1": 0, "P2": 1, "P3": 0, "P4": 0}
    assert (recovery["event"], recovery["status"], recovery["summary"]) == (
        "recovery",
        "ok",
        f"RESOLVED: health_check on {HOST_NAME} is ok again",
    )
    assert failures(state, "health_check") == 0
    assert (state.stat().st_mode & 0o777) == 0o700
    assert all(not any(run.changed().values()) for run in runs), "an alert is no change to the stack"
    assert_no_token(*runs)


def test_backup_drill_and_routine_failures_alert_in_slack_form(tmp_path: Path) -> None:
    """A backup of a database that does not exist, a drill of a host whose backup folder is empty, a daily routine
    whose liveness endpoint is a closed port: one Slack message each, with the runbooks' priorities; the health
    check inside the routine sends none of its own."""
    state, empty = tmp_path / "alerts", tmp_path / "no-backups"
    empty.mkdir()
    with webhook() as receiver:
        slack = alerting(receiver, state, notify_format="slack")
        backup = run_playbook(
            "stackops.runbooks.backup",
            limit=HOST_NAME,
            extravars={
                **slack,
                "backup_db": "no_such_db",
                "backup_dest": str(tmp_path / "backups"),
                "awx_job_id": 4711,
            },
        )
        assert backup.failed_hosts() == {HOST_NAME}
        assert "no_such_db" in backup.result(HOST_NAME, "Fail as the backup did")["msg"]
        (backup_alert,) = receiver.take()

        drill = run_playbook(
            "stackops.runbooks.restore_drill",
            limit=HOST_NAME,
            extravars={
                **slack,
                "restore_drill_backup_dest": str(empty),
                "restore_drill_report_dir": str(tmp_path / "reports"),
            },
        )
        assert drill.status == "failed"
        (drill_alert,) = receiver.take()

        routine = run_playbook(
            "stackops.runbooks.routine_daily",
            limit=HOST_NAME,
            extravars={
                **slack,
                "health_check_endpoints": CLOSED,
                "routine_report_dir": str(tmp_path / "routine"),
                "routine_fail_on": "never",
            },
        )
        routine.assert_ok()
        (routine_alert,) = receiver.take()
    assert backup_alert["text"] == f"[P2] CRITICAL: backup on {HOST_NAME}"
    attachment = backup_alert["attachments"][0]
    assert attachment["color"] == "danger" and "• [P2] critical backup: " in attachment["text"]
    assert "no_such_db" in attachment["text"]
    assert {f["title"]: f["value"] for f in attachment["fields"]} | {"Since": "-"} == {
        "Host": HOST_NAME,
        "Playbook": "backup",
        "Status": "critical",
        "Severity": "P2",
        "Runs in a row": "1",
        "Since": "-",
        "AWX job": "4711",
    }
    assert drill_alert["text"] == f"[P2] CRITICAL: restore_drill on {HOST_NAME}"
    drilled = drill_alert["attachments"][0]
    assert "• [P2] critical restore_drill: app on drill1: fail, " in drilled["text"] and str(empty) in drilled["text"]
    assert {f["title"]: f["value"] for f in drilled["fields"]}["database"] == "app"
    # One message from the routine, none from the health check inside it; its findings keep their checks.
    assert routine_alert["text"] == f"[P1] CRITICAL: routine_daily on {HOST_NAME}"
    assert "• [P1] critical http.status: liveness: " in routine_alert["attachments"][0]["text"]
    assert (failures(state, "backup"), failures(state, "restore_drill"), failures(state, "routine_daily")) == (1, 1, 1)
    assert "health_check" not in json.loads((state / f"{HOST_NAME}.json").read_text())["checks"]
    assert_no_token(backup, drill, routine)
