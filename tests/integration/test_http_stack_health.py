"""http_health and stack_health on the lab: nginx with TLS, the app's WebSocket and CORS routes, real certificates;
each finding induced for real (untrusted and near-expiry certificates, a refused origin, a failed upgrade, a closed
port, a crash-looping container, a broken nginx config)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from harness.labctl import lab_up
from harness.paths import lab_credentials, lab_hosts, lab_postgres_thresholds
from harness.playbook import assert_module_read_only, run_module

pytestmark = pytest.mark.lab_hosts("lab2")
# Read from the declaration: the scheduler reads its literal without importing the module.
HOST_NAME = pytestmark.args[0]
HOST = lab_hosts()[HOST_NAME]

HTTP = "stackops.runbooks.http_health"
STACK = "stackops.runbooks.stack_health"
ORIGIN = "https://app.stackops.test"


def ca(host: lab.Host) -> str:
    return str(host.dir / "nginx" / "tls" / "lab.crt")


def lab_endpoints(host: lab.Host) -> list[dict]:
    return [
        {"name": "readiness", "url": f"http://{host.addr}/health/ready", "json": {"status": "ready"}},
        {"name": "tls", "url": f"https://{host.addr}/health"},
        {"name": "websocket", "url": f"http://{host.addr}/ws/", "websocket": True},
        {"name": "cors", "url": f"http://{host.addr}/api/customers/1", "cors_origin": ORIGIN, "cors_method": "POST"},
    ]


def check(module: str, args: dict) -> dict:
    run = run_module(module, args, hosts=HOST_NAME)
    return {**run.result(HOST_NAME), "failed": HOST_NAME in run.failed_hosts()}


def messages(result: dict) -> list[str]:
    return [f["message"] for f in result["findings"]]


@pytest.mark.matrix
def test_lab_endpoints_pass_with_tls_websocket_and_cors() -> None:
    runs = assert_module_read_only(HTTP, {"endpoints": lab_endpoints(HOST), "ca_path": ca(HOST)}, hosts=HOST_NAME)
    result = runs[1].result(HOST_NAME)
    assert (result["status"], result["findings"], result["is_available"]) == ("ok", [], True)
    endpoints = result["endpoints"]
    assert all(e["ok"] for e in endpoints.values())
    tls = endpoints["tls"]["tls"]
    assert tls["verified"] is True and tls["subject"] == f"{HOST_NAME}.stackops.test" and 300 < tls["days_left"] <= 365
    assert endpoints["websocket"]["status"] == 101 and endpoints["websocket"]["websocket"]["accept_ok"] is True
    assert endpoints["cors"]["status"] == 204 and endpoints["cors"]["cors"]["allow_origin"] == ORIGIN


def test_untrusted_and_soon_expiring_certificates_are_critical() -> None:
    tls = [{"name": "tls", "url": f"https://{HOST.addr}/health"}]
    untrusted = check(HTTP, {"endpoints": tls, "fail_on": "never"})
    assert untrusted["status"] == "critical"
    assert any("tls: certificate not trusted: self-signed certificate" in m for m in messages(untrusted))
    # The endpoint is still asked, so its answer and the certificate's dates are reported.
    assert untrusted["endpoints"]["tls"]["status"] == 200 and untrusted["endpoints"]["tls"]["tls"]["verified"] is False

    expiring = check(HTTP, {"endpoints": tls, "ca_path": ca(HOST), "thresholds": {"tls_expiry_critical_days": 400}})
    assert expiring["failed"] and expiring["status"] == "critical"
    # The lab's certificate is valid 365 days from its making, so its days left depend on when the test runs.
    assert re.search(r"days left is 36[45](\.\d)?, at or below the critical threshold 400", expiring["msg"])


@contextlib.contextmanager
def tls_server(addr: str, cert: Path, key: Path) -> Iterator[int]:
    """A real TLS HTTP server on a free loopback port, serving 200 with the given certificate."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((addr, 0), Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_certificate_with_three_days_left_is_critical_with_its_date(tmp_path: Path) -> None:
    cert, key = tmp_path / "short.crt", tmp_path / "short.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3", "-keyout", str(key), "-out",
         str(cert), "-subj", "/CN=short.stackops.test", "-addext", f"subjectAltName=IP:{HOST.addr}"],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copy(cert, HOST.dir / "short-lived.crt")
    try:
        with tls_server(HOST.addr, cert, key) as port:
            endpoint = {"name": "short", "url": f"https://{HOST.addr}:{port}/"}
            result = check(HTTP, {"endpoints": [endpoint], "ca_path": str(HOST.dir / "short-lived.crt")})
    finally:
        (HOST.dir / "short-lived.crt").unlink()
    assert result["failed"] and result["status"] == "critical"
    (finding,) = result["findings"]
    assert finding["check"] == "tls" and 2.9 < finding["value"] <= 3.0
    assert "short certificate short.stackops.test (expires " in finding["message"]


