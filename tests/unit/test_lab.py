"""Pure parts of the lab tooling: rendering, the Redis seed protocol, inventory checks, files and ports."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

import lab


def parse_resp_commands(data: bytes) -> list[list[bytes]]:
    """A strict reader of RESP arrays of bulk strings (what redis-cli --pipe sends)."""
    commands, pos = [], 0
    while pos < len(data):
        assert data[pos : pos + 1] == b"*"
        end = data.index(b"\r\n", pos)
        count, pos, parts = int(data[pos + 1 : end]), end + 2, []
        for _part in range(count):
            assert data[pos : pos + 1] == b"$"
            end = data.index(b"\r\n", pos)
            size = int(data[pos + 1 : end])
            parts.append(data[end + 2 : end + 2 + size])
            assert data[end + 2 + size : end + 4 + size] == b"\r\n"
            pos = end + 4 + size
        commands.append(parts)
    return commands


def test_redis_seed_is_valid_protocol_with_expiring_sessions() -> None:
    commands = parse_resp_commands(lab.redis_seed_commands().encode())
    sessions = [c for c in commands if c[1].startswith(b"session:")]
    assert len(sessions) == 5000
    assert len({c[1] for c in sessions}) == 5000
    assert all(c[0] == b"SET" and c[3:] == [b"EX", b"604800"] for c in sessions)
    assert commands[-1] == [b"SET", b"lab:seeded", b"1"]


def test_render_fills_every_placeholder() -> None:
    host = lab.Host("lab9", "127.0.2.9", "stack")
    text = lab.render((lab.LAB / "compose.yaml.tmpl").read_text(), host, "stackops-lab:abc")
    assert "@" not in text.replace("@ADDR@", "")
    assert "name: stackops-lab9" in text
    assert "127.0.2.9" in text
    assert "image: stackops-lab:abc" in text


def test_lab_hosts_must_be_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    stack:\n      hosts:\n        x:\n          ansible_host: 10.0.0.5\n"
    )
    monkeypatch.setattr(lab, "INVENTORY", tmp_path)
    with pytest.raises(lab.LabError, match=r"x has address 10\.0\.0\.5: lab hosts must be loopback"):
        lab.load_hosts()


def test_lab_inventory_hosts_and_groups() -> None:
    assert {(h.name, h.addr, h.group, h.shape.name, h.debian) for h in lab.load_hosts()} == {
        ("lab1", "127.0.2.1", "stack", "classic", "bookworm"),
        ("lab2", "127.0.2.2", "stack", "classic", "bookworm"),
        ("lab3", "127.0.2.4", "stack", "sovd", "trixie"),
        ("drill1", "127.0.2.3", "drill", "classic", "trixie"),
    }


def test_an_unknown_shape_or_release_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    stack:\n      hosts:\n        lab9: {ansible_host: 127.0.2.9, lab_debian: sid}\n"
    )
    monkeypatch.setattr(lab, "INVENTORY", tmp_path)
    with pytest.raises(lab.LabError, match="lab host lab9: lab_shape 'classic' / lab_debian 'sid'"):
        lab.load_hosts()


def test_each_shape_names_its_services_and_its_template_renders_them() -> None:
    for host in lab.load_hosts():
        text = lab.render((lab.LAB / host.shape.template).read_text(), host, "stackops-lab:test")
        assert "@" not in text, f"{host.name}: a placeholder left in {host.shape.template}"
        services = yaml.safe_load(text)["services"]
        assert set(services) == set(host.shape.ports)
        assert {host.shape.postgres, host.shape.redis, host.shape.app, host.shape.nginx} <= set(services)


def test_write_if_changed_is_idempotent_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "secret.env"
    assert lab.write_if_changed(target, "A=1\n", 0o600) is True
    assert target.stat().st_mode & 0o777 == 0o600
    assert lab.write_if_changed(target, "A=1\n", 0o600) is False
    target.chmod(0o644)
    assert lab.write_if_changed(target, "A=1\n", 0o600) is True
    assert target.stat().st_mode & 0o777 == 0o600
    assert not list(target.parent.glob(".*.tmp"))


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text("999999\n")
    assert lab.pid_alive(pidfile, "sshd") is None
    assert not pidfile.exists()


def test_pid_of_another_program_does_not_count(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text("1\n")  # pid 1 runs, but is not dockerd
    assert lab.pid_alive(pidfile, "dockerd-not-pid-1") is None


def test_taken_port_is_named_with_its_owner() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.2.250", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(lab.LabError, match=rf"127\.0\.2\.250:{port}, needed by the lab's lab9 redis, is taken"):
            lab.check_port_free("127.0.2.250", port, "lab9 redis")
    lab.check_port_free("127.0.2.250", port, "lab9 redis")


def test_image_tag_follows_the_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tag = lab.image_tag()
    assert tag.startswith("stackops-lab:") and tag == lab.image_tag()
    (tmp_path / "image").mkdir()
    for part in ("packages.txt", "build.sh"):
        (tmp_path / "image" / part).write_bytes((lab.LAB / "image" / part).read_bytes())
    monkeypatch.setattr(lab, "LAB", tmp_path)
    assert lab.image_tag() == tag
    (tmp_path / "image" / "packages.txt").write_text("postgresql-16\n")
    assert lab.image_tag() != tag


def test_services_name_their_env_variables_and_only_the_app_is_deployable() -> None:
    host = lab.Host("lab9", "127.0.2.9", "stack")
    project = yaml.safe_load(lab.render((lab.LAB / "compose.yaml.tmpl").read_text(), host, "stackops-lab:abc"))
    services = project["services"]
    # No env_file: a variable a deploy adds to .env (APP_IMAGE) changes no service that does not name it.
    assert all("env_file" not in s and "LAB_ADDR" in s["environment"] for s in services.values())
    assert {name for name, s in services.items() if "${" in s["image"]} == {"app"}
    assert services["app"]["image"] == "${APP_IMAGE:-stackops-lab:abc}"
    assert "127.0.2.9/${APP_PORT:-8000}" in services["app"]["healthcheck"]["test"][-1]
