"""Alerts: the P1-P4 priority of each finding, the consecutive-failure state machine, the two payloads, and the
notify module's state file and check mode (tests/integration/test_alerts.py runs them against the lab)."""

from __future__ import annotations

import json
import os
import re
import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _notify as notify
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.modules import notify as module
from harness.paths import REPO

FIXTURES = Path(__file__).parent / "fixtures" / "notify"
RULES = notify.DEFAULT_RULES


@pytest.mark.parametrize(
    ("check", "severity", "message", "expected"),
    [
        ("services", "critical", "stackops-lab1-redis-1 is exited", "P1"),
        ("services", "warning", "app restarted 2 times", "P3"),
        ("postgres.availability", "critical", "PostgreSQL at x is not available", "P1"),
        ("http.status", "critical", "liveness: http://127.0.0.1:9/health did not answer", "P1"),
        ("http.status", "warning", "cors: no Access-Control-Allow-Origin", "P3"),
        ("health_check", "warning", "disk used on / is 85%, at or above the warning threshold 80%", "P2"),
        ("health_check", "critical", "mount point /data could not be read", "P2"),
        ("redis.memory", "warning", "used memory is 91% of maxmemory", "P2"),
        ("http.latency", "critical", "liveness response time is 6000 ms", "P2"),
        ("http.tls", "warning", "tls certificate days left is 6", "P3"),
        ("backup", "critical", "Take the backup: database nope does not exist", "P2"),
        ("routine_monthly", "warning", "logs of container x are not rotated: set max-size", "P4"),
        ("routine_weekly", "warning", "3 security updates of OS packages are pending", "P3"),
        ("postgres.wraparound", "critical", "wraparound", "P2"),
        ("postgres.vacuum", "warning", "dead tuples", "P3"),
    ],
)
def test_the_default_table_gives_each_finding_the_runbooks_priority(
    check: str, severity: str, message: str, expected: str
) -> None:
    assert notify.priority({"check": check, "severity": severity, "message": message}, RULES) == expected


def test_the_users_rules_come_first_and_a_findings_own_priority_wins() -> None:
    rules = notify.check_rules([{"check": "postgres.*", "severity": "warning", "priority": "P1"}]) + RULES
    assert notify.priority({"check": "postgres.vacuum", "severity": "warning", "message": "m"}, rules) == "P1"
    assert notify.priority({"check": "postgres.vacuum", "severity": "critical", "message": "m"}, rules) == "P2"
    own = {"check": "services", "severity": "critical", "message": "m", "priority": "P4"}
    assert notify.priority(own, rules) == "P4"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"priority": "P5"}, "gives priority 'P5'; give one of P1, P2, P3, P4"),
        ({"priority": "P1", "severity": "ok"}, "matches severity 'ok'; give critical or warning"),
        ({"priority": "P1", "message": "("}, "message '(' is not a regular expression"),
        ({"priority": "P1", "level": "x"}, "unknown keys ['level']"),
    ],
)
def test_bad_rules_are_refused_with_the_fix(rule: dict[str, str], message: str) -> None:
    with pytest.raises(StackopsError, match=re.escape(message)):
        notify.check_rules([rule])


def test_the_docs_table_is_the_default_table() -> None:
    """docs/alerts.md shows DEFAULT_RULES; a rule changed in one place and not the other fails here."""
    text = (REPO / "docs" / "alerts.md").read_text()
    table = text.split("<!-- priorities:", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[3:] if line.startswith("|")]

    def cell(value: str) -> str:
        return value.strip().strip("`").replace("\\|", "|")

    documented = []
    for row in rows:
        check, severity, message, priority = (cell(c) for c in re.split(r"(?<!\\)\|", row)[1:5])
        rule = {"check": check, "severity": severity, "message": message, "priority": priority}
        documented.append({k: v for k, v in rule.items() if v})
    assert documented == RULES


