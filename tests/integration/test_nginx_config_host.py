"""nginx_config with nginx on the host (Debian's nginx-light, started by the test on a loopback address with its
own prefix, workers as www-data): the same test-before-live, confirmed reload and rollback as in a container,
through the pid file; maintenance proven from nginx's side, and undone when nginx's workers cannot see the flag."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.playbook import assert_module_four_step, run_module
from harness.snapshot import watching
from harness.web import request

pytestmark = pytest.mark.lab_hosts("lab1")

MODULE = "stackops.runbooks.nginx_config"
ADDR = "127.0.2.1"  # a lab host's address; port 18080 is nobody's there


def start_nginx(root: Path) -> Iterator[Path]:
    """A running host nginx whose config lives in root (nginx.conf includes conf.d/*.conf and the maintenance
    snippets, as the module's documentation says)."""
    (root / "conf.d").mkdir(parents=True)
    (root / "nginx.conf").write_text(
        f"user www-data;\nworker_processes 2;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log off;\n    client_body_temp_path {root}/tmp;\n    proxy_temp_path {root}/tmp;\n"
        f"    include {root}/maintenance/http*.conf;\n    include {root}/conf.d/*.conf;\n}}\n"
    )
    (root / "conf.d" / "site.conf").write_text(site("v1", f"    include {root}/maintenance/server*.conf;\n"))
    subprocess.run(["nginx", "-c", str(root / "nginx.conf")], check=True, capture_output=True)
    # The check runs' snapshots read its files and workers too.
    with watching("lab1", files=[root], nginx_pids=[root / "nginx.pid"]):
        yield root
    subprocess.run(["nginx", "-c", str(root / "nginx.conf"), "-s", "stop"], check=False, capture_output=True)
    # The signal returns at once; the master removes its pid file as it exits.
    deadline = time.monotonic() + 10
    while (root / "nginx.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture
def host_nginx(tmp_path: Path) -> Iterator[Path]:
    """In tmp_path/nginx: under pytest's root-only 0700 directories, as `mktemp -d` makes them, so nginx's
    workers (www-data) cannot open anything there."""
    yield from start_nginx(tmp_path / "nginx")


@pytest.fixture
def open_nginx() -> Iterator[Path]:
    """In a directory every user may search, as /etc/nginx is."""
    base = Path(tempfile.mkdtemp(prefix="stackops-host-nginx-"))
    base.chmod(0o755)
    try:
        yield from start_nginx(base / "nginx")
    finally:
        shutil.rmtree(base)


def site(version: str, extra: str = "") -> str:
    return f"server {{\n    listen {ADDR}:18080;\n{extra}    location / {{ return 200 '{version}'; }}\n}}\n"


def args(root: Path, content: str, **extra: object) -> dict:
    return {
        "dest": str(root / "conf.d" / "site.conf"),
        "content": content,
        "config": str(root / "nginx.conf"),
        "reload_timeout": 4,
        **extra,
    }


def answer() -> bytes:
    with urllib.request.urlopen(f"http://{ADDR}:18080/", timeout=5) as response:
        return bytes(response.read())


def visitor() -> tuple[int, str | None, bytes]:
    """What a client that is not let through gets: status, Retry-After, body."""
    status, headers, body = request("GET", f"http://{ADDR}:18080/", source="127.0.2.20")
    return status, headers.get("retry-after"), body


def maintenance(root: Path, state: str) -> dict:
    # The host's own addresses are let through (the maintenance_window role does that): the proof must not be.
    allow = [ADDR, "127.0.0.1"]
    return {"config": str(root / "nginx.conf"), "maintenance": state, "retry_after": 60, "maintenance_allow": allow}


def test_host_nginx_change_is_applied_and_idempotent(host_nginx: Path) -> None:
    assert answer() == b"v1"
    runs = assert_module_four_step(MODULE, args(host_nginx, site("v2"), mode="0640"), hosts="lab1")
    assert runs[1].result("lab1")["applied"] is True
    assert answer() == b"v2"
    assert (host_nginx / "conf.d" / "site.conf").stat().st_mode & 0o777 == 0o640


def test_host_nginx_rejects_an_invalid_config_untouched(host_nginx: Path) -> None:
    live = hashlib.sha256((host_nginx / "conf.d" / "site.conf").read_bytes()).hexdigest()
    run = run_module(MODULE, args(host_nginx, site("v2", "    bogus_directive on;\n")), hosts="lab1")
    assert "lab1" in run.failed_hosts()
    assert 'unknown directive "bogus_directive"' in run.result("lab1")["msg"]
    assert hashlib.sha256((host_nginx / "conf.d" / "site.conf").read_bytes()).hexdigest() == live
    assert answer() == b"v1"


def test_host_nginx_bind_conflict_is_rolled_back(host_nginx: Path) -> None:
    # The lab's PostgreSQL holds 127.0.2.1:5432: the test passes, the reload cannot bind.
    conflict = site("v2", f"    listen {ADDR}:5432;\n")
    run = run_module(MODULE, args(host_nginx, conflict), hosts="lab1")
    result = run.result("lab1")
    assert "lab1" in run.failed_hosts()
    assert result["validated"] is True and result["applied"] is False
    assert "no new worker processes within 4 s" in result["msg"]
    assert (host_nginx / "conf.d" / "site.conf").read_text() == site(
        "v1", f"    include {host_nginx}/maintenance/server*.conf;\n"
    )
    assert answer() == b"v1"
    assert "bind() to 127.0.2.1:5432 failed" in (host_nginx / "error.log").read_text()


def test_host_nginx_maintenance_is_proven_on_and_off(open_nginx: Path) -> None:
    runs = assert_module_four_step(MODULE, maintenance(open_nginx, "on"), hosts="lab1")
    result = runs[1].result("lab1")
    (probe,) = [a for a in result["maintenance_probe"] if a["url"].endswith("/stackops-maintenance-probe")]
    assert (probe["status"], probe["retry_after"], probe["maintenance_page"]) == (503, "60", True)
    assert result["maintenance_switched_at"] > 0
    status, retry_after, body = visitor()
    assert (status, retry_after) == (503, "60") and b"Down for maintenance" in body
    assert answer() == b"v1", "the host's own address is let through"
    off = run_module(MODULE, maintenance(open_nginx, "off"), hosts="lab1").result("lab1")
    assert off["changed"] is True and off["maintenance_switched_at"] >= result["maintenance_switched_at"]
    assert visitor() == (200, None, b"v1")


def test_host_nginx_maintenance_that_workers_cannot_see_is_undone(host_nginx: Path) -> None:
    """The issue's case: the maintenance directory under a root-only 0700 directory. The flag is there for root,
    but nginx's workers (www-data) cannot stat it and go on serving the site."""
    run_module(MODULE, maintenance(host_nginx, "off"), hosts="lab1").assert_ok()  # the snippets, proven off
    files = {p: p.read_bytes() for p in host_nginx.rglob("*") if p.is_file() and p.suffix != ".log"}
    run = run_module(MODULE, {**maintenance(host_nginx, "on"), "maintenance_probe_timeout": 2}, hosts="lab1")
    assert run.failed_hosts() == {"lab1"}
    result = run.result("lab1")
    flag = host_nginx / "maintenance" / "on"
    assert (
        f"http://{ADDR}:18080/stackops-maintenance-probe (Host {ADDR}, server at {host_nginx}/conf.d/site.conf:1) "
        "answered 200, Retry-After missing, not the maintenance page" in result["msg"]
    )
    assert f"The switch was undone: the flag {flag} is removed" in result["msg"]
    assert f"nginx's worker user cannot read the flag {flag}" in result["msg"]
    assert result["maintenance"] == "off" and result["changed"] is False
    assert not flag.exists()
    assert {p: p.read_bytes() for p in host_nginx.rglob("*") if p.is_file() and p.suffix != ".log"} == files
    assert visitor() == (200, None, b"v1")