def test_refused_origin_failed_upgrade_and_closed_port_are_findings() -> None:
    endpoints = [
        {"name": "cors", "url": f"http://{HOST.addr}/api/customers/1", "cors_origin": "https://evil.example"},
        {"name": "not websocket", "url": f"http://{HOST.addr}/health", "websocket": True},
        {"name": "closed", "url": f"http://{HOST.addr}:9/", "severity": "warning"},
        {"name": "wrong field", "url": f"http://{HOST.addr}/health", "json": {"status": "ready"}},
    ]
    result = check(HTTP, {"endpoints": endpoints, "timeout": 2, "fail_on": "never"})
    assert not result["failed"] and result["status"] == "critical" and result["is_available"] is False
    found = messages(result)
    assert "cors: does not allow origin https://evil.example (Access-Control-Allow-Origin: None)" in found
    assert "not websocket: answered 200, expected 101" in found
    assert any(m.startswith(f"closed: http://{HOST.addr}:9/ did not answer: ") for m in found)
    assert 'wrong field: expected {"status": "ready"}, got {"status": "ok"}' in found
    severities = {f["message"].split(":")[0]: f["severity"] for f in result["findings"]}
    assert severities["closed"] == "warning" and severities["cors"] == "critical"


@pytest.mark.parametrize(
    ("endpoints", "error"),
    [
        ([{"url": f"ftp://{HOST.addr}/"}], f"Endpoint URL 'ftp://{HOST.addr}/' is not an http:// or https:// URL"),
        ([{"url": f"http://{HOST.addr}/"}] * 2, f"Two endpoints are named 'http://{HOST.addr}/'"),
        ([{"url": f"http://{HOST.addr}/", "websocket": True, "cors_origin": ORIGIN}], "more than one of websocket"),
    ],
)
def test_bad_endpoints_are_refused_before_anything_is_asked(endpoints: list, error: str) -> None:
    result = check(HTTP, {"endpoints": endpoints})
    assert result["failed"] and error in result["msg"]


def stack_args(host: lab.Host, **extra: object) -> dict:
    creds = lab_credentials(host.name)
    return {
        "project_src": str(host.dir),
        "project_name": host.project,
        "nginx_service": "nginx",
        "nginx_test": ["nginx", "-t", "-c", "/etc/nginx/stackops/nginx.conf"],
        "postgres": {
            "login_host": host.addr,
            "login_password": creds["stackops_pg_password"],
            "login_db": "app",
            "thresholds": lab_postgres_thresholds(),
        },
        "redis": {"login_host": host.addr, "login_password": creds["stackops_redis_password"]},
        "http": {"endpoints": lab_endpoints(host), "ca_path": ca(host)},
        **extra,
    }


@pytest.mark.matrix
def test_stack_health_reads_every_part_at_once_and_never_changes() -> None:
    runs = assert_module_read_only(STACK, stack_args(HOST), hosts=HOST_NAME)
    result = runs[1].result(HOST_NAME)
    assert (result["status"], messages(result)) == ("ok", [])
    assert result["parts"] == {"services": "ok", "nginx": "ok", "postgres": "ok", "redis": "ok", "http": "ok"}
    assert set(result["services"]) == {"app", "nginx", "postgres", "redis"}
    assert result["nginx"]["ok"] is True and "test is successful" in result["nginx"]["output"]
    assert result["postgres"]["server"]["version"].startswith("15.") and result["redis"]["server"]["role"]
    # Run concurrently: the whole takes about as long as the slowest part, not their sum.
    elapsed = result["elapsed_ms"]
    parts = [elapsed[p] for p in ("services", "postgres", "redis", "http")]
    assert elapsed["total"] < sum(parts)
    # No password in the result (the module's invocation masks them).
    text = str(result)
    assert lab_credentials(HOST_NAME)["stackops_pg_password"] not in text
    assert lab_credentials(HOST_NAME)["stackops_redis_password"] not in text


