#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_config
short_description: Place an nginx configuration file only after nginx accepted it, and prove the reload took
version_added: 0.1.0
description:
  - Replaces the runbooks' "edit the config, C(nginx -t), reload" for nginx on the host or in a compose service.
  - The candidate is tested with C(nginx -t) B(before) it goes live. The main config's directory is mirrored into
    a hidden folder beside it with the candidate in place of O(dest), and the mirror is tested; the live tree is
    not touched. A rejected candidate fails the task with nginx's C([emerg]) line, and O(dest) stays byte for
    byte as it was.
  - An accepted candidate is written beside O(dest), synced, and renamed over it (atomic). nginx is then reloaded
    and the reload is confirmed by new worker processes. A configuration that passes C(nginx -t) but cannot be
    applied, such as a C(listen) on a port another process holds, reloads with exit code 0 and keeps the old
    workers. The module sees that, puts the previous file back, reloads again, and fails with nginx's reason.
  - Nothing changes when the file already has this content, mode and owner; check mode gives the same answer and
    still tests the candidate.
  - O(maintenance=on) puts the site in maintenance without a reload. The module manages three files in
    O(maintenance_dir), an http-level snippet (the addresses allowed through, as a C(geo) block), a server-level
    snippet and the page, and then creates a flag file that the server snippet tests on every request. Every
    method (GET, HEAD, POST) gets C(503) with the page, C(Retry-After) and a C(no-store) C(Cache-Control)
    header, except the exempt paths (health checks) and the allowed client addresses. The app's own 503
    answers are left alone. O(maintenance=off) removes the flag. The snippets go through the same test,
    write and confirmed reload as any change, and only when they change.
  - The answer is proven from nginx's side, on every run that is not in check mode (also when nothing had to be
    switched). The module asks every listening address of every http server block of nginx's configuration (or
    O(maintenance_probe_urls)), naming that server (C(server_name), else the address). With V(on), each must answer
    C(503) with C(Retry-After), and each exempt path must still reach the site; with V(off), none may answer the
    maintenance page. RV(maintenance_switched_at) is the time that proof held.
  - The proof's requests carry an C(X-Stackops-Maintenance-Probe) header with a random token for the run. The
    snippets treat such a request as any visitor's whatever its address, so the 503 is proven even from a host
    that O(maintenance_allow) lets through; the header can only take access away, it opens no bypass. The
    maintenance answer echoes the token, so a 503 from the app or another server does not count as proof.
  - When the proof fails the flag is put back as it was and the task fails, naming what each address answered
    and the likely causes (the flag cannot be read by nginx's worker user, the server block does not include the
    server snippet, another server block answers that address).
  - nginx must include the snippets, C(include DIR/http*.conf;) in the http block and C(include
    DIR/server*.conf;) in each server block (globs match nothing until the files exist). The module checks that
    nginx reads them and says what to add when it does not.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose.project
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: The candidate is tested in check mode too (in a temporary mirror that is removed).
  diff_mode:
    support: full
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  dest:
    description:
      - The live file, as a path on the managed host. It must be inside the directory of the main config
        (O(config)), for example a site in C(conf.d/). Needed with O(content) or O(src).
      - With nginx in a compose service, the file must be in a directory that the service bind-mounts; the
        module maps the path to the container's.
    type: path
  content:
    description: The new content of O(dest). Render templates with the P(ansible.builtin.template#lookup) lookup.
    type: str
  src:
    description: A file on the managed host whose content goes to O(dest).
    type: path
  config:
    description:
      - nginx's main configuration file, as nginx sees it. Default is the C(-c) argument of the compose service's
        command, else C(/etc/nginx/nginx.conf).
    type: str
  backup:
    description: Keep a timestamped copy of the previous file beside it when it is replaced.
    type: bool
    default: false
  mode:
    description: The file's mode, as an octal string. Default keeps the existing mode, or C(0644) for a new file.
    type: str
  owner:
    description: The file's owner. Default keeps the existing owner (root for a new file).
    type: str
  group:
    description: The file's group. Default keeps the existing group.
    type: str
  compose_service:
    description: The service that runs nginx; needed with O(compose_project_src).
    type: str
  nginx_binary:
    description: The nginx program, on the host or in the service.
    type: str
    default: nginx
  pid_file:
    description:
      - For nginx on the host, its pid file. Default is the C(pid) directive of O(config), else C(/run/nginx.pid).
    type: path
  reload:
    description: Reload nginx after a change, and confirm that the new configuration is applied.
    type: bool
    default: true
  reload_timeout:
    description: Seconds to wait for new worker processes after the reload before rolling back (at least 1).
    type: int
    default: 10
  upstream:
    description:
      - Point this upstream, defined in O(dest), at O(upstream_servers) (a blue/green switch). Its C(server)
        lines are replaced where the first one was; its other directives stay. The change is tested, applied and
        confirmed like any other. With O(content) or O(src), the switch is made in that content.
    type: str
  upstream_servers:
    description:
      - The servers of O(upstream), each as nginx writes it after C(server) (C(10.0.0.5:8000 backup)).
      - A server holding C(;), braces, parentheses, quotes, C(#), C($) or a newline is refused, for it would add
        directives of its own.
    type: list
    elements: str
  tls_report:
    description:
      - Report every certificate nginx's configuration references (C(ssl_certificate)) with its subject, expiry
        and days left, in RV(certificates). A certificate at or under O(tls_warning_days) or O(tls_critical_days)
        also gives a warning in the task output.
    type: bool
    default: false
  tls_warning_days:
    description: Days to expiry at or under which a certificate is a warning.
    type: int
    default: 30
  tls_critical_days:
    description: Days to expiry at or under which a certificate is critical (the runbooks alert under 7 days).
    type: int
    default: 7
  websocket:
    description:
      - Manage the WebSocket proxy snippets in O(websocket_dir). C(http.conf) maps C($http_upgrade) to the
        C(Connection) header (include it in the http block); C(location.conf) sets HTTP/1.1, the C(Upgrade) and
        C(Connection) headers and the read and send timeouts (include it in each WebSocket location, after
        C(proxy_pass)). They are tested, written and applied like any change, and nginx must include them.
    type: bool
    default: false
  websocket_dir:
    description: Where the WebSocket snippets live, as a host path. Default is C(websocket/) beside the main config.
    type: path
  websocket_read_timeout:
    description: Seconds a WebSocket may stay silent towards nginx before nginx closes it (C(proxy_read_timeout)).
    type: int
    default: 3600
  websocket_send_timeout:
    description: Seconds nginx waits to send to the app before it closes the WebSocket (C(proxy_send_timeout)).
    type: int
    default: 3600
  maintenance:
    description:
      - V(on) answers 503 with the maintenance page; V(off) serves the site again. Leave it out to not touch
        maintenance mode.
    type: raw
  maintenance_dir:
    description:
      - Where the maintenance snippets, page and flag live, as a host path. Default is C(maintenance/) beside
        the main config.
    type: path
  maintenance_flag:
    description:
      - The flag file whose presence means maintenance. Default is C(on) in O(maintenance_dir).
      - This path and O(maintenance_dir) are written into nginx's configuration as they are, so they may not hold
        spaces, C(;), braces, parentheses, quotes, C(#) or C($).
    type: path
  maintenance_page:
    description: An HTML file on the managed host to serve as the maintenance page. Default is a plain page.
    type: path
  retry_after:
    description: The C(Retry-After) header of the maintenance answer, in seconds.
    type: int
    default: 300
  maintenance_allow:
    description: Client addresses or networks (CIDR) that still reach the site in maintenance; anything else is refused.
    type: list
    elements: str
    default: []
  maintenance_exempt_paths:
    description:
      - URI prefixes that still reach the site in maintenance, such as health checks. Each starts with C(/) and
        holds no spaces, C(;), braces, parentheses, quotes, C(#) or C($).
    type: list
    elements: str
    default: [/health]
  maintenance_probe_urls:
    description:
      - Where to prove the maintenance state, as this host reaches the site (C(http://127.0.0.1:8080/), an https
        URL is asked without certificate checks). Default is every listening address of every http server block of
        nginx's configuration, asked for C(/stackops-maintenance-probe).
      - Give them when nginx runs in a container whose ports are published under other numbers, when a server
        block that is not the site's must stay up during maintenance, or when a listen comes from an included
        file. The path must not be exempt.
    type: list
    elements: str
    default: []
  maintenance_probe_timeout:
    description: Seconds to wait for nginx to answer with the new maintenance state before undoing the switch (at
      least 1).
    type: int
    default: 10
notes:
  - Bind-mount the configuration directory, not single files, into an nginx container. A renamed file is a new
    inode that a single-file bind mount does not show.
"""

EXAMPLES = r"""
- name: Place the app's site, tested before it goes live and rolled back if nginx cannot apply it
  stackops.runbooks.nginx_config:
    dest: /srv/app/nginx/conf.d/app.conf
    content: "{{ lookup('ansible.builtin.template', 'app.conf.j2') }}"
    compose_project_src: /srv/app
    compose_service: nginx
    backup: true

- name: Maintenance on, with health checks and the office network let through
  stackops.runbooks.nginx_config:
    maintenance: "on"
    retry_after: 600
    maintenance_allow: [203.0.113.0/24]
    maintenance_exempt_paths: [/health]
    compose_project_src: /srv/app
    compose_service: nginx

- name: Maintenance on, proven through the site's public address (the office network is let through)
  stackops.runbooks.nginx_config:
    maintenance: "on"
    maintenance_allow: [203.0.113.0/24]
    maintenance_probe_urls: [https://app.example.com/]
    compose_project_src: /srv/app
    compose_service: nginx

- name: Switch traffic to the green deployment
  stackops.runbooks.nginx_config:
    dest: /srv/app/nginx/conf.d/app.conf
    upstream: app
    upstream_servers: [127.0.0.1:8001]
    compose_project_src: /srv/app
    compose_service: nginx

- name: nginx on the host
  stackops.runbooks.nginx_config:
    dest: /etc/nginx/sites-enabled/app.conf
    src: /etc/nginx/sites-available/app.conf
"""

RETURN = r"""
dest:
  description: The live file.
  returned: always
  type: str
maintenance:
  description: The maintenance state after the run (or as it would be, in check mode).
  returned: when O(maintenance) is given
  type: str
  sample: "on"
validated:
  description: Whether nginx accepted the candidate (C(nginx -t)); false when the content did not change.
  returned: always
  type: bool
applied:
  description: Whether the reload was confirmed by new worker processes.
  returned: always
  type: bool
backup_file:
  description: The copy of the previous file, with O(backup).
  returned: when a backup was made
  type: str
validation_output:
  description:
    - What C(nginx -t) printed for the candidate.
    - Its C([warn]) lines (such as the C(listen ... http2) that nginx 1.25.1 and later deprecate) are also task
      warnings.
  returned: when the candidate was tested
  type: str
maintenance_switched_at:
  description: When nginx was seen answering the new way after the flag file appeared or went (seconds since the
    epoch); for audit logs and the switch benchmark.
  returned: when maintenance was switched
  type: float
maintenance_probe:
  description:
    - What nginx answered to the proof's requests, each with C(url), C(host) (the name asked for), C(server)
      (where that server block is, or V(maintenance_probe_urls)), C(status), C(retry_after), C(maintenance_page)
      (whether the maintenance snippet made the answer) and C(error) when the address could not be asked.
  returned: when O(maintenance) is given, except in check mode
  type: list
  elements: dict
  sample: [{url: "http://127.0.0.1:80/stackops-maintenance-probe", host: app.example.com,
            server: "/etc/nginx/conf.d/app.conf:3", status: 503, retry_after: "300", maintenance_page: true}]
certificates:
  description: With O(tls_report), each certificate file with C(subject), C(issuer), C(not_after), C(days_left) and
    C(severity) (V(ok), V(warning), V(critical)), or C(error) when it cannot be read.
  returned: when O(tls_report) is true
  type: list
  elements: dict
  sample: [{path: /etc/nginx/tls/site.crt, subject: app.example.com, not_after: "2027-01-01T00:00:00Z",
            days_left: 39.5, severity: ok}]
emerg:
  description: nginx's C([emerg]) lines when it refused to apply a configuration, before the rollback.
  returned: on a rolled-back reload
  type: list
  elements: str
"""

import functools
import grp
import os
import pwd
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import project_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._files import write_atomic
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import (
    DEFAULT_PAGE,
    PROBE_HEADER,
    PROBE_PATH,
    Nginx,
    NginxError,
    check_address,
    check_word,
    emerg_lines,
    included,
    maintenance_snippets,
    probe_targets,
    prove_maintenance,
    switch_upstream,
    tls_report,
    validate_candidates,
    warn_lines,
    websocket_snippets,
)


def argument_spec() -> dict[str, t.Any]:
    return {
        "dest": {"type": "path"},
        "content": {"type": "str"},
        "src": {"type": "path"},
        "config": {"type": "str"},
        "backup": {"type": "bool", "default": False},
        "mode": {"type": "str"},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        **project_argument_spec(),
        "compose_service": {"type": "str"},
        "nginx_binary": {"type": "str", "default": "nginx"},
        "pid_file": {"type": "path"},
        "reload": {"type": "bool", "default": True},
        "reload_timeout": {"type": "int", "default": 10},
        "upstream": {"type": "str"},
        "upstream_servers": {"type": "list", "elements": "str"},
        "tls_report": {"type": "bool", "default": False},
        "tls_warning_days": {"type": "int", "default": 30},
        "tls_critical_days": {"type": "int", "default": 7},
        "websocket": {"type": "bool", "default": False},
        "websocket_dir": {"type": "path"},
        "websocket_read_timeout": {"type": "int", "default": 3600},
        "websocket_send_timeout": {"type": "int", "default": 3600},
        "maintenance": {"type": "raw"},
        "maintenance_dir": {"type": "path"},
        "maintenance_flag": {"type": "path"},
        "maintenance_page": {"type": "path"},
        "retry_after": {"type": "int", "default": 300},
        "maintenance_allow": {"type": "list", "elements": "str", "default": []},
        "maintenance_exempt_paths": {"type": "list", "elements": "str", "default": ["/health"]},
        "maintenance_probe_urls": {"type": "list", "elements": "str", "default": []},
        "maintenance_probe_timeout": {"type": "int", "default": 10},
    }


class Wanted(t.NamedTuple):
    content: bytes
    mode: int
    uid: int
    gid: int


def wanted_file(params: dict[str, t.Any], live: bytes | None, current: os.stat_result | None) -> Wanted:
    """The file as it should be, from the options and what exists; bad input is refused here, before any change.
    With upstream, the live file (or the given content) gets that upstream's servers replaced."""
    if params["content"] is not None and params["src"] is not None:
        raise NginxError("Give exactly one of content and src.")
    if params["src"] is not None:
        try:
            with open(params["src"], "rb") as handle:
                content = handle.read()
        except OSError as exc:
            raise NginxError(
                f"Cannot read src {params['src']}: {exc.strerror}; give a file on the managed host."
            ) from None
    elif params["content"] is not None:
        content = params["content"].encode()
    elif params["upstream"] and live is not None:
        content = live
    else:
        raise NginxError("Give exactly one of content and src.")
    if params["upstream"]:
        if not params["upstream_servers"]:
            raise NginxError(f"upstream {params['upstream']} needs upstream_servers, the servers to point it at.")
        content = switch_upstream(content.decode(), params["upstream"], params["upstream_servers"]).encode()
    try:
        mode = int(params["mode"], 8) if params["mode"] else (current.st_mode & 0o7777 if current else 0o644)
    except ValueError:
        raise NginxError(f"mode {params['mode']!r} is not an octal mode such as '0644'.") from None
    if not 0 <= mode <= 0o7777:
        raise NginxError(f"mode {params['mode']!r} is not a file mode; give one from '0000' to '07777' such as '0644'.")
    try:
        uid = pwd.getpwnam(params["owner"]).pw_uid if params["owner"] else (current.st_uid if current else 0)
        gid = grp.getgrnam(params["group"]).gr_gid if params["group"] else (current.st_gid if current else 0)
    except KeyError as exc:
        raise NginxError(f"No such user or group on the host: {exc.args[0]}; fix owner or group.") from None
    return Wanted(content, mode, uid, gid)


def read_live(dest: str) -> tuple[bytes | None, os.stat_result | None]:
    try:
        with open(dest, "rb") as handle:
            return handle.read(), os.stat(dest)
    except FileNotFoundError:
        return None, None


def write(dest: str, want: Wanted, backup: bool = False) -> str | None:
    """dest replaced atomically by the wanted file (and backed up first, when asked and its content differs); the
    backup's path."""
    try:
        return write_atomic(dest, want.content, mode=want.mode, uid=want.uid, gid=want.gid, backup=backup)
    except OSError as exc:
        raise NginxError(f"Could not write {dest}: {exc}") from None


class Managed(t.NamedTuple):
    """One file this run manages: as it is (None when missing) and as it should be."""

    path: str
    live: bytes | None
    current: os.stat_result | None
    want: Wanted

    @property
    def content_changed(self) -> bool:
        return self.live != self.want.content

    @property
    def changed(self) -> bool:
        if self.current is None:
            return True
        attrs = (self.current.st_mode & 0o7777, self.current.st_uid, self.current.st_gid)
        return self.content_changed or attrs != (self.want.mode, self.want.uid, self.want.gid)


def managed(path: str, want_of: t.Callable[[bytes | None, os.stat_result | None], Wanted]) -> Managed:
    live, current = read_live(path)
    return Managed(path, live, current, want_of(live, current))


def root_file(content: bytes, _live: bytes | None, _current: os.stat_result | None) -> Wanted:
    """A managed snippet: root's, world-readable (nginx's workers read the page)."""
    return Wanted(content, 0o644, 0, 0)


def maintenance_state(value: t.Any) -> str | None:
    """on/off from the option; YAML 1.1 reads a bare on/off as a boolean."""
    if value is None:
        return None
    text = {True: "on", False: "off"}.get(value, str(value).strip().lower())
    if text not in ("on", "off"):
        raise NginxError(f"maintenance must be on or off, not {value!r}.")
    return text


class Required(t.NamedTuple):
    """A managed snippet nginx must read for a feature to work: where, and in which block it is included."""

    feature: str
    path: str
    block: str


def beside_config(nginx: Nginx, given: str | None, name: str) -> str:
    """A managed folder: the one given, or `name` beside nginx's main config (as a host path)."""
    return given or nginx.to_host(os.path.join(os.path.dirname(nginx.config), name))


def plan_maintenance(params: dict[str, t.Any], nginx: Nginx) -> tuple[list[Managed], dict[str, str], list[Required]]:
    folder = beside_config(nginx, params["maintenance_dir"], "maintenance")
    if params["retry_after"] < 0:
        raise NginxError(f"retry_after must be 0 or more seconds, not {params['retry_after']}.")
    paths = {
        "flag": params["maintenance_flag"] or os.path.join(folder, "on"),
        "page": os.path.join(folder, "page.html"),
        "http": os.path.join(folder, "http.conf"),
        "server": os.path.join(folder, "server.conf"),
    }
    page = DEFAULT_PAGE.encode()
    if params["maintenance_page"]:
        try:
            with open(params["maintenance_page"], "rb") as handle:
                page = handle.read()
        except OSError as exc:
            raise NginxError(f"Cannot read maintenance_page {params['maintenance_page']}: {exc.strerror}.") from None
    # Both paths are written into nginx's configuration as they are.
    snippets = maintenance_snippets(
        check_word(nginx.to_nginx(paths["flag"]), "maintenance_flag"),
        check_word(nginx.to_nginx(paths["page"]), "maintenance_dir"),
        params["retry_after"],
        params["maintenance_allow"],
        params["maintenance_exempt_paths"],
    )
    contents = {"page": page, "http": snippets["http.conf"].encode(), "server": snippets["server.conf"].encode()}
    files = [managed(paths[key], functools.partial(root_file, content)) for key, content in contents.items()]
    required = [Required("maintenance", paths["http"], "http"), Required("maintenance", paths["server"], "server")]
    return files, paths, required


def plan_websocket(params: dict[str, t.Any], nginx: Nginx) -> tuple[list[Managed], list[Required]]:
    folder = beside_config(nginx, params["websocket_dir"], "websocket")
    snippets = websocket_snippets(params["websocket_read_timeout"], params["websocket_send_timeout"])
    files, required = [], []
    for name, block in (("http.conf", "http"), ("location.conf", "location")):
        path = os.path.join(folder, name)
        files.append(managed(path, functools.partial(root_file, snippets[name].encode())))
        required.append(Required("websocket", path, block))
    return files, required


def plan_files(module: t.Any, nginx: Nginx) -> tuple[list[Managed], dict[str, str], list[Required]]:
    """The files this run manages, the maintenance paths (host side) when maintenance is asked for, and the
    snippets nginx must include."""
    params = module.params
    files: list[Managed] = []
    if params["content"] is not None or params["src"] is not None or params["upstream"]:
        if not params["dest"]:
            raise NginxError("content, src and upstream need dest, the live file to change.")
        files.append(managed(params["dest"], functools.partial(wanted_file, params)))
    elif params["dest"]:
        raise NginxError("dest needs content, src or upstream.")
    paths: dict[str, str] = {}
    required: list[Required] = []
    if maintenance_state(params["maintenance"]) is not None:
        more, paths, required = plan_maintenance(params, nginx)
        files += more
    if params["websocket"]:
        more, needed = plan_websocket(params, nginx)
        files += more
        required += needed
    if not files and not params["tls_report"]:
        raise NginxError(
            "Nothing to do: give dest with content, src or upstream, maintenance, websocket or tls_report."
        )
    if params["dest"] and not os.path.isdir(os.path.dirname(params["dest"])):
        raise NginxError(f"The directory of dest {params['dest']} does not exist.")
    return files, paths, required


def check_included(dump: str, nginx: Nginx, required: list[Required]) -> None:
    for need in required:
        path = nginx.to_nginx(need.path)
        if not included(dump, path):
            stem = os.path.splitext(os.path.basename(path))[0]
            raise NginxError(
                f"nginx's configuration does not include the {need.feature} {need.block} snippet {path}: add "
                f"`include {path};` to the {need.block} block where it applies (a glob such as "
                f"`include {os.path.dirname(path)}/{stem}*.conf;` also works before the file exists)."
            )


def diffs(files: list[Managed]) -> list[dict[str, str]]:
    return [
        {
            "before": (f.live or b"").decode(errors="replace"),
            "after": f.want.content.decode(errors="replace"),
            "before_header": f.path,
            "after_header": f.path,
        }
        for f in files
        if f.content_changed
    ]


def validate(nginx: Nginx, to_test: dict[str, bytes], required: list[Required], result: dict[str, t.Any]) -> str:
    """nginx -T of the configuration with the candidates in place (result gets validated and the test output);
    with maintenance, the snippets must be read. Returns nginx's dump of the configuration."""
    ok, output, dump = validate_candidates(nginx, to_test)
    result.update(validation_output=output, validated=bool(to_test) and ok)
    if not ok:
        reason = next(iter(emerg_lines(output)), output.splitlines()[-1] if output else "no output")
        names = ", ".join(sorted(to_test)) or "configuration"
        raise NginxError(f"nginx -t rejected the new {names}, left as it was: {reason}", **result)
    for line in warn_lines(output) if to_test else []:
        nginx.module.warn(f"nginx -t accepted the new configuration with a warning: {line}")
    if required:
        check_included(dump, nginx, required)
    return dump


def report_certificates(module: t.Any, nginx: Nginx, dump: str) -> list[dict[str, t.Any]]:
    params = module.params
    certificates = tls_report(nginx, dump, params["tls_warning_days"], params["tls_critical_days"])
    for cert in certificates:
        if cert["severity"] in ("warning", "critical"):
            detail = cert.get("error") or f"{cert['days_left']} days left (expires {cert['not_after']})"
            module.warn(f"TLS certificate {cert['path']} is {cert['severity']}: {detail}")
    return certificates


def check_params(params: dict[str, t.Any]) -> None:
    """What can be judged from the options alone, before nginx is looked at."""
    for name in ("reload_timeout", "websocket_read_timeout", "websocket_send_timeout", "maintenance_probe_timeout"):
        if params[name] < 1:
            raise NginxError(f"{name} must be at least 1 second, not {params[name]}.")
    for server in params["upstream_servers"] or []:
        check_word(server, "upstream_servers entry", spaces=True)
    for address in params["maintenance_allow"]:
        check_address(address, "maintenance_allow entry")
    for path in params["maintenance_exempt_paths"]:
        if not path.startswith("/"):
            raise NginxError(f"maintenance_exempt_paths entry {path!r} is not a URI path; start it with /.")
        check_word(path, "maintenance_exempt_paths entry")
        if not params["maintenance_probe_urls"] and PROBE_PATH.startswith(path):
            raise NginxError(
                f"maintenance_exempt_paths entry {path!r} exempts the path the module asks to prove maintenance "
                f"({PROBE_PATH}); give maintenance_probe_urls with a path that is not exempt."
            )


def run_module(module: t.Any) -> dict[str, t.Any]:
    params = module.params
    check_params(params)
    nginx = Nginx(module, params)
    files, paths, required = plan_files(module, nginx)
    result: dict[str, t.Any] = {"dest": params["dest"], "validated": False, "applied": False}
    if module._diff:
        result["diff"] = diffs(files)
    to_test = {f.path: f.want.content for f in files if f.content_changed}
    dump = ""
    if to_test or required or params["tls_report"]:
        dump = validate(nginx, to_test, required, result)
        if params["tls_report"]:
            result["certificates"] = report_certificates(module, nginx, dump)
    state = maintenance_state(params["maintenance"])
    targets = probe_targets(dump, params["maintenance_probe_urls"]) if state is not None else []
    flag = managed(paths["flag"], functools.partial(root_file, b"maintenance on\n")) if paths else None
    flag_flips = flag is not None and (flag.current is not None) != (state == "on")
    result["changed"] = any(f.changed for f in files) or flag_flips
    if state is not None:
        result["maintenance"] = state
    if module.check_mode:
        return result
    apply_files(module, nginx, files, to_test, result)
    if flag is not None:
        if flag_flips:
            flip(flag, state == "on")
        prove(module, flag, flag_flips, state == "on", targets, result, any(f.changed for f in files))
    return result


def apply_files(
    module: t.Any, nginx: Nginx, files: list[Managed], to_test: dict[str, bytes], result: dict[str, t.Any]
) -> None:
    """Write the changed files (with a backup of dest when asked), reload, and roll back when nginx did not apply
    them."""
    params = module.params
    backup_of = params["dest"] if params["backup"] else None
    for item in files:
        if item.changed:
            os.makedirs(os.path.dirname(item.path), exist_ok=True)
            backup = write(item.path, item.want, backup=item.path == backup_of)
            if backup is not None:
                result["backup_file"] = backup
    if to_test and params["reload"]:
        applied, emerg = nginx.reload(params["reload_timeout"])
        if not applied:
            rollback(nginx, [f for f in files if f.changed], params["reload_timeout"])
            reason = "; ".join(emerg) or f"no new worker processes within {params['reload_timeout']} s"
            raise NginxError(
                f"nginx accepted the new {', '.join(sorted(to_test))} but did not apply it ({reason}). The previous "
                "files are back and nginx was reloaded with them.",
                **{**result, "changed": False, "emerg": emerg},
            )
        result["applied"] = True


def flip(flag: Managed, on: bool) -> None:
    """Maintenance on: the flag file appears at once (a rename); off: it goes. nginx tests it on every request."""
    if on:
        write(flag.path, flag.want)
    else:
        os.unlink(flag.path)


def restore_flag(flag: Managed) -> None:
    """The flag as it was before this run: gone, or back with its content, mode and owner."""
    if flag.live is None or flag.current is None:
        if os.path.lexists(flag.path):
            os.unlink(flag.path)
    else:
        mode = flag.current.st_mode & 0o7777
        write(flag.path, Wanted(flag.live, mode, flag.current.st_uid, flag.current.st_gid))


def prove(
    module: t.Any, flag: Managed, flipped: bool, on: bool, targets: list[t.Any], result: dict, files_changed: bool
) -> None:
    """Ask nginx until it answers as the state needs (result gets the answers and, after a switch, when the proof
    held). When it does not, the switch is undone and the task fails with what nginx answered."""
    params = module.params
    at, answers, problems = prove_maintenance(
        targets, on, params["retry_after"], params["maintenance_exempt_paths"], params["maintenance_probe_timeout"]
    )
    result["maintenance_probe"] = answers
    if at is not None:
        if flipped:
            result["maintenance_switched_at"] = at
        return
    if flipped:
        restore_flag(flag)
        result["changed"] = files_changed
    state = "on" if on else "off"
    undone = (
        f"The switch was undone: the flag {flag.path} is {'back' if flag.live is not None else 'removed'} and the "
        "site answers as before."
        if flipped
        else f"Nothing was switched (the flag {flag.path} was already {'there' if on else 'absent'})."
    )
    causes = (
        f"nginx's worker user cannot read the flag {flag.path} (every directory above it must be searchable by "
        f"that user, for example www-data); the server block answering that address does not include the "
        f"maintenance server snippet; another server block answers that address (a default_server or the same "
        f"server_name elsewhere), or maintenance_probe_urls names the wrong place"
        if on
        else f"the flag {flag.path} is still seen, or the site itself answers with the maintenance page"
    )
    if any("error" in answer for answer in answers):
        causes += (
            "; an address nginx listens on is not reachable from this host as it is (a container's port published "
            "under another number): give maintenance_probe_urls"
        )
    raise NginxError(
        f"nginx does not answer with maintenance {state} within {params['maintenance_probe_timeout']} s, asked "
        f"with the {PROBE_HEADER} header: {'; '.join(problems)}. {undone} Likely causes: {causes}.",
        **{**result, "maintenance": "off" if on == flipped else "on"},
    )


def rollback(nginx: Nginx, files: list[Managed], timeout: int) -> None:
    for item in files:
        if item.live is None or item.current is None:
            os.unlink(item.path)
        else:
            mode = item.current.st_mode & 0o7777
            write(item.path, Wanted(item.live, mode, item.current.st_uid, item.current.st_gid))
    applied, emerg = nginx.reload(timeout, stop_on_emerg=False)
    if not applied:
        raise NginxError(
            "nginx did not apply the new configuration, and after putting the previous files back it did not "
            f"reload either ({'; '.join(emerg) or 'no new workers'}). nginx still runs its old workers; check it by "
            "hand."
        )


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
