# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""What http_health asks and how it judges the answers, shared with stack_health: endpoints asked concurrently
over http.client (no redirects, no proxies), status, JSON fields, WebSocket and CORS handshakes, Prometheus targets,
response time and the TLS certificate."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import time
import typing as t
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ansible_collections.stackops.runbooks.plugins.module_utils._common import (
    CONTROL_CHARACTERS,
    StackopsError,
    options_of,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    Finding,
    HealthOptions,
    merge_thresholds,
    rate,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._tls import CertificateError, parse_der

SECTIONS = ["status", "latency", "tls"]
DEFAULTS = {
    "response_warning_ms": 1000,
    "response_critical_ms": 5000,
    "tls_expiry_warning_days": 30,
    "tls_expiry_critical_days": 7,
}
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BODY_LIMIT = 1024 * 1024
SIMPLE_METHODS = ("GET", "HEAD", "POST")
# RFC 9110 token: what a method or a header name may be. Anything else could end the request line or a header.
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class Endpoint(t.NamedTuple):
    name: str
    url: str
    method: str
    headers: dict[str, str]
    expected: list[int]
    fields: dict[str, t.Any] | None
    websocket: bool
    cors_origin: str | None
    cors_method: str
    prometheus: bool
    severity: str


@dataclass(frozen=True)
class Health(HealthOptions):
    """http_health's options (stack_health's http option) once checked: what one health read takes."""

    endpoints: tuple[Endpoint, ...] = field(repr=False)  # their headers may hold tokens
    timeout: float
    validate_certs: bool
    ca_path: str | None


def check_inputs(params: Mapping[str, t.Any]) -> Health:
    """Bad input is refused before anything is asked."""
    thresholds = merge_thresholds(DEFAULTS, params["thresholds"])
    return options_of(
        Health, params, endpoints=plan(params), thresholds=thresholds, fail_on=params.get("fail_on", "critical")
    )


def plan(options: Mapping[str, t.Any]) -> tuple[Endpoint, ...]:
    """The requests to make, with their defaults filled in (part of the input check)."""
    if options["timeout"] <= 0:
        raise StackopsError(f"timeout must be more than 0 seconds, not {options['timeout']}.")
    if options["ca_path"] and not os.path.isfile(options["ca_path"]):
        raise StackopsError(f"ca_path {options['ca_path']} is not a file; give the PEM file of the CAs to trust.")
    planned, names = [], set()
    for entry in options["endpoints"]:
        url = entry["url"]
        check_url(url)
        name = entry["name"] or url
        if name in names:
            raise StackopsError(f"Two endpoints are named {name!r}; give each a unique name.")
        names.add(name)
        check_request(name, entry)
        if sum((entry["websocket"], bool(entry["cors_origin"]), entry["prometheus_targets"])) > 1:
            raise StackopsError(
                f"Endpoint {name!r} sets more than one of websocket, cors_origin and prometheus_targets; "
                "give each check its own endpoint entry."
            )
        default_status = [101] if entry["websocket"] else [200, 204] if entry["cors_origin"] else [200]
        method = "OPTIONS" if entry["cors_origin"] else entry["method"].upper()
        if entry["prometheus_targets"]:
            url = url.rstrip("/") + "/api/v1/targets?state=active"
        planned.append(
            Endpoint(
                name=name,
                url=url,
                method=method,
                headers={str(k): str(v) for k, v in entry["headers"].items()},
                expected=entry["status"] or default_status,
                fields=entry["json"],
                websocket=entry["websocket"],
                cors_origin=entry["cors_origin"],
                cors_method=entry["cors_method"].upper(),
                prometheus=entry["prometheus_targets"],
                severity=entry["severity"],
            )
        )
    return tuple(planned)


def check_url(url: str) -> t.Any:
    """The URL's parts; refused when http.client could not send it as it reads (a space or a CRLF would end the
    request line and start a header) or the port is not one."""
    if CONTROL_CHARACTERS.search(url) or " " in url:
        raise StackopsError(
            f"Endpoint URL {url!r} holds a space or a control character; percent-encode it (%20, %0D%0A)."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StackopsError(f"Endpoint URL {url!r} is not an http:// or https:// URL with a host.")
    try:
        port = parts.port
    except ValueError as exc:
        raise StackopsError(f"Endpoint URL {url!r} has a bad port ({exc}); give a port from 1 to 65535.") from None
    if port == 0:
        raise StackopsError(f"Endpoint URL {url!r} has port 0; give a port from 1 to 65535.")
    return parts


def check_request(name: str, entry: dict[str, t.Any]) -> None:
    """The parts of the request that go on the wire as they are: each must be what HTTP allows there."""
    for option in ("method", "cors_method"):
        if not TOKEN.match(entry[option]):
            raise StackopsError(
                f"Endpoint {name!r}: {option} {entry[option]!r} is not an HTTP method (one word such as GET or HEAD)."
            )
    for header, value in entry["headers"].items():
        if not TOKEN.match(str(header)):
            raise StackopsError(f"Endpoint {name!r}: header name {header!r} is not a token (letters, digits, -).")
        # The value may be a secret (an Authorization header): it is not repeated here.
        if CONTROL_CHARACTERS.search(str(value)):
            raise StackopsError(
                f"Endpoint {name!r}: the value of header {header} holds a control character; a newline would start "
                "another header. Remove it."
            )
    if entry["cors_origin"] and (CONTROL_CHARACTERS.search(entry["cors_origin"]) or " " in entry["cors_origin"]):
        raise StackopsError(f"Endpoint {name!r}: cors_origin {entry['cors_origin']!r} is not an origin.")
    wrong = [code for code in entry["status"] or [] if not 100 <= code <= 599]
    if wrong:
        raise StackopsError(
            f"Endpoint {name!r}: status {', '.join(map(str, wrong))} is not an HTTP status; give codes from 100 to 599."
        )


def request_headers(endpoint: Endpoint) -> tuple[dict[str, str], str | None]:
    """The headers to send, and the Sec-WebSocket-Accept the answer must carry (WebSocket only)."""
    headers = {"User-Agent": "stackops.runbooks.http_health", "Connection": "close", **endpoint.headers}
    accept = None
    if endpoint.websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        headers.update(
            {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        )
        accept = base64.b64encode(
            hashlib.sha1((key + WEBSOCKET_GUID).encode(), usedforsecurity=False).digest()
        ).decode()
    if endpoint.cors_origin:
        headers.update({"Origin": endpoint.cors_origin, "Access-Control-Request-Method": endpoint.cors_method})
    return headers, accept


def tls_context(verify: bool, ca_path: str | None) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context(cafile=ca_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(parts: t.Any, timeout: float, verify: bool, ca_path: str | None) -> tuple[http.client.HTTPConnection, dict]:
    """An open connection, and what the TLS handshake showed (empty for http). A certificate that fails
    verification is noted and the connection made again without verification, so the endpoint is still judged."""
    if parts.scheme == "http":
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        conn.connect()
        return conn, {}
    tls: dict[str, t.Any] = {"verified": verify}
    try:
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=timeout, context=tls_context(verify, ca_path)
        )
        conn.connect()
    except ssl.SSLCertVerificationError as exc:
        tls.update(verified=False, error=exc.verify_message or str(exc))
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=timeout, context=tls_context(False, None)
        )
        conn.connect()
    der = conn.sock.getpeercert(binary_form=True) if isinstance(conn.sock, ssl.SSLSocket) else None
    try:
        tls["certificate"] = parse_der(der).as_dict() if der else None
    except CertificateError as exc:
        tls["certificate"], tls["error"] = None, str(exc)
    return conn, tls


def ask(endpoint: Endpoint, timeout: float, verify: bool, ca_path: str | None) -> dict[str, t.Any]:
    """One request; what came back, or why nothing did. Never raises for the endpoint's own faults."""
    parts = urlsplit(endpoint.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers, accept = request_headers(endpoint)
    answer: dict[str, t.Any] = {"url": endpoint.url, "method": endpoint.method, "status": None}
    started = time.monotonic()
    conn = None
    try:
        conn, tls = connect(parts, timeout, verify, ca_path)
        if tls:
            answer["tls"] = tls
        conn.request(endpoint.method, path, headers=headers)
        response = conn.getresponse()
        answer["status"] = response.status
        body = b"" if response.status == 101 else response.read(BODY_LIMIT)
        answer["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        answer["headers"] = {k.lower(): v for k, v in response.getheaders()}
        answer["body"] = body
        answer["accept_expected"] = accept
    except (OSError, http.client.HTTPException) as exc:
        answer["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        answer["error"] = describe(exc)
    finally:
        if conn is not None:
            conn.close()
    return answer


def describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc).strip() or type(exc).__name__


def parse_json(body: bytes) -> t.Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def judge_status(endpoint: Endpoint, answer: dict[str, t.Any]) -> tuple[dict[str, t.Any], list[str]]:
    """What the result shows of the answer, and the problems found in it (status, body and protocol)."""
    shown: dict[str, t.Any] = {}
    problems = []
    status, headers, body = answer["status"], answer.get("headers", {}), answer.get("body", b"")
    if status not in endpoint.expected:
        problems.append(f"answered {status}, expected {' or '.join(str(s) for s in endpoint.expected)}")
    document = parse_json(body) if body else None
    if isinstance(document, dict) and not endpoint.prometheus:
        shown["json"] = document
    if endpoint.fields is not None:
        got = {k: document.get(k) for k in endpoint.fields} if isinstance(document, dict) else None
        if got != endpoint.fields:
            expected = json.dumps(endpoint.fields, sort_keys=True)
            problems.append(f"expected {expected}, got {json.dumps(got, sort_keys=True)}")
    if endpoint.websocket:
        accepted = headers.get("sec-websocket-accept")
        shown["websocket"] = {"upgrade": headers.get("upgrade"), "accept_ok": accepted == answer["accept_expected"]}
        if status == 101 and accepted != answer["accept_expected"]:
            problems.append("switched protocols without the right Sec-WebSocket-Accept")
    if endpoint.cors_origin:
        allow_origin = headers.get("access-control-allow-origin")
        allow_methods = [m.strip().upper() for m in headers.get("access-control-allow-methods", "").split(",") if m]
        shown["cors"] = {"allow_origin": allow_origin, "allow_methods": allow_methods}
        if allow_origin not in (endpoint.cors_origin, "*"):
            problems.append(
                f"does not allow origin {endpoint.cors_origin} (Access-Control-Allow-Origin: {allow_origin})"
            )
        method_ok = endpoint.cors_method in allow_methods or "*" in allow_methods
        if not method_ok and not (endpoint.cors_method in SIMPLE_METHODS and not allow_methods):
            problems.append(
                f"does not allow method {endpoint.cors_method} (Access-Control-Allow-Methods: {allow_methods})"
            )
    if endpoint.prometheus and status in endpoint.expected:
        targets, found = prometheus_targets(document)
        shown["targets"] = targets
        problems += found
    return shown, problems


def prometheus_targets(document: t.Any) -> tuple[dict[str, t.Any], list[str]]:
    try:
        active = document["data"]["activeTargets"]
    except (KeyError, TypeError):
        return {}, ["is not a Prometheus /api/v1/targets answer"]
    down = [
        {
            "job": target.get("labels", {}).get("job", ""),
            "instance": target.get("labels", {}).get("instance", ""),
            "health": target.get("health"),
            "last_error": target.get("lastError", ""),
        }
        for target in active
        if target.get("health") != "up"
    ]
    summary = {"active": len(active), "up": len(active) - len(down), "down": down}
    if not down:
        return summary, []
    listed = ", ".join(f"{d['job']}/{d['instance']} ({d['last_error'] or d['health']})" for d in down)
    return summary, [f"{len(down)} of {len(active)} Prometheus targets are not up: {listed}"]


def judge(
    endpoint: Endpoint, answer: dict[str, t.Any], th: dict[str, float], sections: Sequence[str]
) -> tuple[dict[str, t.Any], list[Finding]]:
    result: dict[str, t.Any] = {k: answer[k] for k in ("url", "method", "status", "elapsed_ms") if k in answer}
    findings: list[Finding] = []
    if answer.get("error"):
        result.update(ok=False, error=answer["error"])
        message = f"{endpoint.name}: {endpoint.url} did not answer: {answer['error']}"
        return result, [Finding("status", endpoint.severity, message)]
    problems: list[str] = []
    if "status" in sections:
        shown, problems = judge_status(endpoint, answer)
        result.update(shown)
        findings += [Finding("status", endpoint.severity, f"{endpoint.name}: {p}", answer["status"]) for p in problems]
    if "latency" in sections:
        findings += rate(
            "latency",
            f"{endpoint.name} response time",
            answer["elapsed_ms"],
            th["response_warning_ms"],
            th["response_critical_ms"],
            " ms",
        )
    tls = answer.get("tls")
    if tls:
        result["tls"] = {**(tls.get("certificate") or {}), "verified": tls["verified"]}
        if tls.get("error"):
            result["tls"]["error"] = tls["error"]
        if "tls" in sections:
            findings += judge_tls(endpoint, tls, th)
    result["ok"] = not problems and not any(f.severity != "ok" for f in findings)
    return result, findings


def judge_tls(endpoint: Endpoint, tls: dict[str, t.Any], th: dict[str, float]) -> list[Finding]:
    findings = []
    if tls.get("error"):
        findings.append(Finding("tls", "critical", f"{endpoint.name}: certificate not trusted: {tls['error']}"))
    certificate = tls.get("certificate")
    if certificate:
        label = f"{endpoint.name} certificate {certificate['subject']} (expires {certificate['not_after']}): days left"
        findings += rate(
            "tls",
            label,
            certificate["days_left"],
            th["tls_expiry_warning_days"],
            th["tls_expiry_critical_days"],
            higher_is_worse=False,
        )
    return findings


def http_argument_spec() -> dict[str, t.Any]:
    """The endpoints and how to reach them; the health options (checks, thresholds, fail_on) come separately."""
    return {
        "endpoints": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str"},
                "url": {"type": "str", "required": True},
                "method": {"type": "str", "default": "GET"},
                "headers": {"type": "dict", "default": {}, "no_log": True},
                "status": {"type": "list", "elements": "int"},
                "json": {"type": "dict"},
                "websocket": {"type": "bool", "default": False},
                "cors_origin": {"type": "str"},
                "cors_method": {"type": "str", "default": "GET"},
                "prometheus_targets": {"type": "bool", "default": False},
                "severity": {"type": "str", "default": "critical", "choices": ["critical", "warning"]},
            },
        },
        "timeout": {"type": "float", "default": 5},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
    }


def read_health(o: Health) -> tuple[dict[str, t.Any], list[Finding]]:
    """Every endpoint asked at once and judged."""
    sections = o.checks or SECTIONS
    with ThreadPoolExecutor(max_workers=min(8, len(o.endpoints)) or 1) as pool:
        answers = list(pool.map(lambda e: ask(e, o.timeout, o.validate_certs, o.ca_path), o.endpoints))
    th = dict(o.thresholds)
    results: dict[str, t.Any] = {}
    findings: list[Finding] = []
    for endpoint, answer in zip(o.endpoints, answers):
        results[endpoint.name], found = judge(endpoint, answer, th, sections)
        findings += found
    available = all(a.get("error") is None for a in answers)
    return {"is_available": available, "endpoints": results}, findings
