# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The endpoints of http_health and how they are judged (plugins/module_utils/_http.py).
    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - The endpoints to ask. Names must be unique.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: What findings call the endpoint. Default is its URL.
        type: str
      url:
        description: An C(http) or C(https) URL.
        type: str
        required: true
      method:
        description: The request method. A CORS preflight always uses C(OPTIONS).
        type: str
        default: GET
      headers:
        description: Request headers. Their values are never returned or logged, so they can carry a token.
        type: dict
        default: {}
      status:
        description:
          - The status codes that count as healthy. Default is C(200); C(101) with C(websocket);
            C(200) and C(204) with C(cors_origin).
        type: list
        elements: int
      json:
        description:
          - Fields the body must hold, as a JSON object, with these values (top-level keys, compared for equality).
        type: dict
      websocket:
        description:
          - Send a WebSocket upgrade handshake; the server must switch protocols with the right
            C(Sec-WebSocket-Accept).
        type: bool
        default: false
      cors_origin:
        description:
          - Send a CORS preflight from this origin. The answer must allow the origin (or C(*)) and
            C(cors_method).
        type: str
      cors_method:
        description: The method the CORS preflight asks for.
        type: str
        default: GET
      prometheus_targets:
        description:
          - The URL is a Prometheus server; its active targets are read from C(/api/v1/targets) and every target
            that is not up is a finding.
        type: bool
        default: false
      severity:
        description: The severity of this endpoint's findings when it fails.
        type: str
        default: critical
        choices: [critical, warning]
  timeout:
    description: Seconds to wait for each endpoint's connection and answer.
    type: float
    default: 5
  validate_certs:
    description:
      - Verify C(https) certificates against C(ca_path) or the system's trust store. A certificate that fails is a
        critical finding; the endpoint is still asked, so the rest of its checks are reported.
    type: bool
    default: true
  ca_path:
    description: A PEM file of the certificate authorities to trust instead of the system's.
    type: path
  checks:
    description:
      - The judgements to make. V(status) is the status code, body and protocol checks, V(latency) the response
        time, V(tls) the certificate. Default is all.
    type: list
    elements: str
    choices: [status, latency, tls]
  thresholds:
    description:
      - Numbers that override the defaults. Unknown names are refused with the list of valid ones.
      - C(response_warning_ms) 1000 and C(response_critical_ms) 5000.
      - C(tls_expiry_warning_days) 30 and C(tls_expiry_critical_days) 7.
    type: dict
    default: {}
"""

    # stack_health nests these options under one dictionary option: plugins/doc_fragments/stack_health.py, made
    # from this file by tests/tools/gen_fragments.py.