def test_findings_are_collected_once_worst_first_with_their_check() -> None:
    structured = [
        {"check": "http.status", "severity": "critical", "message": "liveness: refused", "value": None},
        {"check": "postgres.cache", "severity": "ok", "message": "fine"},
    ]
    found = notify.collect(
        structured,
        ["liveness: refused"],
        ["disk used on / is 85%", "logs of container a are not rotated"],
        "health_check",
        RULES,
    )
    assert found == [
        {"check": "http.status", "severity": "critical", "message": "liveness: refused", "priority": "P1"},
        {"check": "health_check", "severity": "warning", "message": "disk used on / is 85%", "priority": "P2"},
        {
            "check": "health_check",
            "severity": "warning",
            "message": "logs of container a are not rotated",
            "priority": "P4",
        },
    ]


def run_states(
    statuses: list[str], after: int, notify_on: str = "warning", recovery: bool = True
) -> list[tuple[str | None, int]]:
    state: dict[str, t.Any] | None = None
    seen = []
    for number, status in enumerate(statuses):
        state, event = notify.advance(state, status, notify_on, after, recovery, f"t{number}")
        seen.append((event, state["failures"]))
    return seen


@pytest.mark.parametrize(
    ("statuses", "after", "notify_on", "expected"),
    [
        # Down three runs in a row: one alert on the third, none on the fourth, one recovery, then quiet.
        (
            ["critical", "critical", "critical", "critical", "ok", "ok"],
            3,
            "warning",
            [(None, 1), (None, 2), ("alert", 3), (None, 4), ("recovery", 0), (None, 0)],
        ),
        # Cleared before the third run: nothing is ever sent.
        (["critical", "critical", "ok", "critical"], 3, "warning", [(None, 1), (None, 2), (None, 0), (None, 1)]),
        # Worse after the alert: warning, then critical, alerts again; critical to warning does not.
        (
            ["warning", "critical", "warning", "ok"],
            1,
            "warning",
            [("alert", 1), ("alert", 2), (None, 3), ("recovery", 0)],
        ),
        # notify_on critical: a warning is not a failed run, and it clears a critical alert.
        (
            ["warning", "critical", "warning", "warning"],
            1,
            "critical",
            [(None, 0), ("alert", 1), ("recovery", 0), (None, 0)],
        ),
    ],
)
def test_the_consecutive_failure_state_machine(
    statuses: list[str], after: int, notify_on: str, expected: list[tuple[str | None, int]]
) -> None:
    assert run_states(statuses, after, notify_on) == expected


def test_no_recovery_message_when_asked_for_none_and_since_is_the_first_failed_run() -> None:
    assert run_states(["critical", "ok"], 1, recovery=False) == [("alert", 1), (None, 0)]
    state, _event = notify.advance(None, "critical", "warning", 3, True, "t0")
    state, _event = notify.advance(state, "critical", "warning", 3, True, "t1")
    assert state["since"] == "t0"


def test_an_alert_that_was_not_sent_is_sent_on_the_next_failed_run() -> None:
    previous = {"status": "critical", "failures": 2, "since": "t0", "alerted": ""}
    state, event = notify.advance(previous, "critical", "warning", 3, True, "t2")
    assert event == "alert"
    kept = notify.unsent(state, previous)
    assert kept["failures"] == 3 and kept["alerted"] == ""
    assert notify.advance(kept, "critical", "warning", 3, True, "t3")[1] == "alert"


def real_alert() -> dict[str, t.Any]:
    """An alert from lab1's health check with its liveness endpoint on a closed port and a disk threshold of 1%
    (captured from the lab: stack_health's findings and the role's text findings)."""
    captured = json.loads((FIXTURES / "health_check_lab1_critical.json").read_text())
    findings = notify.collect(captured["findings"], captured["critical"], captured["warning"], "health_check", RULES)
    return {
        "event": "alert",
        "host": "lab1",
        "check": "health_check",
        "playbook": "health_check",
        "status": captured["status"],
        "severity": findings[0]["priority"],
        "findings": findings,
        "consecutive_failures": 3,
        "since": "2026-12-07T03:50:01Z",
        "time": "2026-12-07T03:50:20Z",
        "duration_s": 1.25,
        "awx_job_id": "4711",
        "title": None,
        "fields": {},
    }


