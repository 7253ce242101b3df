"""nginx_config on the lab's nginx (a compose service): changes are tested before they go live, applied with proof,
and rolled back when nginx cannot apply them; a rejected candidate leaves the live file byte for byte."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import shutil
import threading
import typing as t
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from harness.playbook import assert_module_four_step, run_module
from harness.snapshot import diff, snapshot
from harness.web import nginx_workers, reload_nginx, request

pytestmark = pytest.mark.lab_hosts("lab2")

MODULE = "stackops.runbooks.nginx_config"
VISITOR = "127.0.2.20"  # a client address no test lets through


@pytest.fixture
def lab2(hosts: dict) -> Iterator[lab.Host]:
    """lab2's site file, put back as it was (and nginx reloaded) after the test."""
    host = hosts["lab2"]
    site = host.dir / "nginx" / "conf.d" / "app.conf"
    original = site.read_bytes()
    yield host
    if site.read_bytes() != original:
        site.write_bytes(original)
        reload_nginx(host)
    for backup in site.parent.glob("app.conf.*~"):
        backup.unlink()


def site(host: lab.Host) -> Path:
    return host.dir / "nginx" / "conf.d" / "app.conf"


def args(host: lab.Host, content: str, **extra: object) -> dict:
    return {
        "dest": str(site(host)),
        "content": content,
        "compose_project_src": str(host.dir),
        "compose_project_name": host.project,
        "compose_service": "nginx",
        **extra,
    }


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http URL)
        return int(response.status)


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.mark.matrix
def test_a_change_is_tested_applied_with_new_workers_and_idempotent(lab2: lab.Host) -> None:
    content = site(lab2).read_text().replace("proxy_read_timeout 60s;", "proxy_read_timeout 75s;")
    before = nginx_workers(lab2)
    runs = assert_module_four_step(MODULE, args(lab2, content, backup=True), hosts="lab2")
    result = runs[1].result("lab2")
    assert result["validated"] is True and result["applied"] is True
    assert site(lab2).read_text() == content
    assert nginx_workers(lab2).isdisjoint(before), "the reload did not start new workers"
    backup = Path(result["backup_file"])
    assert "proxy_read_timeout 60s;" in backup.read_text()
    assert answers(f"http://{lab2.addr}/health") == 200
    # The check run tested the candidate too, in a mirror it removed.
    assert not list(site(lab2).parent.parent.glob(".stackops-validate-*"))


def test_check_and_diff_change_nothing(lab2: lab.Host) -> None:
    live = digest(site(lab2))
    content = site(lab2).read_text() + "# a comment\n"
    run = run_module(MODULE, args(lab2, content), hosts="lab2", check=True, diff=True)
    result = run.result("lab2")
    assert result["changed"] is True and result["validated"] is True and result["applied"] is False
    (diff,) = result["diff"]
    assert diff["after"].endswith("# a comment\n") and diff["before_header"] == str(site(lab2))
    assert digest(site(lab2)) == live


def test_an_invalid_config_is_rejected_and_the_live_file_is_untouched(lab2: lab.Host) -> None:
    live, before = digest(site(lab2)), nginx_workers(lab2)
    bad = site(lab2).read_text().replace("proxy_read_timeout 60s;", "proxy_read_timeout sixty;")
    run = run_module(MODULE, args(lab2, bad), hosts="lab2")
    result = run.result("lab2")
    assert "lab2" in run.failed_hosts()
    assert result["msg"].startswith(f"nginx -t rejected the new {site(lab2)}, left as it was: ")
    assert '"proxy_read_timeout" directive invalid value in /etc/nginx/stackops/conf.d/app.conf' in result["msg"]
    assert digest(site(lab2)) == live
    assert nginx_workers(lab2) == before, "nginx was reloaded for a rejected config"
    assert not list(site(lab2).parent.parent.glob(".stackops-validate-*"))


