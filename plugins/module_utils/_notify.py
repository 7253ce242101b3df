# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Alerts: the runbooks' P1-P4 priority of each finding, the consecutive-failure state of a host's check, and the
two payloads a webhook gets (Slack-compatible and generic JSON). Everything here but the state file is pure."""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import re
import stat
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._files import write_atomic

SEVERITIES = ("ok", "warning", "critical")
PRIORITIES = ("P1", "P2", "P3", "P4")
STATE_SCHEMA = "stackops.runbooks/alert-state/1"
PAYLOAD_SCHEMA = "stackops.runbooks/alert/1"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHOWN = 20

# The runbooks' priorities (003 "Severity Levels" and "Recommended Alerts", 004 "Escalation Matrix"): P1 service
# down, P2 major feature broken or severe degradation, P3 minor issue with a workaround, P4 cosmetic or low impact.
# First match wins: `check` is a glob over the finding's check, `severity` one severity or any, `message` a regular
# expression searched in its text. docs/alerts.md shows this table; tests/unit/test_notify.py keeps the two equal.
DEFAULT_RULES: list[dict[str, str]] = [
    # 003 "API Down: health check fails 3x": a service, a database or an endpoint that does not answer.
    {"check": "services", "severity": "critical", "priority": "P1"},
    {"check": "*.availability", "severity": "critical", "priority": "P1"},
    {"check": "http.status", "severity": "critical", "priority": "P1"},
    # 003 "Database Full: disk > 80%" and "Redis OOM: memory > 90%" are P2.
    {"message": r"^(disk used|mount point)", "priority": "P2"},
    {"message": r"^memory used", "priority": "P2"},
    {"check": "redis.memory", "priority": "P2"},
    # 003 "High Latency: p95 > 5s" is P2; a slow answer below the critical threshold is a minor issue.
    {"check": "http.latency", "severity": "critical", "priority": "P2"},
    {"check": "http.latency", "severity": "warning", "priority": "P3"},
    # 003 "Certificate Expiry: < 7 days" is P3; an untrusted or nearly expired one breaks every client.
    {"check": "http.tls", "severity": "critical", "priority": "P2"},
    {"check": "http.tls", "severity": "warning", "priority": "P3"},
    # No verified backup, or a backup that does not restore: recoverability is broken (000 "data loss").
    {"check": "backup", "severity": "critical", "priority": "P2"},
    {"check": "restore_drill", "severity": "critical", "priority": "P2"},
    # The routines' housekeeping: updates and unrotated logs are low impact.
    {"message": r"not rotated|older image than their registry", "priority": "P4"},
    {"message": r"security updates|known vulnerabilities", "priority": "P3"},
    {"severity": "critical", "priority": "P2"},
    {"severity": "warning", "priority": "P3"},
]


def check_name(value: str, option: str) -> str:
    """A host or check name that becomes part of a state file's name."""
    if not NAME.match(value) or len(value) > 128:
        raise StackopsError(
            f"{option} {value!r} is not a name of letters, digits, '.', '_' and '-' (starting with a letter or "
            "digit, at most 128); give such a name."
        )
    return value


def check_rules(rules: list[dict[str, t.Any]]) -> list[dict[str, str]]:
    """The user's priority rules, refused with the fix when one could never match or names no P-level."""
    checked = []
    for number, rule in enumerate(rules, 1):
        unknown = set(rule) - {"check", "severity", "message", "priority"}
        if unknown:
            raise StackopsError(
                f"Priority rule {number} has unknown keys {sorted(unknown)}; a rule has check, severity, message "
                "and priority."
            )
        if rule.get("priority") not in PRIORITIES:
            raise StackopsError(
                f"Priority rule {number} gives priority {rule.get('priority')!r}; give one of {', '.join(PRIORITIES)}."
            )
        if rule.get("severity") not in (None, "critical", "warning"):
            raise StackopsError(
                f"Priority rule {number} matches severity {rule['severity']!r}; give critical or warning, or leave "
                "it out to match both."
            )
        try:
            re.compile(rule.get("message") or "")
        except re.error as exc:
            raise StackopsError(
                f"Priority rule {number}: message {rule['message']!r} is not a regular expression ({exc})."
            ) from None
        checked.append({k: str(v) for k, v in rule.items() if v is not None})
    return checked