def test_the_generic_payload_of_a_real_health_check() -> None:
    body = notify.generic_payload(real_alert())
    assert body["summary"] == "[P1] CRITICAL: health_check on lab1 (3 runs in a row)"
    assert (body["host"], body["playbook"], body["status"], body["severity"]) == (
        "lab1",
        "health_check",
        "critical",
        "P1",
    )
    liveness = next(f for f in body["findings"] if f["check"] == "http.status")
    assert liveness["priority"] == "P1" and "127.0.0.1:9" in liveness["message"]
    disk = next(f for f in body["findings"] if f["message"].startswith("disk used on /"))
    assert (disk["severity"], disk["priority"]) == ("warning", "P2")
    assert body["counts"]["critical"] == sum(f["severity"] == "critical" for f in body["findings"]) >= 1
    assert sum(body["counts"][p] for p in notify.PRIORITIES) == len(body["findings"])
    assert (body["awx_job_id"], body["duration_s"], body["consecutive_failures"]) == ("4711", 1.25, 3)
    json.dumps(body)


def test_the_slack_payload_escapes_findings_and_shows_at_most_twenty() -> None:
    alert = real_alert()
    alert["findings"] = [
        {"check": "services", "severity": "critical", "priority": "P1", "message": f"<!channel> & <b>{n}</b>"}
        for n in range(25)
    ]
    body = notify.slack_payload(alert)
    assert body["text"] == "[P1] CRITICAL: health_check on lab1 (3 runs in a row)"
    attachment = body["attachments"][0]
    assert attachment["color"] == "danger"
    lines = attachment["text"].splitlines()
    assert len(lines) == 21 and lines[-1] == "… and 5 more"
    assert lines[0] == "• [P1] critical services: &lt;!channel&gt; &amp; &lt;b&gt;0&lt;/b&gt;"
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields == {
        "Host": "lab1",
        "Playbook": "health_check",
        "Status": "critical",
        "Severity": "P1",
        "Runs in a row": "3",
        "Since": "2026-12-07T03:50:01Z",
        "Run time": "1.25 s",
        "AWX job": "4711",
    }


def test_a_recovery_and_an_announcement_read_as_such() -> None:
    alert = {**real_alert(), "event": "recovery", "status": "ok", "severity": None, "findings": []}
    alert["consecutive_failures"] = 0
    assert notify.slack_payload(alert)["text"] == "RESOLVED: health_check on lab1 is ok again"
    assert notify.slack_payload(alert)["attachments"][0]["color"] == "good"
    window = {
        **alert,
        "event": "started",
        "check": "maintenance_window",
        "title": "window on lab1",
        "fields": {"reason": "r", "event": "x"},
    }
    body = notify.generic_payload(window)
    assert (body["event"], body["summary"], body["reason"]) == ("started", "window on lab1", "r")


class FakeModule:
    """What decide() and run_module() use of AnsibleModule."""

    def __init__(self, check_mode: bool = False, **params: t.Any) -> None:
        spec = module.argument_spec()
        self.params = {name: option.get("default") for name, option in spec.items()} | params
        self.check_mode = check_mode

    @staticmethod
    def jsonify(data: t.Any) -> str:
        return json.dumps(data)


def params(folder: Path, **extra: t.Any) -> dict[str, t.Any]:
    return {
        "url": "https://hooks.example.com/services/T0/B0/s3cr3t",
        "host": "lab1",
        "check": "health_check",
        "status": "critical",
        "critical": ["liveness: refused"],
        "state_dir": str(folder),
        "after": 2,
    } | extra


