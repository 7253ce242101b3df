# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""nginx on the host or in a compose service: where its files are on each side, its config test against a
candidate that is not live yet, and a reload that is confirmed by new worker processes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import stat
import tempfile
import time
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ComposeProject, Container, ProjectRef
from ansible_collections.stackops.runbooks.plugins.module_utils._health import rate, verdict
from ansible_collections.stackops.runbooks.plugins.module_utils._place import Place
from ansible_collections.stackops.runbooks.plugins.module_utils._tls import CertificateError, parse_pem

SHADOW_PREFIX = ".stackops-validate-"
# What ends a directive, opens or closes a block or an `if` condition, starts a comment, quotes, escapes or names a
# variable in nginx's configuration: a value the module writes there unquoted may hold none of them.
SPECIAL = frozenset(";{}()#\"'\\$`")
PID_DIRECTIVE = re.compile(r"^\s*pid\s+([^;\s]+)\s*;", re.M)


class NginxError(StackopsError):
    """An nginx step failed."""


def under(path: str, root: str) -> str | None:
    """path relative to root when it is inside it, None otherwise."""
    path, root = os.path.normpath(path), os.path.normpath(root)
    if path == root:
        return ""
    return os.path.relpath(path, root) if path.startswith(root.rstrip("/") + "/") else None


def translate(path: str, prefixes: list[tuple[str, str]]) -> str | None:
    """path with its longest matching prefix (first of each pair) swapped for the second; None when none match."""
    for old, new in sorted(prefixes, key=lambda pair: -len(pair[0])):
        rel = under(path, old)
        if rel is not None:
            return os.path.normpath(os.path.join(new, rel))
    return None


def child_pids(parent: int) -> set[int]:
    """The pids whose parent is `parent`, read from /proc (nginx's workers are the master's children)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.add(int(entry))
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def stamp(line: str) -> float:
    """The time of a `docker logs --timestamps` line (RFC 3339 with nanoseconds), 0 when it has none."""
    text = line.split(" ", 1)[0]
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", text)
    if not match:
        return 0.0
    whole = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return whole.timestamp() + float(match.group(2) or 0)


def check_word(value: str, option: str, spaces: bool = False) -> str:
    """A value written into nginx's configuration as it is (a path, an upstream server): refused when it could end
    the directive and start another. `spaces` allows single spaces between parameters (`10.0.0.5:8000 backup`)."""
    bad = sorted(
        {c for c in value if c in SPECIAL or (c.isspace() and not (spaces and c == " ")) or not c.isprintable()}
    )
    if not value.strip() or bad:
        shown = " ".join(repr(c) for c in bad) or "nothing"
        raise NginxError(
            f"{option} {value!r} holds {shown}: nginx would read that as the end of the directive, a block or a "
            "comment. Give the value alone."
        )
    return value


def check_address(value: str, option: str) -> str:
    """An address or a network (CIDR) for nginx's geo block."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise NginxError(
            f"{option} {value!r} is not an IP address or network; give one such as 10.0.0.5 or 10.0.0.0/8."
        ) from None
    return value


def emerg_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "[emerg]" in line]


WARN = re.compile(r"\[warn\] (?:\d+#\d+: )?(.*)")


def warn_lines(text: str) -> list[str]:
    """What nginx -t accepts but warns about, without the time and pid it prefixes: from 1.25.1 `listen ... http2`
    is deprecated for the `http2` directive, and http2_push is ignored."""
    return [found.group(1).strip() for found in map(WARN.search, text.splitlines()) if found]