def test_a_config_that_cannot_bind_is_detected_and_rolled_back(lab2: lab.Host) -> None:
    live = site(lab2).read_bytes()
    # Redis holds this port: nginx -t passes, the reload exits 0, and nginx keeps its old workers.
    conflict = live.decode().replace(
        f"listen {lab2.addr}:80 default_server;", f"listen {lab2.addr}:80 default_server;\n    listen {lab2.addr}:6379;"
    )
    before = nginx_workers(lab2)
    run = run_module(MODULE, args(lab2, conflict), hosts="lab2")
    result = run.result("lab2")
    assert "lab2" in run.failed_hosts()
    assert result["validated"] is True and result["applied"] is False
    assert f"bind() to {lab2.addr}:6379 failed (98: Address already in use)" in result["msg"]
    assert "The previous files are back and nginx was reloaded with them." in result["msg"]
    assert site(lab2).read_bytes() == live
    assert nginx_workers(lab2).isdisjoint(before), "the rollback reload did not start new workers"
    assert answers(f"http://{lab2.addr}/health") == 200


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"src": "/etc/hostname"}, "Give exactly one of content and src."),
        ({"mode": "rw-r--r--"}, "mode 'rw-r--r--' is not an octal mode"),
        ({"owner": "no-such-user"}, "No such user or group on the host: "),
        ({"compose_service": None}, "compose_project_src is set but compose_service is not"),
        ({"dest": "/tmp/app.conf"}, "dest /tmp/app.conf is outside the directory of nginx's main config"),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(lab2: lab.Host, extra: dict, error: str) -> None:
    live = digest(site(lab2))
    run = run_module(MODULE, {**args(lab2, "# nothing\n"), **extra}, hosts="lab2")
    assert "lab2" in run.failed_hosts()
    assert error in run.result("lab2")["msg"]
    assert digest(site(lab2)) == live
    assert not Path("/tmp/app.conf").exists()


@pytest.fixture
def clean_maintenance(lab2: lab.Host) -> Iterator[Path]:
    """lab2 without the maintenance snippets before and after the test (and nginx reloaded without them)."""
    folder = lab2.dir / "nginx" / "maintenance"

    def clear() -> None:
        if folder.exists():
            shutil.rmtree(folder)
            reload_nginx(lab2)

    clear()
    yield folder
    clear()


def maintenance(host: lab.Host, state: str, **extra: object) -> dict:
    return {
        "compose_project_src": str(host.dir),
        "compose_project_name": host.project,
        "compose_service": "nginx",
        "maintenance": state,
        "retry_after": 120,
        "maintenance_allow": ["127.0.2.9"],
        "maintenance_exempt_paths": ["/health"],
        **extra,
    }


def test_maintenance_answers_503_to_every_method_with_headers_and_exemptions(
    lab2: lab.Host, clean_maintenance: Path
) -> None:
    # The host's own address is let through, as the maintenance_window role does: the proof still sees the 503.
    allowed = maintenance(lab2, "on", maintenance_allow=["127.0.2.9", lab2.addr, "127.0.0.1"])
    runs = assert_module_four_step(MODULE, allowed, hosts="lab2")
    result = runs[1].result("lab2")
    assert result["maintenance"] == "on" and (clean_maintenance / "on").exists()
    probed = {(a["url"], a["status"], a["retry_after"], a["maintenance_page"]) for a in result["maintenance_probe"]}
    assert probed == {
        (f"{scheme}://{lab2.addr}:{port}{path}", *answer)
        for scheme, port in (("http", 80), ("https", 443))
        for path, answer in (("/stackops-maintenance-probe", (503, "120", True)), ("/health", (200, None, False)))
    }
    assert result["maintenance_switched_at"] > 0
    assert "maintenance_switched_at" not in runs[3].result("lab2"), "nothing was switched on the second run"
    assert request("GET", f"http://{lab2.addr}/api/customers/1", source=lab2.addr)[0] == 200
    for method in ("GET", "HEAD", "POST"):
        status, headers, body = request(method, f"http://{lab2.addr}/api/customers/1", source=VISITOR)
        assert status == 503, method
        assert headers["retry-after"] == "120" and headers["cache-control"] == "no-store", method
        assert (b"Down for maintenance" in body) == (method != "HEAD"), method
    # Exempt paths and allowed addresses pass through to the app.
    assert request("GET", f"http://{lab2.addr}/health/ready", source=VISITOR)[0] == 200
    assert request("GET", f"http://{lab2.addr}/api/customers/1", source="127.0.2.9")[0] == 200
    # The probe header only takes access away: an allowed address that sends it gets the page, without the echo
    # of a token that is not one.
    probe = {"X-Stackops-Maintenance-Probe": "not-a-token"}
    status, headers, _body = request("GET", f"http://{lab2.addr}/api/customers/1", source="127.0.2.9", headers=probe)
    assert status == 503 and "x-stackops-maintenance-probe" not in headers
    # The page location is internal: it cannot be asked for directly.
    assert request("GET", f"http://{lab2.addr}/stackops-maintenance.html", source="127.0.2.9")[0] == 404


