#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: notify
short_description: Tell a webhook about a run's verdict, after N failed runs in a row, and once when it clears
version_added: 0.1.0
description:
  - Sends a run's verdict (a host, a check such as V(health_check), its status and findings) to a webhook as
    Slack-compatible JSON or as generic JSON, with the runbooks' priority (P1 to P4) on each finding.
  - Keeps, per host and check, how many runs in a row reached O(notify_on), in a state file on the machine the module
    runs on (the controller, as the roles delegate it to C(localhost)). An alert is sent once the status has reached
    O(notify_on) O(after) runs in a row ("down 3 runs in a row"), and again only when it worsens (warning to
    critical); a recovery message is sent once when it clears.
  - With O(event), the message is an announcement (a maintenance window started), always sent, with no state kept.
  - The URL may hold a secret (a Slack token is in its path), so it is never returned, shown or put in a message;
    an error names only the webhook's scheme and host.
  - The priority of a finding is its own C(priority) in O(findings) when it gives one, else that of the first rule of
    O(priorities) and then of the default table (L(docs/alerts.md,../alerts.md)) that matches it.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: Check mode sends nothing and writes no state; it returns the event and the payload a real run would send.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Each run is counted; a run that changes neither the state nor sends anything reports no change.
  platform:
    platforms: posix