class Nginx:
    """One nginx: on the host (nginx_binary) or in a compose service (compose_project_src + compose_service)."""

    def __init__(
        self,
        module: t.Any,
        binary: str,
        service: str | None = None,
        compose_project: ProjectRef | None = None,
        config: str | None = None,
        pid_file: str | None = None,
    ) -> None:
        """compose_project: the project of nginx's compose service (None on the host)."""
        self.module = module
        self.binary = binary
        self.service = service
        self.project: ComposeProject | None = None
        # (host-side prefix, nginx-side prefix): what a path on the host is called where nginx runs.
        self.mounts: list[tuple[str, str]] = [("/", "/")]
        if compose_project is not None:
            if not self.service:
                raise NginxError("compose_project_src is set but compose_service is not; name nginx's service.")
            self.project = ComposeProject(module, compose_project)
            self.project.check_services([self.service])
            spec = self.project.services[self.service]
            self.mounts = [
                (v["source"], v["target"]) for v in spec.get("volumes") or [] if v.get("type") == "bind"
            ] or []
            command = spec.get("command") or []
            if not config and "-c" in command[:-1]:
                config = command[command.index("-c") + 1]
        self.place = Place(module, NginxError, self.project, self.service)
        self.config: str = config or "/etc/nginx/nginx.conf"
        self.pid_file = pid_file
        self._container: Container | None = None

    # --- paths ------------------------------------------------------------------------------------------

    def to_nginx(self, host_path: str) -> str:
        found = translate(host_path, self.mounts)
        if found is None:
            raise NginxError(
                f"{host_path} is not inside a bind mount of service {self.service}, so nginx cannot see it; "
                "point dest at a file in a mounted directory."
            )
        return found

    def to_host(self, nginx_path: str) -> str:
        found = translate(nginx_path, [(target, source) for source, target in self.mounts])
        if found is None:
            raise NginxError(
                f"nginx's {nginx_path} is not in a bind mount of service {self.service}: its configuration cannot "
                "be managed from the host. Mount the configuration directory."
            )
        return found

    # --- running ----------------------------------------------------------------------------------------

    def run(self, *args: str) -> tuple[int, str, str]:
        return self.place.call(
            self.binary, *args, missing=f"nginx_binary {self.binary} is not on PATH; give its full path."
        )

    def container(self) -> Container:
        """nginx's running container, looked up once: the reload loop asks for it every half second."""
        if self._container is None:
            if self.project is None:
                raise NginxError("nginx runs on the host here; it has no container.")
            running = [c for c in self.project.containers() if c.service == self.service and c.running]
            if not running:
                raise NginxError(f"Service {self.service} has no running container; start nginx first.")
            self._container = running[0]
        return self._container

    def master_pid(self) -> int:
        if self.project is not None:
            container = self.container()
            rc, out, err = self.module.run_command(
                [*self.project.docker(), "inspect", "--format", "{{.State.Pid}}", container.id]
            )
            if rc != 0 or not out.strip().isdigit():
                raise NginxError(f"Could not read the pid of {container.name}: {err.strip()}")
            pid = int(out.strip())
            # nginx may run under a wrapper: the master is the process whose title says so.
            candidates = [pid, *sorted(child_pids(pid))]
            return next((p for p in candidates if cmdline(p).startswith("nginx: master")), pid)
        pid_file = self.pid_file or self.pid_file_from_config()
        try:
            with open(pid_file, encoding="ascii") as handle:
                return int(handle.read().strip())
        except (OSError, ValueError) as exc:
            raise NginxError(f"Could not read nginx's pid from {pid_file} ({exc}); is nginx running?") from None

    def pid_file_from_config(self) -> str:
        try:
            with open(self.config, encoding="utf-8", errors="replace") as handle:
                found = PID_DIRECTIVE.search(handle.read())
        except OSError:
            found = None
        return found.group(1) if found else "/run/nginx.pid"

    def workers(self, master: int) -> set[int]:
        return {p for p in child_pids(master) if "worker process" in cmdline(p)}

    def recent_emerg(self, since: float) -> list[str]:
        """[emerg] lines nginx logged since a time, when its log can be read (a compose service's output). Each
        line's own timestamp is compared: `docker logs --since` counts whole seconds."""
        if self.project is None:
            return []
        _rc, out, err = self.module.run_command(
            [*self.project.docker(), "logs", "--timestamps", "--since", str(int(since)), self.container().id]
        )
        fresh = [line.split(" ", 1)[1] for line in (err + out).splitlines() if " " in line and stamp(line) >= since]
        return emerg_lines("\n".join(fresh))

    def reload(self, timeout: float, stop_on_emerg: bool = True) -> tuple[bool, list[str]]:
        """Signal the master to reload (what `nginx -s reload` does) and wait for proof: new worker processes.
        A configuration that passed `nginx -t` but cannot be applied (a port held by another process) leaves the
        old workers in place and logs [emerg]: that is (False, the [emerg] lines).

        A master that failed to bind retries for about 2.5 s and handles a new reload signal only after that; the
        reload that puts the previous file back (stop_on_emerg=False) waits through those retries for workers."""
        master = self.master_pid()
        before = self.workers(master)
        started = time.time()
        os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        checked_log = 0.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if self.workers(master) - before:
                return True, []
            if stop_on_emerg and time.monotonic() - checked_log > 0.5:
                checked_log = time.monotonic()
                emerg = self.recent_emerg(started)
                if emerg:
                    return False, emerg
        return False, self.recent_emerg(started)


