"""nginx_config with nginx on the host (Debian's nginx-light, started by the test on a loopback address with its
own prefix): the same test-before-live, confirmed reload and rollback as in a container, through the pid file."""

from __future__ import annotations

import hashlib
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.playbook import assert_module_four_step, run_module

pytestmark = pytest.mark.lab_hosts("lab1")

MODULE = "stackops.runbooks.nginx_config"
ADDR = "127.0.2.1"  # a lab host's address; port 18080 is nobody's there


@pytest.fixture
def host_nginx(tmp_path: Path) -> Iterator[Path]:
    """A running host nginx whose config lives in tmp_path/nginx (nginx.conf includes conf.d/*.conf)."""
    root = tmp_path / "nginx"
    (root / "conf.d").mkdir(parents=True)
    (root / "nginx.conf").write_text(
        f"worker_processes 2;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log off;\n    client_body_temp_path {root}/tmp;\n    proxy_temp_path {root}/tmp;\n"
        f"    include {root}/conf.d/*.conf;\n}}\n"
    )
    (root / "conf.d" / "site.conf").write_text(site("v1"))
    subprocess.run(["nginx", "-c", str(root / "nginx.conf")], check=True, capture_output=True)
    yield root
    subprocess.run(["nginx", "-c", str(root / "nginx.conf"), "-s", "stop"], check=False, capture_output=True)


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
    assert (host_nginx / "conf.d" / "site.conf").read_text() == site("v1")
    assert answer() == b"v1"
    assert "bind() to 127.0.2.1:5432 failed" in (host_nginx / "error.log").read_text()