def priority(finding: t.Mapping[str, t.Any], rules: list[dict[str, str]]) -> str:
    """The P-level of one finding: its own when it names one, else the first rule that matches it."""
    if finding.get("priority") in PRIORITIES:
        return str(finding["priority"])
    for rule in rules:
        if (
            fnmatch.fnmatchcase(finding["check"], rule.get("check", "*"))
            and rule.get("severity", finding["severity"]) == finding["severity"]
            and re.search(rule.get("message", ""), finding["message"])
        ):
            return rule["priority"]
    return "P2" if finding["severity"] == "critical" else "P3"


def collect(
    findings: list[dict[str, t.Any]], critical: list[str], warning: list[str], check: str, rules: list[dict[str, str]]
) -> list[dict[str, t.Any]]:
    """Every warning and critical finding once, with its check and P-level, worst first. Findings given as text
    (critical, warning) belong to the caller's check; text a structured finding already says is not repeated."""
    structured = [
        {"check": str(f.get("check") or check), "severity": f.get("severity"), "message": str(f.get("message", ""))}
        | ({"priority": f["priority"]} if f.get("priority") else {})
        for f in findings
    ]
    texts = [{"check": check, "severity": "critical", "message": m} for m in critical] + [
        {"check": check, "severity": "warning", "message": m} for m in warning
    ]
    seen: set[str] = set()
    result = []
    for finding in structured + texts:
        if finding["severity"] not in ("critical", "warning") or finding["message"] in seen:
            continue
        seen.add(str(finding["message"]))
        result.append({**finding, "priority": priority(finding, rules)})
    return sorted(result, key=lambda f: (f["priority"], -SEVERITIES.index(f["severity"])))


def advance(
    previous: t.Mapping[str, t.Any] | None, status: str, notify_on: str, after: int, recovery: bool, now: str
) -> tuple[dict[str, t.Any], str | None]:
    """The check's next state and what to send: `alert` once the status has reached notify_on `after` runs in a row
    (again when it worsens, warning to critical), `recovery` once when it clears after an alert, else nothing."""
    before = dict(previous or {})
    failures, alerted = int(before.get("failures", 0)), str(before.get("alerted") or "")
    failing = SEVERITIES.index(status) >= SEVERITIES.index(notify_on)
    if failing:
        failures += 1
        state = {"status": status, "failures": failures, "since": before.get("since") or now, "alerted": alerted}
        worse = not alerted or SEVERITIES.index(status) > SEVERITIES.index(alerted)
        if failures >= after and worse:
            return {**state, "alerted": status}, "alert"
        return state, None
    state = {"status": status, "failures": 0, "since": None, "alerted": ""}
    return state, ("recovery" if alerted and recovery else None)


def unsent(state: dict[str, t.Any], previous: t.Mapping[str, t.Any] | None) -> dict[str, t.Any]:
    """The state to keep when the message could not be sent: the next run tries again."""
    return {**state, "alerted": str((previous or {}).get("alerted") or "")}


def headline(alert: t.Mapping[str, t.Any]) -> str:
    what, host, runs = alert["check"], alert["host"], alert["consecutive_failures"]
    if alert["event"] == "recovery":
        return f"RESOLVED: {what} on {host} is {alert['status']} again"
    if alert["event"] == "alert":
        level = f"[{alert['severity']}] " if alert["severity"] else ""
        streak = f" ({runs} runs in a row)" if runs > 1 else ""
        return f"{level}{alert['status'].upper()}: {what} on {host}{streak}"
    return alert.get("title") or f"{what} on {host}: {alert['event']}"