def validate_candidates(nginx: Nginx, candidates: dict[str, bytes]) -> tuple[bool, str, str]:
    """`nginx -T` of the whole configuration with the candidates (host path: content) in place, without touching
    the live tree: the main config's directory is mirrored into a hidden folder beside it (inside the same mount,
    so nginx in a container sees it), paths into that directory are pointed at the mirror, and the mirror is
    tested. Returns whether nginx accepted it, its test output, and its dump of every file it read (-T), with the
    real paths."""
    root_nginx = os.path.dirname(nginx.config)
    root_host = nginx.to_host(root_nginx)
    relative = {}
    for path, content in candidates.items():
        rel = under(path, root_host)
        if rel is None:
            raise NginxError(
                f"dest {path} is outside the directory of nginx's main config ({root_host}); only files under it "
                "can be tested before they go live."
            )
        relative[rel] = content
    shadow = tempfile.mkdtemp(prefix=SHADOW_PREFIX, dir=root_host)
    shadow_nginx = nginx.to_nginx(shadow)
    old, new = f"{root_nginx.rstrip('/')}/".encode(), f"{shadow_nginx}/".encode()
    try:
        for folder, dirs, files in os.walk(root_host):
            dirs[:] = [d for d in dirs if not d.startswith(SHADOW_PREFIX)]
            for name in files:
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, root_host)
                if rel not in relative:
                    copy_pointed(path, os.path.join(shadow, rel), old, new)
        for rel, content in relative.items():
            target = os.path.join(shadow, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(content.replace(old, new))
        rc, out, err = nginx.run("-T", "-c", os.path.join(shadow_nginx, os.path.relpath(nginx.config, root_nginx)))
        return rc == 0, err.replace(shadow_nginx, root_nginx).strip(), out.replace(shadow_nginx, root_nginx)
    finally:
        shutil.rmtree(shadow, ignore_errors=True)


def copy_pointed(source: str, target: str, old: bytes, new: bytes) -> None:
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError:
        return  # a dangling symlink or an unreadable file: nginx would fail on it too, and say so
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as handle:
        handle.write(data.replace(old, new))
    os.chmod(target, stat.S_IMODE(os.stat(source).st_mode))


MAINTENANCE_PAGE_URI = "/stackops-maintenance.html"
# nginx answers this status for maintenance and error_page turns it into 503: the app's own 503s stay untouched.
MAINTENANCE_STATUS = 597
DEFAULT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Down for maintenance</title></head>
<body><h1>Down for maintenance</h1><p>We will be back shortly. Please try again in a few minutes.</p></body></html>
"""
HEADER = "# Managed by stackops.runbooks.nginx_config (maintenance mode): changes here are overwritten.\n"
PROBE_HEADER = "X-Stackops-Maintenance-Probe"
PROBE_VARIABLE = PROBE_HEADER.lower().replace("-", "_")
PROBE_TOKEN_LENGTH = 32
PROBE_PATH = "/stackops-maintenance-probe"


def regex_quote(text: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}\"])", r"\\\1", text)


def maintenance_snippets(flag: str, page: str, retry_after: int, allow: list[str], exempt: list[str]) -> dict[str, str]:
    """The http-level and server-level snippets (nginx-side paths in, file contents out). The flag file is tested
    on every request, so maintenance flips without a reload.

    A request with the probe header is judged as any visitor's, whatever its address: the header can only take
    access away, never give it, and it is how the module proves maintenance from a host that is let through. The
    maintenance answer echoes a well-formed probe token, so the proof knows this snippet made that answer."""
    http = HEADER + "geo $stackops_maintenance_allowed {\n    default 0;\n"
    http += "".join(f"    {address} 1;\n" for address in allow) + "}\n"
    http += (
        f"map $http_{PROBE_VARIABLE} $stackops_maintenance_bypass {{\n"
        '    "" $stackops_maintenance_allowed;\n'
        "    default 0;\n"
        "}\n"
        f"map $http_{PROBE_VARIABLE} $stackops_maintenance_probe {{\n"
        f'    "~^[0-9a-f]{{{PROBE_TOKEN_LENGTH}}}$" $http_{PROBE_VARIABLE};\n'
        '    default "";\n'
        "}\n"
    )
    prefixes = "|".join(regex_quote(p) for p in [MAINTENANCE_PAGE_URI, *exempt])
    server = (
        HEADER
        + "set $stackops_maintenance 0;\n"
        + f"if (-f {flag}) {{ set $stackops_maintenance 1; }}\n"
        + "if ($stackops_maintenance_bypass) { set $stackops_maintenance 0; }\n"
        + f'if ($uri ~ "^(?:{prefixes})") {{ set $stackops_maintenance 0; }}\n'
        + f"if ($stackops_maintenance) {{ return {MAINTENANCE_STATUS}; }}\n"
        + f"error_page {MAINTENANCE_STATUS} =503 {MAINTENANCE_PAGE_URI};\n"
        + f"location = {MAINTENANCE_PAGE_URI} {{\n"
        + "    internal;\n"
        + f"    alias {page};\n"
        + "    default_type text/html;\n"
        + f"    add_header Retry-After {retry_after} always;\n"
        + '    add_header Cache-Control "no-store" always;\n'
        + f"    add_header {PROBE_HEADER} $stackops_maintenance_probe always;\n"
        + "}\n"
    )
    return {"http.conf": http, "server.conf": server}


def included(dump: str, nginx_path: str) -> bool:
    """Whether nginx read this file (nginx -T prints `# configuration file PATH:` for each)."""
    return f"# configuration file {nginx_path}:" in dump


def switch_upstream(text: str, name: str, servers: list[str]) -> str:
    """The config text with the `server` lines of `upstream NAME { ... }` replaced by the given servers, at the
    place of the first one; the block's other directives (keepalive, hash...) stay."""
    opening = re.search(rf"(?m)^[ \t]*upstream[ \t]+{re.escape(name)}[ \t]*\{{", text)
    if not opening:
        raise NginxError(f"No `upstream {name} {{ ... }}` block in the file; name an upstream it defines.")
    end = text.find("}", opening.end())
    if end < 0:
        raise NginxError(f"The upstream {name} block is not closed.")
    body = text[opening.end() : end]
    lines = body.split("\n")
    server_lines = [i for i, line in enumerate(lines) if re.match(r"^\s*server\s+[^;]+;\s*(#.*)?$", line)]
    indent = (
        lines[server_lines[0]][: len(lines[server_lines[0]]) - len(lines[server_lines[0]].lstrip())]
        if server_lines
        else "    "
    )
    new = [f"{indent}server {server};" for server in servers]
    if server_lines:
        first = server_lines[0]
        kept = [line for i, line in enumerate(lines) if i not in server_lines]
        lines = kept[:first] + new + kept[first:]
    else:
        lines = [lines[0], *new, *lines[1:]]
    return text[: opening.end()] + "\n".join(lines) + text[end:]


CERTIFICATE_DIRECTIVE = re.compile(r"(?m)^[ \t]*ssl_certificate[ \t]+([^;\s]+)[ \t]*;")


def certificate_paths(dump: str) -> list[str]:
    """The certificate files an `nginx -T` dump references (not keys), each once, in order."""
    return list(dict.fromkeys(path.strip("'\"") for path in CERTIFICATE_DIRECTIVE.findall(dump)))


def tls_report(nginx: Nginx, dump: str, warning_days: float, critical_days: float) -> list[dict[str, t.Any]]:
    """Each certificate nginx serves: subject, expiry, days left and a severity; a file it cannot read is
    critical, a path built from variables cannot be followed and says so."""
    report = []
    for path in certificate_paths(dump):
        entry: dict[str, t.Any] = {"path": path}
        if "$" in path:
            report.append({**entry, "severity": "unknown", "error": "the path is built from variables"})
            continue
        try:
            with open(nginx.to_host(path), "rb") as handle:
                chain = parse_pem(handle.read())
            if not chain:
                raise CertificateError("no PEM certificate in the file")
        except (OSError, StackopsError) as exc:
            report.append({**entry, "severity": "critical", "error": str(exc)})
            continue
        leaf = chain[0].as_dict()
        found = rate("tls", path, leaf["days_left"], warning_days, critical_days, higher_is_worse=False)
        report.append({**entry, **leaf, "severity": verdict(found)})
    return report


def websocket_snippets(read_timeout: int, send_timeout: int) -> dict[str, str]:
    """The runbooks' WebSocket proxy settings as two snippets: the http-level map and the location settings."""
    header = "# Managed by stackops.runbooks.nginx_config (WebSocket proxy): changes here are overwritten.\n"
    http = header + "map $http_upgrade $stackops_connection_upgrade {\n    default upgrade;\n    ''      close;\n}\n"
    location = (
        header
        + "proxy_http_version 1.1;\n"
        + "proxy_set_header Upgrade $http_upgrade;\n"
        + "proxy_set_header Connection $stackops_connection_upgrade;\n"
        + f"proxy_read_timeout {read_timeout}s;\n"
        + f"proxy_send_timeout {send_timeout}s;\n"
    )
    return {"http.conf": http, "location.conf": location}
