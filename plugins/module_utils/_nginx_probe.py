# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""The proof of nginx_config's maintenance state from nginx's side: where to ask (every listening address of every
http server block of an `nginx -T` dump, or the URLs given), one request per place and path with the probe header,
and the judgement of each answer, asked again until it holds or the time is up."""

from __future__ import annotations

import http.client
import re
import secrets
import socket
import time
import typing as t
from urllib.parse import urlsplit

from ansible_collections.stackops.runbooks.plugins.module_utils._http import describe, tls_context
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import (
    PROBE_HEADER,
    PROBE_PATH,
    PROBE_TOKEN_LENGTH,
    NginxError,
)

DUMP_FILE = re.compile(r"^# configuration file (.+):$", re.M)
# nginx's tokens: a comment, a quoted string, a brace or semicolon, or a word.
CONF_TOKEN = re.compile(r"""#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};"'#][^\s{};]*""")
NOT_HTTP = frozenset({"stream", "mail", "upstream"})


class Server(t.NamedTuple):
    """An http server block of nginx's configuration: where it is (file:line), its listen and server_name."""

    where: str
    listens: list[list[str]]
    names: list[str]


class Target(t.NamedTuple):
    """One place to ask: connect to address:port, name the site `host` (Host header and TLS SNI)."""

    scheme: str
    address: str
    port: int
    host: str
    path: str
    source: str

    @property
    def url(self) -> str:
        shown = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{shown}:{self.port}{self.path}"


def server_blocks(dump: str) -> list[Server]:
    """The http server blocks of an `nginx -T` dump, file by file. A listen that an included file adds to a
    server block is not seen (name the site with maintenance_probe_urls then)."""
    servers: list[Server] = []
    sections = DUMP_FILE.split(dump)
    for path, text in zip(sections[1::2], sections[2::2]):
        stack: list[str] = []
        words: list[str] = []
        open_servers: list[tuple[int, Server]] = []
        for match in CONF_TOKEN.finditer(text):
            word = match.group()
            inside = open_servers[-1][1] if open_servers and open_servers[-1][0] == len(stack) else None
            if word.startswith("#"):
                continue
            if word == "{":
                stack.append(words[0] if words else "")
                if stack[-1] == "server" and not NOT_HTTP.intersection(stack[:-1]):
                    line = text.count("\n", 0, match.start())  # text starts with the header line's newline
                    open_servers.append((len(stack), Server(f"{path}:{line}", [], [])))
            elif word == "}":
                if open_servers and open_servers[-1][0] == len(stack):
                    servers.append(open_servers.pop()[1])
                if stack:
                    stack.pop()
            elif word == ";":
                if inside is not None and words and words[0] == "listen":
                    inside.listens.append(words[1:])
                elif inside is not None and words and words[0] == "server_name":
                    inside.names.extend(words[1:])
            else:
                words.append(word.strip("\"'"))
                continue
            words = []
    return servers


def listen_address(args: list[str]) -> tuple[str, str, int] | None:
    """(scheme, address to connect to, port) of a listen directive; None for a unix socket or QUIC (UDP)."""
    spec = args[0] if args else "80"
    if spec.startswith("unix:") or "quic" in args[1:]:
        return None
    if spec.startswith("["):
        address, rest = spec[1:].partition("]")[::2]
        port = rest[1:] if rest.startswith(":") else "80"
    elif spec.isdigit():
        address, port = "*", spec
    elif ":" in spec:
        address, port = spec.rsplit(":", 1)
    else:
        address, port = spec, "80"
    if not port.isdigit():
        return None
    # A wildcard listen is reached over loopback from the host nginx runs on.
    address = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)  # noqa: S104
    return ("https" if "ssl" in args[1:] else "http"), address, int(port)


def plain_name(names: list[str]) -> str | None:
    """The first server_name a client can send as it is (not a wildcard, regex or the catch-all `_`)."""
    return next((n for n in names if n and n != "_" and not n.startswith(("~", ".", "$")) and "*" not in n), None)


