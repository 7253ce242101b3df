"""HTTP from the controller to a lab host's nginx, and reloading that nginx with proof."""

from __future__ import annotations

import http.client
import socket
import time
import typing as t
import urllib.parse

import lab

NGINX_CONF = "/etc/nginx/stackops/nginx.conf"


def request(
    method: str, url: str, source: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request from a chosen client address (a loopback address nginx does or does not let through): the
    status, the headers (lower-case names) and the body."""
    parts = urllib.parse.urlsplit(url)
    bind = (source, 0) if source else None
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=5, source_address=bind)
    try:
        conn.request(method, parts.path or "/", body=b"x=1" if method == "POST" else None, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def nginx_workers(host: lab.Host) -> set[str]:
    out = lab.compose(host, "top", host.shape.nginx).stdout
    return {line.split()[1] for line in out.splitlines() if "worker process" in line}


def reload_nginx(host: lab.Host) -> None:
    """Reload the host's nginx and wait for its new workers (the signal returns before they answer)."""
    before = nginx_workers(host)
    lab.compose(host, "exec", "-T", host.shape.nginx, "nginx", "-c", NGINX_CONF, "-s", "reload")
    deadline = time.monotonic() + 10
    while not nginx_workers(host).isdisjoint(before) and time.monotonic() < deadline:
        time.sleep(0.1)


def connects(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


def by_edge(edges: list[dict[str, t.Any]]) -> dict[tuple[str, str], dict[str, t.Any]]:
    return {(e["from"], e["to"]): e for e in edges}