def test_check_mode_sends_nothing_and_writes_no_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[t.Any] = []
    monkeypatch.setattr(module, "send", lambda _m, _o, payload: sent.append(payload))
    state_dir = tmp_path / "alerts"
    for _run in range(3):
        result = module.run_module(FakeModule(check_mode=True, **params(state_dir, after=1)))
        assert result["event"] == "alert" and result["payload"] and not result["sent"]
    assert sent == [] and not state_dir.exists()


def test_the_state_file_counts_runs_is_private_and_sends_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[t.Any] = []
    monkeypatch.setattr(module, "send", lambda _m, _o, payload: sent.append(payload))
    state_dir = tmp_path / "alerts"
    events = [module.run_module(FakeModule(**params(state_dir)))["event"] for _run in range(3)]
    assert events == [None, "alert", None] and len(sent) == 1
    assert os.stat(state_dir).st_mode & 0o777 == 0o700
    path = state_dir / "lab1.json"
    assert {p.name: p.stat().st_mode & 0o777 for p in state_dir.iterdir()} == {"lab1.json": 0o600, ".lock": 0o600}
    document = json.loads(path.read_text())
    assert document["checks"]["health_check"] == {
        "status": "critical",
        "failures": 3,
        "since": document["checks"]["health_check"]["since"],
        "alerted": "critical",
    }
    recovered = module.run_module(FakeModule(**params(state_dir, status="ok", critical=[])))
    assert recovered["event"] == "recovery" and sent[-1]["event"] == "recovery" and len(sent) == 2
    # An ok run on an ok state changes nothing and sends nothing.
    again = module.run_module(FakeModule(**params(state_dir, status="ok", critical=[])))
    assert (again["event"], again["changed"], len(sent)) == (None, False, 2)


def test_a_webhook_that_fails_keeps_the_alert_for_the_next_run_and_never_shows_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_module: t.Any, o: module.Options, _payload: t.Any) -> None:
        raise StackopsError(f"The webhook at {module.where(o.url)} was not told: HTTP 500.")

    monkeypatch.setattr(module, "send", refuse)
    state_dir = tmp_path / "alerts"
    with pytest.raises(StackopsError) as raised:
        module.run_module(FakeModule(**params(state_dir, after=1)))
    assert str(raised.value) == "The webhook at https://hooks.example.com was not told: HTTP 500."
    assert "s3cr3t" not in str(raised.value) + json.dumps(raised.value.details)
    assert json.loads((state_dir / "lab1.json").read_text())["checks"]["health_check"]["alerted"] == ""
    sent: list[t.Any] = []
    monkeypatch.setattr(module, "send", lambda _m, _o, payload: sent.append(payload))
    assert module.run_module(FakeModule(**params(state_dir, after=1)))["event"] == "alert" and len(sent) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"url": "hooks.example.com/x"}, "url is not an http:// or https:// URL with a host (it is not shown"),
        ({"check": "../etc"}, "check '../etc' is not a name of letters"),
        ({"after": 0}, "after must be at least 1, not 0."),
        ({"after": 3, "state_dir": ""}, "after 3 counts failed runs in a row, which needs a state_dir"),
        ({"findings": [{"message": "m", "severity": "bad"}]}, "Finding 1 needs a message and a severity"),
        ({"priorities": [{"priority": "P9"}]}, "gives priority 'P9'"),
    ],
)
def test_bad_input_is_refused_before_anything_is_read_or_sent(
    tmp_path: Path, extra: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(StackopsError, match=re.escape(message)):
        module.run_module(FakeModule(**params(tmp_path / "alerts", **extra)))
    assert not (tmp_path / "alerts").exists()


def test_a_state_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(StackopsError, match="is not a directory of this user that only it can write"):
        module.run_module(FakeModule(**params(shared)))