def probe_targets(dump: str, urls: list[str]) -> list[Target]:
    """Where the proof asks: the URLs the user named, else every listening address of every http server block
    of the configuration, with that server's name (or the bare address, which its default server answers)."""
    if urls:
        targets = []
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
                raise NginxError(f"maintenance_probe_urls entry {url!r} is not an http:// or https:// URL with a host.")
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                raise NginxError(f"maintenance_probe_urls entry {url!r} has a bad port.") from None
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            targets.append(Target(parts.scheme, parts.hostname, port, parts.hostname, path, "maintenance_probe_urls"))
        return targets
    found: dict[tuple[str, str, int, str], Target] = {}
    for server in server_blocks(dump):
        for args in server.listens or [["80"]]:
            listen = listen_address(args)
            if listen is not None:
                host = plain_name(server.names) or listen[1]
                found.setdefault((*listen, host), Target(*listen, host, PROBE_PATH, server.where))
    if not found:
        raise NginxError(
            "nginx's configuration has no http server block listening on an address, so maintenance cannot be "
            "proven; give maintenance_probe_urls, the site's address as this host reaches it."
        )
    return list(found.values())


class ProbeConnection(http.client.HTTPSConnection):
    """A connection to one address that names the site `host` (Host header and TLS SNI), like curl --resolve."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.tls = tls_context(False, None)
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.target = target

    def connect(self) -> None:
        self.sock = socket.create_connection((self.target.address, self.target.port), self.timeout)
        if self.target.scheme == "https":
            server_name = None if self.target.host == self.target.address else self.target.host
            self.sock = self.tls.wrap_socket(self.sock, server_hostname=server_name)


def probe(target: Target, path: str, token: str, timeout: float) -> dict[str, t.Any]:
    """One GET with the probe header: the status, Retry-After, and whether the maintenance snippet answered."""
    answer: dict[str, t.Any] = {"url": target.url.rsplit(target.path, 1)[0] + path, "host": target.host}
    answer["server"] = target.source
    conn = ProbeConnection(target, timeout)
    try:
        conn.request("GET", path, headers={PROBE_HEADER: token, "User-Agent": "stackops.runbooks.nginx_config"})
        response = conn.getresponse()
        response.read(64 * 1024)
        answer.update(status=response.status, retry_after=response.getheader("Retry-After"))
        answer["maintenance_page"] = response.getheader(PROBE_HEADER) == token
    except (OSError, http.client.HTTPException) as exc:
        answer.update(status=None, error=describe(exc))
    finally:
        conn.close()
    return answer


def probe_problem(answer: dict[str, t.Any], want_page: bool, retry_after: int) -> str | None:
    """What is wrong with one answer, None when it is what the state needs."""
    if answer["status"] is None:
        return f"{answer['url']} (Host {answer['host']}) could not be asked: {answer['error']}"
    if (
        want_page
        and answer["maintenance_page"]
        and answer["status"] == 503
        and answer["retry_after"] == str(retry_after)
    ):
        return None
    if not want_page and not answer["maintenance_page"]:
        return None
    seen = (
        f"{answer['status']}, Retry-After {answer['retry_after'] or 'missing'}, "
        f"{'the' if answer['maintenance_page'] else 'not the'} maintenance page"
    )
    return f"{answer['url']} (Host {answer['host']}, server at {answer['server']}) answered {seen}"


def prove_maintenance(
    targets: list[Target], on: bool, retry_after: int, exempt: list[str], timeout: float
) -> tuple[float | None, list[dict[str, t.Any]], list[str]]:
    """Ask every target until each answers as the state needs, or the time is up. On: 503 with Retry-After from
    the maintenance snippet, and the exempt paths still reach the site; off: the site's own answer. Returns when
    the proof held (None when it did not), the last answers and what was wrong with them."""
    token = secrets.token_hex(PROBE_TOKEN_LENGTH // 2)
    deadline = time.monotonic() + timeout
    while True:
        answers, problems = [], []
        for target in targets:
            for path, want_page in [(target.path, on), *((p, False) for p in exempt if on)]:
                answer = probe(target, path, token, max(0.5, min(5.0, deadline - time.monotonic())))
                answers.append(answer)
                problems += [p for p in [probe_problem(answer, want_page, retry_after)] if p]
        if not problems:
            return time.time(), answers, []
        if time.monotonic() >= deadline:
            return None, answers, problems
        time.sleep(0.2)