def generic_payload(alert: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The generic JSON: every fact of the alert by name; the caller's fields beside them, never over them."""
    findings = alert["findings"]
    counts = {s: sum(f["severity"] == s for f in findings) for s in ("critical", "warning")}
    counts.update({p: sum(f["priority"] == p for f in findings) for p in PRIORITIES})
    body = {
        "schema": PAYLOAD_SCHEMA,
        "event": alert["event"],
        "summary": headline(alert),
        "host": alert["host"],
        "playbook": alert["playbook"],
        "check": alert["check"],
        "status": alert["status"],
        "severity": alert["severity"],
        "findings": findings,
        "counts": counts,
        "consecutive_failures": alert["consecutive_failures"],
        "since": alert["since"],
        "time": alert["time"],
        "duration_s": alert["duration_s"],
        "awx_job_id": alert["awx_job_id"],
    }
    return {**alert["fields"], **body}


def slack_escape(text: str) -> str:
    """Slack reads <...> as links and mentions (<!channel>): text from a finding is shown, never obeyed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """Slack's incoming-webhook JSON: `text` and one attachment (colour, fields, the findings). Legacy attachments
    rather than blocks, as Mattermost, Rocket.Chat and Discord's /slack endpoint read them too."""
    findings = alert["findings"]
    lines = [f"• [{f['priority']}] {f['severity']} {f['check']}: {slack_escape(f['message'])}" for f in findings]
    if len(lines) > SHOWN:
        lines = [*lines[:SHOWN], f"… and {len(lines) - SHOWN} more"]
    colour = {"critical": "danger", "warning": "warning"}.get(alert["status"], "good")
    fields = [
        ("Host", alert["host"]),
        ("Playbook", alert["playbook"]),
        ("Status", alert["status"]),
        ("Severity", alert["severity"]),
        ("Runs in a row", alert["consecutive_failures"] or None),
        ("Since", alert["since"]),
        ("Run time", f"{alert['duration_s']:g} s" if alert["duration_s"] is not None else None),
        ("AWX job", alert["awx_job_id"]),
        *alert["fields"].items(),
    ]
    text = slack_escape(headline(alert))
    return {
        "text": text,
        "attachments": [
            {
                "fallback": text,
                "color": colour,
                "text": "\n".join(lines),
                "fields": [
                    {"title": title, "value": slack_escape(str(value)), "short": True}
                    for title, value in fields
                    if value not in (None, "")
                ],
                "footer": f"stackops.runbooks {alert['check']} · {alert['time']}",
                "mrkdwn_in": ["text"],
            }
        ],
    }


PAYLOADS: dict[str, t.Callable[[t.Mapping[str, t.Any]], dict[str, t.Any]]] = {
    "generic": generic_payload,
    "slack": slack_payload,
}


class StateFile:
    """One host's alert state on the controller, <dir>/<host>.json (0600 in a 0700 directory), a key per check.
    Read and written under a lock, so two runs that alert for the same host do not lose each other's counts."""

    def __init__(self, directory: str, host: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, f"{host}.json")
        self.lock: t.IO[str] | None = None

    def check_directory(self, create: bool) -> bool:
        """Whether the directory is there; one that others could write or that is not ours is refused."""
        try:
            info = os.lstat(self.directory)
        except FileNotFoundError:
            if create:
                os.makedirs(self.directory, mode=0o700)
                return True
            return False
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise StackopsError(
                f"The alert state directory {self.directory} is not a directory of this user that only it can write "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); give state_dir a private directory (0700) of its own."
            )
        return True

    def read(self) -> dict[str, t.Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                document = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StackopsError(
                f"Could not read the alert state {self.path} ({exc}); remove it to start counting anew."
            ) from None
        return dict(document.get("checks") or {})

    def __enter__(self) -> StateFile:
        self.check_directory(create=True)
        fd = os.open(os.path.join(self.directory, ".lock"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.lock = os.fdopen(fd, "a", encoding="utf-8")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.lock is not None:
            self.lock.close()

    def write(self, checks: dict[str, t.Any], host: str) -> None:
        document = {"schema": STATE_SCHEMA, "host": host, "checks": checks}
        write_atomic(self.path, f"{json.dumps(document, indent=2, sort_keys=True)}\n".encode(), mode=0o600)