def test_maintenance_flips_without_a_reload_and_off_is_idempotent(lab2: lab.Host, clean_maintenance: Path) -> None:
    run_module(MODULE, maintenance(lab2, "on"), hosts="lab2").assert_ok()
    before = nginx_workers(lab2)
    runs = assert_module_four_step(MODULE, maintenance(lab2, "off"), hosts="lab2")
    result = runs[1].result("lab2")
    assert result["maintenance"] == "off" and not (clean_maintenance / "on").exists()
    assert {(a["status"], a["maintenance_page"]) for a in result["maintenance_probe"]} == {(404, False)}, (
        "off is proven by the app's own answer (it has no /stackops-maintenance-probe)"
    )
    assert request("GET", f"http://{lab2.addr}/api/customers/1")[0] == 200
    result = run_module(MODULE, maintenance(lab2, True), hosts="lab2").result("lab2")
    assert result["changed"] is True and result["maintenance"] == "on"
    assert request("GET", f"http://{lab2.addr}/api/customers/1")[0] == 503
    assert nginx_workers(lab2) == before, "flipping maintenance reloaded nginx"


def test_maintenance_refuses_snippets_nginx_does_not_include(lab2: lab.Host, clean_maintenance: Path) -> None:
    elsewhere = lab2.dir / "nginx" / "elsewhere"
    run = run_module(MODULE, maintenance(lab2, "on", maintenance_dir=str(elsewhere)), hosts="lab2")
    assert "lab2" in run.failed_hosts()
    message = run.result("lab2")["msg"]
    assert "does not include the maintenance http snippet /etc/nginx/stackops/elsewhere/http.conf" in message
    assert "include /etc/nginx/stackops/elsewhere/http.conf;" in message
    assert not elsewhere.exists()
    assert request("GET", f"http://{lab2.addr}/api/customers/1")[0] == 200


