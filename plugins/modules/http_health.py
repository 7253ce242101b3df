#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: http_health
short_description: Ask a stack's HTTP endpoints at once and judge the answers, TLS certificates included
version_added: 0.1.0
description:
  - Asks every endpoint in one module run, concurrently. It replaces the runbooks' C(curl -f /health),
    C(curl /health/ready), CORS preflight and WebSocket upgrade checks with C(curl -i), C(openssl s_client) for
    the certificate, and a look at Prometheus' targets page.
  - Each answer is judged on its status code, the JSON fields expected in its body, and its response time. For
    C(https) URLs the certificate is verified and its days to expiry are judged (the runbooks alert under 7 days).
  - An endpoint can be a WebSocket upgrade (the answer must be C(101) with the right C(Sec-WebSocket-Accept)), a
    CORS preflight (an C(OPTIONS) that must allow the origin and method), or Prometheus, whose active scrape targets
    must all be up.
  - Findings have the same shape as M(stackops.runbooks.pg_health)'s. An endpoint that does not answer is a finding
    of its O(endpoints[].severity), not a crash.
  - Redirects are not followed, and no proxy is used, so the answer judged is the endpoint's own.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.endpoints
  - stackops.runbooks.health
  - stackops.runbooks.attributes
notes:
  - The module runs where the task runs. Run it on the stack host to see what its neighbours see, or delegate it
    to a host outside to see what users see.
"""

EXAMPLES = r"""
- name: Ask the app's health endpoints through nginx, and the certificate it serves
  stackops.runbooks.http_health:
    endpoints:
      - name: liveness
        url: https://app.example.com/health
      - name: readiness
        url: https://app.example.com/health/ready
        json: {status: ready, database: ok, redis: ok}
      - name: websocket
        url: https://app.example.com/ws/
        websocket: true
      - name: cors
        url: https://api.example.com/api/orders
        cors_origin: https://app.example.com
        cors_method: POST
  register: http

- name: Monitoring checks that only warn, with a token for Grafana
  stackops.runbooks.http_health:
    endpoints:
      - name: prometheus
        url: http://127.0.0.1:9090
        prometheus_targets: true
        severity: warning
      - name: grafana datasource
        url: http://127.0.0.1:3000/api/datasources/uid/prometheus/health
        headers:
          Authorization: "Bearer {{ grafana_token }}"
        json: {status: OK}
        severity: warning
    fail_on: never
"""

RETURN = r"""
is_available:
  description: Whether every endpoint answered with an HTTP response (whatever its status).
  returned: always
  type: bool
status:
  description: The verdict, the worst severity among RV(findings).
  returned: always
  type: str
  sample: ok
findings:
  description: One entry per problem, each with a reason (C(check), C(severity), C(message), C(value),
    C(threshold)).
  returned: always
  type: list
  elements: dict
endpoints:
  description:
    - Per endpoint name, what it answered. C(status) is the code (none when it did not answer), C(elapsed_ms) the
      time to the whole answer, C(ok) whether it passed, C(error) why not. C(json) is the body when it is a JSON
      object. C(tls), C(websocket), C(cors) and C(targets) appear for the checks that apply.
  returned: always
  type: dict
  sample:
    readiness:
      url: http://127.0.2.1/health/ready
      status: 200
      elapsed_ms: 4.1
      ok: true
      json: {status: ready, database: ok, redis: ok}
    site:
      url: https://127.0.2.1/health
      status: 200
      elapsed_ms: 6.3
      ok: true
      tls: {subject: lab1.stackops.test, issuer: lab1.stackops.test, not_before: "2026-11-23T08:00:00Z",
            not_after: "2027-11-23T08:00:00Z", days_left: 365.0, verified: true}
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._health import finish, health_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._http import (
    SECTIONS,
    check_inputs,
    http_argument_spec,
    read_health,
)


def argument_spec() -> dict[str, t.Any]:
    spec = http_argument_spec()
    spec.update(health_argument_spec(SECTIONS))
    return spec


def run_module(module: t.Any) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    result, findings = read_health(o)
    return finish(findings, result, o.fail_on)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
