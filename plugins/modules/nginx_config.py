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
commands:
  description:
    - What the run changed (would change, in check mode), for the record. Each file written (C(backup first) on
      O(dest) with O(backup)), the reload, and the maintenance flag created or removed.
  returned: always
  type: list
  elements: str
  sample: ["write /srv/app/nginx/conf.d/app.conf", "reload nginx and wait for new workers"]
timings:
  description:
    - Seconds each part took, reading and planning included; C(validate) (C(nginx -T) of the candidates),
      C(tls) (with O(tls_report)), C(files) (writing and the confirmed reload) and C(maintenance) (the switch and
      its proof, with O(maintenance)).
  returned: always
  type: dict
  sample: {validate: 0.041, files: 0.312, maintenance: 0.058}
emerg:
  description: nginx's C([emerg]) lines when it refused to apply a configuration, before the rollback.
  returned: on a rolled-back reload
  type: list
  elements: str
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import project_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx_operations import (
    apply_files,
    check_inputs,
    diffs,
    nginx_of,
    plan_files,
    plan_switch,
    report_certificates,
    switch_maintenance,
    validate,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder


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


def run_module(module: t.Any) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    nginx = nginx_of(module, o)
    plan = plan_files(o, nginx)
    rec = Recorder(check=module.check_mode, result={"dest": o.dest, "validated": False, "applied": False})
    if module._diff:
        rec.result["diff"] = diffs(plan.files)
    dump = ""
    if plan.to_test or plan.required or o.tls_report:
        with rec.timed("validate"):
            dump = validate(nginx, plan, rec)
    if o.tls_report:
        with rec.timed("tls"):
            rec.result["certificates"] = report_certificates(module, nginx, dump, o)
    switch = plan_switch(o, plan, dump) if o.maintenance is not None else None
    if o.maintenance is not None:
        rec.result["maintenance"] = o.maintenance
    if plan.files:
        with rec.timed("files"):
            apply_files(nginx, o, plan, rec)
    if switch is not None:
        with rec.timed("maintenance"):
            switch_maintenance(o, switch, rec, any(f.changed for f in plan.files))
    return rec.outcome(False)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