def test_stack_health_names_each_broken_part() -> None:
    conf = HOST.dir / "nginx" / "conf.d" / "app.conf"
    original = conf.read_text()
    lab.compose(HOST, "stop", "redis")
    # A config that fails nginx -t, left on disk but not reloaded: the running nginx still serves the old one.
    conf.write_text(original.replace("proxy_read_timeout 60s;", "proxy_read_timeout sixty;"))
    try:
        result = check(STACK, stack_args(HOST, fail_on="never"))
    finally:
        conf.write_text(original)
        lab_up()
    assert result["status"] == "critical" and result["is_available"] is False
    parts = result["parts"]
    assert (parts["redis"], parts["nginx"], parts["postgres"], parts["services"]) == (
        "critical",
        "critical",
        "ok",
        "critical",
    )
    checks = {f["check"] for f in result["findings"]}
    assert {"redis.availability", "nginx", "services", "http.status"} <= checks
    found = messages(result)
    assert any(m.startswith("nginx -t failed: ") and "[emerg]" in m and "proxy_read_timeout" in m for m in found)
    assert f"{HOST.project}-redis-1 is exited (exit code 0)" in found


def app_pid(container: str, restarts: int) -> int:
    """The container's main pid once it runs again after that many restarts (never 0: kill(0) is this group)."""
    for _attempt in range(100):
        count, running, pid = subprocess.run(
            ["docker", "inspect", "--format", "{{.RestartCount}} {{.State.Running}} {{.State.Pid}}", container],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        if int(count) == restarts and running == "true" and int(pid) > 0:
            return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"{container} did not run again after {restarts} restarts")


def test_a_crash_looping_container_is_counted_and_judged() -> None:
    app = lab.compose(HOST, "ps", "-q", "app").stdout.strip()
    try:
        for crash in (1, 2):
            # The app's process killed from outside is a crash to Docker (unlike `docker kill`, which counts as a
            # stop by hand): the restart policy brings the container back and counts it.
            os.kill(app_pid(app, crash - 1), signal.SIGKILL)
        app_pid(app, 2)
        result = check(STACK, {"project_src": str(HOST.dir), "project_name": HOST.project, "fail_on": "never"})
    finally:
        # A restart by hand resets the count; then wait until the app is healthy again.
        lab.compose(HOST, "restart", "app")
        lab.compose(HOST, "up", "--detach", "--wait", "app")
    assert result["services"]["app"]["restarts"] == 2
    assert "restarts by Docker of service app is 2, at or above the warning threshold 1" in messages(result)
    after = check(STACK, {"project_src": str(HOST.dir), "project_name": HOST.project})
    assert after["services"]["app"]["restarts"] == 0 and after["status"] == "ok"


@contextlib.contextmanager
def prometheus(addr: str, workdir: Path) -> Iterator[str]:
    """A real Prometheus on a loopback address that scrapes itself and a target that does not answer; yields its
    URL once both targets have been scraped."""
    port = 19090
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: prometheus\n    static_configs: [{{targets: ['{addr}:{port}']}}]\n"
        f"  - job_name: dead\n    static_configs: [{{targets: ['{addr}:9']}}]\n"
    )
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--web.listen-address={addr}:{port}",
         f"--storage.tsdb.path={workdir / 'data'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://{addr}:{port}"
    try:
        for _attempt in range(100):
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=1) as answer:  # noqa: S310 (http URL)
                    targets = json.load(answer)["data"]["activeTargets"]
                if len(targets) == 2 and all(t["health"] != "unknown" for t in targets):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("Prometheus did not scrape its two targets within 20 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_prometheus_targets_that_are_down_are_named(tmp_path: Path) -> None:
    with prometheus(HOST.addr, tmp_path) as url:
        endpoint = {"name": "prometheus", "url": url, "prometheus_targets": True, "severity": "warning"}
        result = check(HTTP, {"endpoints": [endpoint]})
    assert not result["failed"] and result["status"] == "warning"
    targets = result["endpoints"]["prometheus"]["targets"]
    assert (targets["active"], targets["up"]) == (2, 1)
    assert [(d["job"], d["instance"]) for d in targets["down"]] == [("dead", f"{HOST.addr}:9")]
    (message,) = messages(result)
    assert message.startswith(f"prometheus: 1 of 2 Prometheus targets are not up: dead/{HOST.addr}:9 (")
    assert "connection refused" in message