options:
  url:
    description: The webhook's URL (C(http://) or C(https://)); a secret.
    type: str
    required: true
  format:
    description: V(slack) (C(text) and an attachment, as Slack, Mattermost and Rocket.Chat read it) or V(generic).
    type: str
    choices: [generic, slack]
    default: generic
  host:
    description: The host the verdict is about.
    type: str
    required: true
  check:
    description: What was checked (V(health_check), V(backup), V(restore_drill), V(routine_daily), ...); the state
      is kept per host and check.
    type: str
    required: true
  playbook:
    description: The playbook in the payload; O(check) when not given.
    type: str
  status:
    description: The run's verdict.
    type: str
    choices: [ok, warning, critical]
    required: true
  findings:
    description: Findings with their check (C(check), C(severity), C(message), optionally C(priority)).
    type: list
    elements: dict
    default: []
  critical:
    description: Critical findings as text (they belong to O(check)); text O(findings) already holds is not repeated.
    type: list
    elements: str
    default: []
  warning:
    description: Warning findings as text.
    type: list
    elements: str
    default: []
  event:
    description: Send an announcement of this event (V(started), V(finished), ...) whatever the status; no state.
    type: str
  title:
    description: The headline of an announcement.
    type: str
  fields:
    description: More facts for the message (a reason); top-level keys of the generic JSON beside its own.
    type: dict
    default: {}
  notify_on:
    description: The status that counts as a failed run.
    type: str
    choices: [warning, critical]
    default: warning
  after:
    description: Failed runs in a row before the alert is sent. More than 1 needs O(state_dir).
    type: int
    default: 1
  recovery:
    description: Send a message once when a check that was alerted on clears.
    type: bool
    default: true
  state_dir:
    description:
      - The directory (0700, created) of the state files, one per host (C(<host>.json), 0600). Empty keeps no state
        then every failed run alerts and no recovery is sent.
    type: str
    default: ""
  priorities:
    description:
      - Rules that give a finding its priority, tried before the default table; the first that matches wins. Each
        has C(priority) (V(P1) to V(P4)) and any of C(check) (a glob, V(postgres.*)), C(severity) (V(critical) or
        V(warning)) and C(message) (a regular expression searched in the finding's text).
    type: list
    elements: dict
    default: []
  awx_job_id:
    description: The AWX job that ran the check, when it ran in AWX.
    type: str
  duration_s:
    description: How long the run took, in seconds.
    type: float
  timeout:
    description: Seconds to wait for the webhook.
    type: int
    default: 10
  attempts:
    description: Tries when the webhook cannot be reached or answers 5xx or 429, a second apart.
    type: int
    default: 2
  validate_certs:
    description: Verify the webhook's TLS certificate.
    type: bool
    default: true
seealso:
  - module: stackops.runbooks.stack_health
"""

EXAMPLES = r"""
# The roles (health_check, backup, restore_drill, routine) do this through the notify role when notify_webhook is set.
- name: Tell Slack once the health check has been critical three runs in a row, and once when it clears
  stackops.runbooks.notify:
    url: "{{ slack_webhook_url }}"
    format: slack
    host: "{{ inventory_hostname }}"
    check: health_check
    status: critical
    findings:
      - {check: http.status, severity: critical, message: "liveness: http://127.0.0.1/health answered 502"}
    warning: [disk used on / is 85%, at or above the warning threshold 80%]
    notify_on: critical
    after: 3
    state_dir: /var/lib/stackops-alerts
    priorities:
      - {check: postgres.connections, severity: critical, priority: P1}
  delegate_to: localhost

- name: Announce a maintenance window to a generic webhook
  stackops.runbooks.notify:
    url: https://hooks.example.com/stackops
    host: "{{ inventory_hostname }}"
    check: maintenance_window
    status: ok
    event: started
    title: maintenance window started
    fields:
      reason: monthly maintenance
  delegate_to: localhost
"""

RETURN = r"""
event:
  description: What was sent (or would be, in check mode) (V(alert), V(recovery), or O(event)); null when nothing.
  returned: always
  type: str
  sample: alert
sent:
  description: Whether a message was sent.
  returned: always
  type: bool
severity:
  description: The worst priority among the findings (V(P1) to V(P4)); null when there is none.
  returned: always
  type: str
  sample: P1
consecutive_failures:
  description: Runs in a row, this one included, whose status reached O(notify_on).
  returned: always
  type: int
  sample: 3
findings:
  description: The warning and critical findings with their C(check), C(severity), C(message) and C(priority).
  returned: always
  type: list
  elements: dict
state:
  description: The check's state after this run (C(status), C(failures), C(since), C(alerted)).
  returned: always
  type: dict
state_path:
  description: The state file; null without O(state_dir).
  returned: always
  type: str
payload:
  description: The JSON sent, or that would be sent; null when nothing is. It never holds the URL.
  returned: always
  type: dict
"""

import dataclasses
import time
import typing as t
from collections.abc import Mapping
from urllib.error import HTTPError
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._http import check_url
from ansible_collections.stackops.runbooks.plugins.module_utils._notify import (
    DEFAULT_RULES,
    PAYLOADS,
    StateFile,
    advance,
    check_name,
    check_rules,
    collect,
    unsent,
)


def argument_spec() -> dict[str, t.Any]:
    return {
        "url": {"type": "str", "required": True, "no_log": True},
        "format": {"type": "str", "choices": list(PAYLOADS), "default": "generic"},
        "host": {"type": "str", "required": True},
        "check": {"type": "str", "required": True},
        "playbook": {"type": "str"},
        "status": {"type": "str", "required": True, "choices": ["ok", "warning", "critical"]},
        "findings": {"type": "list", "elements": "dict", "default": []},
        "critical": {"type": "list", "elements": "str", "default": []},
        "warning": {"type": "list", "elements": "str", "default": []},
        "event": {"type": "str"},
        "title": {"type": "str"},
        "fields": {"type": "dict", "default": {}},
        "notify_on": {"type": "str", "choices": ["warning", "critical"], "default": "warning"},
        "after": {"type": "int", "default": 1},
        "recovery": {"type": "bool", "default": True},
        "state_dir": {"type": "str", "default": ""},
        "priorities": {"type": "list", "elements": "dict", "default": []},
        "awx_job_id": {"type": "str"},
        "duration_s": {"type": "float"},
        "timeout": {"type": "int", "default": 10},
        "attempts": {"type": "int", "default": 2},
        "validate_certs": {"type": "bool", "default": True},
    }


def where(url: str) -> str:
    """The webhook as errors may name it: scheme and host, never the path or query that hold its token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@dataclasses.dataclass(frozen=True)
class Options:
    """notify's options once checked: what the planner and sender read, instead of the params."""

    url: str = dataclasses.field(repr=False)  # no_log: its path or query may hold a token
    format: str
    host: str
    check: str
    playbook: str | None
    status: str
    findings: tuple[dict[str, t.Any], ...]
    critical: tuple[str, ...]
    warning: tuple[str, ...]
    event: str | None
    title: str | None
    fields: dict[str, t.Any]
    notify_on: str
    after: int
    recovery: bool
    state_dir: str
    rules: tuple[dict[str, str], ...]  # the user's priorities, checked, then the default rules
    awx_job_id: str | None
    duration_s: float | None
    timeout: int
    attempts: int
    validate_certs: bool


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Bad input refused before anything is read or sent; the user's rules, checked."""
    try:
        check_url(params["url"])
    except StackopsError:
        # The endpoint message repeats the URL, which may hold a token.
        raise StackopsError(
            "url is not an http:// or https:// URL with a host (it is not shown: it may hold a token); give the "
            "webhook's full URL."
        ) from None
    check_name(params["host"], "host")
    check_name(params["check"], "check")
    for option, low in (("after", 1), ("timeout", 1), ("attempts", 1)):
        if params[option] < low:
            raise StackopsError(f"{option} must be at least {low}, not {params[option]}.")
    if params["after"] > 1 and not params["state_dir"] and not params["event"]:
        raise StackopsError(
            f"after {params['after']} counts failed runs in a row, which needs a state_dir to keep the count in; "
            "give state_dir, or after 1."
        )
    for number, finding in enumerate(params["findings"], 1):
        if finding.get("severity") not in ("ok", "warning", "critical") or not finding.get("message"):
            raise StackopsError(
                f"Finding {number} needs a message and a severity of ok, warning or critical, not "
                f"{finding.get('severity')!r}."
            )
    return options_of(
        Options,
        params,
        rules=tuple(check_rules(params["priorities"]) + DEFAULT_RULES),
    )


def send(module: AnsibleModule, o: Options, payload: dict[str, t.Any]) -> None:
    """POST the payload; bounded tries on what may pass (no answer, 429, 5xx); an error never shows the URL."""
    last = ""
    for attempt in range(o.attempts):
        if attempt:
            time.sleep(1)
        try:
            open_url(
                o.url,
                data=module.jsonify(payload),
                headers={"Content-Type": "application/json"},
                method="POST",
                timeout=o.timeout,
                validate_certs=o.validate_certs,
                http_agent="stackops.runbooks.notify",
                follow_redirects="none",
            ).read()
            return
        except HTTPError as exc:
            last = f"it answered HTTP {exc.code} {exc.reason}"
            if exc.code != 429 and exc.code < 500:
                break
        # urllib, ssl, socket and ansible.module_utils.urls errors alike (the latter are no OSError).
        except Exception as exc:
            reason = getattr(exc, "reason", exc)
            last = f"it could not be reached ({str(reason).replace(o.url, where(o.url))})"
    raise StackopsError(f"The webhook at {where(o.url)} was not told: {last}.")


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    findings = collect(list(o.findings), list(o.critical), list(o.warning), o.check, list(o.rules))
    store = StateFile(o.state_dir, o.host) if o.state_dir and not o.event else None
    if store is None or module.check_mode:
        previous = store.read().get(o.check) if store and store.check_directory(create=False) else None
        return decide(module, o, findings, previous, store, now)
    with store:
        return decide(module, o, findings, store.read().get(o.check), store, now)


def alert_of(
    o: Options, event: str | None, findings: list[dict[str, t.Any]], state: dict[str, t.Any], now: str
) -> dict[str, t.Any]:
    """What the payloads are made of."""
    return {
        "event": event,
        "host": o.host,
        "check": o.check,
        "playbook": o.playbook or o.check,
        "status": o.status,
        "severity": findings[0]["priority"] if findings else None,
        "findings": findings,
        "consecutive_failures": state.get("failures", 0),
        "since": state.get("since"),
        "time": now,
        "duration_s": o.duration_s,
        "awx_job_id": o.awx_job_id,
        "title": o.title,
        "fields": o.fields,
    }


def decide(
    module: AnsibleModule,
    o: Options,
    findings: list[dict[str, t.Any]],
    previous: dict[str, t.Any] | None,
    store: StateFile | None,
    now: str,
) -> dict[str, t.Any]:
    """Advance the state, and outside check mode send what it calls for and keep the state (as unsent when the
    webhook was not told, so that the next run tries again)."""
    # An announcement is sent as it is; a verdict as the check's state says.
    state: dict[str, t.Any] = {}
    event: str | None = o.event
    if not event:
        state, event = advance(previous, o.status, o.notify_on, o.after, o.recovery, now)
    alert = alert_of(o, event, findings, state, now)
    payload = PAYLOADS[o.format](alert) if event else None
    moved = store is not None and state != (previous or {})
    result = {
        "changed": bool(event) or moved,
        "event": event,
        "sent": False,
        "severity": alert["severity"],
        "consecutive_failures": alert["consecutive_failures"],
        "findings": findings,
        "state": state,
        "state_path": store.path if store else None,
        "payload": payload,
    }
    if module.check_mode:
        return result
    error = None
    if payload is not None:
        try:
            send(module, o, payload)
            result["sent"] = True
        except StackopsError as exc:
            error, state = exc, unsent(state, previous)
    if store is not None and state != (previous or {}):
        checks = store.read()
        checks[o.check] = state
        store.write(checks, o.host)
    if error is not None:
        raise StackopsError(str(error), state=state, event=event, findings=findings)
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
