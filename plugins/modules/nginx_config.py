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
author: stackops developers (@stackops)
extends_documentation_fragment:
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
        (O(config)), for example a site in C(conf.d/).
      - With nginx in a compose service, the file must be in a directory that the service bind-mounts; the
        module maps the path to the container's.
    type: path
    required: true
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
  compose_project_src:
    description: The compose project that runs nginx. Leave it out for nginx on the host.
    type: path
  compose_project_name:
    description: The compose project's name, when it is not the one Compose derives.
    type: str
  compose_files:
    description: The compose files, when they are not the default ones.
    type: list
    elements: path
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
    description: Seconds to wait for new worker processes after the reload before rolling back.
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
  description: What C(nginx -t) printed for the candidate.
  returned: when the candidate was tested
  type: str
emerg:
  description: nginx's C([emerg]) lines when it refused to apply a configuration, before the rollback.
  returned: on a rolled-back reload
  type: list
  elements: str
"""

import grp
import os
import pwd
import tempfile
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import (
    Nginx,
    NginxError,
    emerg_lines,
    validate_candidate,
)


def argument_spec() -> dict[str, t.Any]:
    return {
        "dest": {"type": "path", "required": True},
        "content": {"type": "str"},
        "src": {"type": "path"},
        "config": {"type": "str"},
        "backup": {"type": "bool", "default": False},
        "mode": {"type": "str"},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "compose_project_src": {"type": "path"},
        "compose_project_name": {"type": "str"},
        "compose_files": {"type": "list", "elements": "path"},
        "compose_service": {"type": "str"},
        "nginx_binary": {"type": "str", "default": "nginx"},
        "pid_file": {"type": "path"},
        "reload": {"type": "bool", "default": True},
        "reload_timeout": {"type": "int", "default": 10},
    }


class Wanted(t.NamedTuple):
    content: bytes
    mode: int
    uid: int
    gid: int


def wanted_file(params: dict[str, t.Any], current: os.stat_result | None) -> Wanted:
    """The file as it should be, from the options and what exists; bad input is refused here, before any change."""
    if (params["content"] is None) == (params["src"] is None):
        raise NginxError("Give exactly one of content and src.")
    if params["src"] is not None:
        try:
            with open(params["src"], "rb") as handle:
                content = handle.read()
        except OSError as exc:
            raise NginxError(
                f"Cannot read src {params['src']}: {exc.strerror}; give a file on the managed host."
            ) from None
    else:
        content = params["content"].encode()
    try:
        mode = int(params["mode"], 8) if params["mode"] else (current.st_mode & 0o7777 if current else 0o644)
    except ValueError:
        raise NginxError(f"mode {params['mode']!r} is not an octal mode such as '0644'.") from None
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


def write_atomic(module: t.Any, dest: str, want: Wanted) -> None:
    """Staged beside dest (same filesystem), synced, given its mode and owner, then renamed over dest."""
    fd, staged = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".stackops", dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(want.content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(staged, want.mode)
        os.chown(staged, want.uid, want.gid)
        os.rename(staged, dest)
    except OSError as exc:
        if os.path.exists(staged):
            os.unlink(staged)
        raise NginxError(f"Could not write {dest}: {exc}") from None
    directory = os.open(os.path.dirname(dest), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def run_module(module: t.Any) -> dict[str, t.Any]:
    params = module.params
    dest = params["dest"]
    live, current = read_live(dest)
    want = wanted_file(params, current)
    if not os.path.isdir(os.path.dirname(dest)):
        raise NginxError(f"The directory of dest {dest} does not exist.")
    nginx = Nginx(module, params)
    content_changed = live != want.content
    attrs_changed = current is not None and (
        (current.st_mode & 0o7777, current.st_uid, current.st_gid) != (want.mode, want.uid, want.gid)
    )
    result: dict[str, t.Any] = {"dest": dest, "validated": False, "applied": False}
    if module._diff:
        result["diff"] = {
            "before": (live or b"").decode(errors="replace"),
            "after": want.content.decode(errors="replace"),
            "before_header": dest,
            "after_header": dest,
        }
    if content_changed:
        ok, output = validate_candidate(nginx, dest, want.content)
        result["validation_output"] = output
        if not ok:
            reason = next(iter(emerg_lines(output)), output.splitlines()[-1] if output else "no output")
            raise NginxError(f"nginx -t rejected the new {dest}, which was left as it was: {reason}", **result)
        result["validated"] = True
    changed = content_changed or attrs_changed or current is None
    result["changed"] = changed
    if module.check_mode or not changed:
        return result
    if params["backup"] and live is not None and content_changed:
        result["backup_file"] = module.backup_local(dest)
    write_atomic(module, dest, want)
    if content_changed and params["reload"]:
        applied, emerg = nginx.reload(params["reload_timeout"])
        if not applied:
            rollback(module, nginx, dest, live, current, params["reload_timeout"])
            reason = "; ".join(emerg) or f"no new worker processes within {params['reload_timeout']} s"
            raise NginxError(
                f"nginx accepted the new {dest} but did not apply it ({reason}). The previous file is back and "
                "nginx was reloaded with it.",
                **{**result, "changed": False, "emerg": emerg},
            )
        result["applied"] = True
    return result


def rollback(
    module: t.Any, nginx: Nginx, dest: str, live: bytes | None, current: os.stat_result | None, timeout: int
) -> None:
    if live is None or current is None:
        os.unlink(dest)
    else:
        write_atomic(module, dest, Wanted(live, current.st_mode & 0o7777, current.st_uid, current.st_gid))
    applied, emerg = nginx.reload(timeout, stop_on_emerg=False)
    if not applied:
        raise NginxError(
            f"nginx did not apply the new {dest}, and after putting the previous file back it did not reload "
            f"either ({'; '.join(emerg) or 'no new workers'}). nginx still runs its old workers; check it by hand."
        )


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