@contextlib.contextmanager
def green_app(addr: str, port: int) -> Iterator[None]:
    """A second app (the "green" deployment) answering every GET with its colour."""

    class Green(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"deployment": "green"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((addr, port), Green)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_upstream_switch_moves_traffic_and_back(lab2: lab.Host) -> None:
    blue = f"{lab2.addr}:8000"
    green = f"{lab2.addr}:18000"
    switch = {**args(lab2, ""), "upstream": "app", "upstream_servers": [green]}
    del switch["content"]
    with green_app(lab2.addr, 18000):
        runs = assert_module_four_step(MODULE, switch, hosts="lab2")
        assert runs[1].result("lab2")["applied"] is True
        assert f"server {green};" in site(lab2).read_text() and f"server {blue};" not in site(lab2).read_text()
        assert "keepalive 16;" in site(lab2).read_text()
        assert request("GET", f"http://{lab2.addr}/api/customers/1")[2] == b'{"deployment": "green"}'
        back = run_module(MODULE, {**switch, "upstream_servers": [blue]}, hosts="lab2").result("lab2")
        assert back["changed"] is True and back["applied"] is True
    assert request("GET", f"http://{lab2.addr}/health/ready")[0] == 200
    missing = run_module(MODULE, {**switch, "upstream": "nope"}, hosts="lab2")
    assert "No `upstream nope { ... }` block in the file" in missing.result("lab2")["msg"]


def test_tls_report_lists_the_served_certificate_with_its_expiry(lab2: lab.Host) -> None:
    report = {**args(lab2, ""), "tls_report": True}
    del report["content"], report["dest"]
    runs = assert_module_four_step(MODULE, report, hosts="lab2")
    (cert,) = runs[1].result("lab2")["certificates"]
    assert cert["path"] == "/etc/nginx/stackops/tls/lab.crt" and cert["subject"] == "lab2.stackops.test"
    assert cert["severity"] == "ok" and 300 < cert["days_left"] <= 365
    near = run_module(MODULE, {**report, "tls_critical_days": 400}, hosts="lab2").result("lab2")
    assert near["certificates"][0]["severity"] == "critical"
    assert any("TLS certificate /etc/nginx/stackops/tls/lab.crt is critical: " in w for w in near["warnings"])


def upgrade(url: str) -> int:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=5)
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
               "Sec-WebSocket-Version": "13"}  # fmt: skip
    try:
        conn.request("GET", parts.path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_websocket_snippets_make_the_upgrade_pass_through(lab2: lab.Host) -> None:
    folder = lab2.dir / "nginx" / "websocket"
    url = f"http://{lab2.addr}/ws-managed/"
    try:
        assert upgrade(url) == 426, "without the snippets nginx drops the Upgrade header"
        ws = {**args(lab2, ""), "websocket": True, "websocket_read_timeout": 600}
        del ws["content"], ws["dest"]
        runs = assert_module_four_step(MODULE, ws, hosts="lab2")
        assert runs[1].result("lab2")["applied"] is True
        assert "proxy_read_timeout 600s;" in (folder / "location.conf").read_text()
        assert upgrade(url) == 101
    finally:
        if folder.exists():
            shutil.rmtree(folder)
            reload_nginx(lab2)


CAUSES = (
    "Likely causes: nginx's worker user cannot read the flag {flag} (every directory above it must be searchable by "
    "that user, for example www-data); the server block answering that address does not include the maintenance "
    "server snippet; another server block answers that address"
)


@pytest.fixture
def extra_server(lab2: lab.Host, clean_maintenance: Path) -> Iterator[t.Callable[[str], None]]:
    """Adds a server block to lab2's nginx (conf.d/other.conf), reloaded; removed again after the test."""
    other = site(lab2).parent / "other.conf"

    def add(text: str) -> None:
        other.write_text(text)
        reload_nginx(lab2)

    yield add
    if other.exists():
        other.unlink()
        reload_nginx(lab2)


def unproven_switch_changes_nothing(host: lab.Host, args: dict, *observed: str) -> str:
    """maintenance on fails to be proven: the message says what nginx answered, the flag is gone again, and the
    site answers exactly as before (a real request from a visitor's address, and the lab's snapshot)."""
    # The snippets in place, proven off where nginx listens (the snippets do not depend on where it is asked).
    setup = {key: value for key, value in args.items() if key != "maintenance_probe_urls"}
    run_module(MODULE, {**setup, "maintenance": "off"}, hosts="lab2").assert_ok()
    flag = Path(args.get("maintenance_flag") or host.dir / "nginx" / "maintenance" / "on")
    visitor = request("GET", f"http://{host.addr}/api/customers/1")
    before = snapshot(host)
    run = run_module(MODULE, {**args, "maintenance": "on", "maintenance_probe_timeout": 2}, hosts="lab2")
    after = snapshot(host)
    assert run.failed_hosts() == {"lab2"}
    result = run.result("lab2")
    message = result["msg"]
    assert message.startswith("nginx does not answer with maintenance on within 2 s, asked with the "), message
    for seen in observed:
        assert seen in message, message
    assert f"The switch was undone: the flag {flag} is removed and the site answers as before." in message
    assert CAUSES.format(flag=flag) in message
    assert result["maintenance"] == "off" and result["changed"] is False
    assert "maintenance_switched_at" not in result
    assert not flag.exists()
    assert diff(before, after) == []
    status, _headers, body = request("GET", f"http://{host.addr}/api/customers/1")
    assert (status, body) == (visitor[0], visitor[2])
    return message


def test_a_flag_nginx_workers_cannot_read_is_not_taken_for_maintenance(lab2: lab.Host, clean_maintenance: Path) -> None:
    # The flag under a root-only directory, as `mktemp -d` makes it: nginx's workers (www-data) cannot see it.
    locked = lab2.dir / "nginx" / "locked"
    locked.mkdir(mode=0o700)
    try:
        unproven_switch_changes_nothing(
            lab2,
            maintenance(lab2, "on", maintenance_flag=str(locked / "on")),
            f"http://{lab2.addr}:80/stackops-maintenance-probe (Host {lab2.addr}, server at "
            "/etc/nginx/stackops/conf.d/app.conf:12) answered 404, Retry-After missing, not the maintenance page",
            f"https://{lab2.addr}:443/stackops-maintenance-probe",
        )
    finally:
        shutil.rmtree(locked)


def test_a_site_server_without_the_include_is_not_taken_for_maintenance(
    lab2: lab.Host, extra_server: t.Callable[[str], None]
) -> None:
    # The snippet is read (by another server block), so nginx -T shows it; the site's own server block lacks it.
    site(lab2).write_text(site(lab2).read_text().replace("include /etc/nginx/stackops/maintenance/server*.conf;", ""))
    extra_server(
        f"server {{\n    listen {lab2.addr}:8081;\n    include /etc/nginx/stackops/maintenance/server*.conf;\n"
        "    location / { return 200 'status'; }\n}\n"
    )
    message = unproven_switch_changes_nothing(
        lab2,
        maintenance(lab2, "on"),
        f"http://{lab2.addr}:80/stackops-maintenance-probe (Host {lab2.addr}, server at "
        "/etc/nginx/stackops/conf.d/app.conf:12) answered 404, Retry-After missing, not the maintenance page",
    )
    assert f"http://{lab2.addr}:8081/" not in message, "the server with the include answered 503: no problem there"


def test_a_second_server_answering_the_address_is_not_taken_for_maintenance(
    lab2: lab.Host, extra_server: t.Callable[[str], None]
) -> None:
    # A server named after the address takes every request that names it, without the snippet.
    extra_server(
        f"server {{\n    listen {lab2.addr}:80;\n    server_name {lab2.addr};\n"
        "    location / { return 200 'another server'; }\n}\n"
    )
    assert request("GET", f"http://{lab2.addr}/api/customers/1")[2] == b"another server"
    unproven_switch_changes_nothing(
        lab2,
        maintenance(lab2, "on"),
        f"http://{lab2.addr}:80/stackops-maintenance-probe (Host {lab2.addr}, server at "
        "/etc/nginx/stackops/conf.d/app.conf:12) answered 200, Retry-After missing, not the maintenance page",
    )


def test_check_mode_says_maintenance_would_switch_and_switches_nothing(lab2: lab.Host, clean_maintenance: Path) -> None:
    run_module(MODULE, maintenance(lab2, "off"), hosts="lab2").assert_ok()
    before = snapshot(lab2)
    result = run_module(MODULE, maintenance(lab2, "on"), hosts="lab2", check=True).result("lab2")
    assert result["changed"] is True and result["maintenance"] == "on"
    assert "maintenance_probe" not in result and "maintenance_switched_at" not in result
    assert diff(before, snapshot(lab2)) == []
    assert request("GET", f"http://{lab2.addr}/api/customers/1")[0] == 200


def test_maintenance_is_proven_where_the_user_names_the_site(lab2: lab.Host, clean_maintenance: Path) -> None:
    named = maintenance(lab2, "on", maintenance_probe_urls=[f"https://{lab2.addr}/api/customers/1"])
    result = run_module(MODULE, named, hosts="lab2").result("lab2")
    assert [(a["url"], a["status"], a["maintenance_page"]) for a in result["maintenance_probe"]] == [
        (f"https://{lab2.addr}:443/api/customers/1", 503, True),
        (f"https://{lab2.addr}:443/health", 200, False),
    ]
    run_module(MODULE, {**named, "maintenance": "off"}, hosts="lab2").assert_ok()
    # A port nginx does not listen on (as a container's port published under another number would be).
    message = unproven_switch_changes_nothing(
        lab2,
        maintenance(lab2, "on", maintenance_probe_urls=[f"http://{lab2.addr}:18999/"]),
        f"http://{lab2.addr}:18999/ (Host {lab2.addr}) could not be asked: [Errno 111] Connection refused",
    )
    assert message.endswith("(a container's port published under another number): give maintenance_probe_urls.")
