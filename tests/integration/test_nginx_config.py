"""nginx_config on the lab's nginx (a compose service): changes are tested before they go live, applied with proof,
and rolled back when nginx cannot apply them; a rejected candidate leaves the live file byte for byte."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
from harness.playbook import assert_module_four_step, run_module

MODULE = "stackops.runbooks.nginx_config"


@pytest.fixture
def lab2(hosts: dict) -> Iterator[lab.Host]:
    """lab2's site file, put back as it was (and nginx reloaded) after the test."""
    host = hosts["lab2"]
    site = host.dir / "nginx" / "conf.d" / "app.conf"
    original = site.read_bytes()
    yield host
    if site.read_bytes() != original:
        site.write_bytes(original)
        lab.compose(host, "exec", "-T", "nginx", "nginx", "-c", "/etc/nginx/stackops/nginx.conf", "-s", "reload")
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


def workers(host: lab.Host) -> set[str]:
    out = lab.compose(host, "top", "nginx").stdout
    return {line.split()[1] for line in out.splitlines() if "worker process" in line}


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http URL)
        return int(response.status)


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_a_change_is_tested_applied_with_new_workers_and_idempotent(lab2: lab.Host) -> None:
    content = site(lab2).read_text().replace("proxy_read_timeout 60s;", "proxy_read_timeout 75s;")
    before = workers(lab2)
    runs = assert_module_four_step(MODULE, args(lab2, content, backup=True), hosts="lab2")
    result = runs[1].result("lab2")
    assert result["validated"] is True and result["applied"] is True
    assert site(lab2).read_text() == content
    assert workers(lab2).isdisjoint(before), "the reload did not start new workers"
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
    assert result["diff"]["after"].endswith("# a comment\n")
    assert digest(site(lab2)) == live


def test_an_invalid_config_is_rejected_and_the_live_file_is_untouched(lab2: lab.Host) -> None:
    live, before = digest(site(lab2)), workers(lab2)
    bad = site(lab2).read_text().replace("proxy_read_timeout 60s;", "proxy_read_timeout sixty;")
    run = run_module(MODULE, args(lab2, bad), hosts="lab2")
    result = run.result("lab2")
    assert "lab2" in run.failed_hosts()
    assert result["msg"].startswith(f"nginx -t rejected the new {site(lab2)}, which was left as it was: ")
    assert '"proxy_read_timeout" directive invalid value in /etc/nginx/stackops/conf.d/app.conf' in result["msg"]
    assert digest(site(lab2)) == live
    assert workers(lab2) == before, "nginx was reloaded for a rejected config"
    assert not list(site(lab2).parent.parent.glob(".stackops-validate-*"))


def test_a_config_that_cannot_bind_is_detected_and_rolled_back(lab2: lab.Host) -> None:
    live = site(lab2).read_bytes()
    # Redis holds this port: nginx -t passes, the reload exits 0, and nginx keeps its old workers.
    conflict = live.decode().replace(
        f"listen {lab2.addr}:80 default_server;", f"listen {lab2.addr}:80 default_server;\n    listen {lab2.addr}:6379;"
    )
    before = workers(lab2)
    run = run_module(MODULE, args(lab2, conflict), hosts="lab2")
    result = run.result("lab2")
    assert "lab2" in run.failed_hosts()
    assert result["validated"] is True and result["applied"] is False
    assert f"bind() to {lab2.addr}:6379 failed (98: Address already in use)" in result["msg"]
    assert "The previous file is back and nginx was reloaded with it." in result["msg"]
    assert site(lab2).read_bytes() == live
    assert workers(lab2).isdisjoint(before), "the rollback reload did not start new workers"
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
