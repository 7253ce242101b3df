#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_exec
short_description: Run a command in a running service of a Docker Compose v2 project
version_added: 0.1.0
description:
  - Runs a command inside a service's container with C(docker compose exec -T), as an argv list with no shell.
    This is the runbooks' C(docker-compose exec postgres psql ...) and C(docker-compose exec redis redis-cli ...).
  - The command's effect is declared, not guessed. With O(read_only=true) the command runs in check mode too and
    reports no change. Otherwise it reports a change, and in check mode it is not run.
  - Environment values in O(env) reach the container through the environment of the compose CLI, never through
    its arguments, so they do not show in the process table.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: A command that is not O(read_only) is not run in check mode; it is reported as a change.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: The module cannot know what the command does; O(read_only) declares it.
  platform:
    platforms: posix
options:
  service:
    description:
      - The service to run the command in. It must be running.
    type: str
    required: true
  argv:
    description:
      - The command and its arguments. No shell is involved; give C([sh, -c, "..."]) to use one.
    type: list
    elements: str
    required: true
  index:
    description:
      - Which container of a scaled service (1 is the first).
    type: int
    default: 1
  user:
    description:
      - The user to run the command as (C(--user)).
    type: str
  workdir:
    description:
      - The working directory in the container (C(--workdir)), an absolute path.
    type: str
  env:
    description:
      - Environment variables for the command. Values are passed through the compose CLI's environment, not its
        arguments. Names are letters, digits and C(_), not starting with a digit.
    type: dict
  stdin:
    description:
      - Text to send to the command's standard input.
    type: str
  read_only:
    description:
      - Declares that the command changes nothing. It then runs in check mode too, and the task reports no change.
    type: bool
    default: false
  ok_rc:
    description:
      - Exit codes that count as success. Any other exit code fails the task.
    type: list
    elements: int
    default: [0]
seealso:
  - module: stackops.runbooks.compose_service
"""

EXAMPLES = r"""
- name: Count active sessions in the database (reads only, so it also runs in check mode)
  stackops.runbooks.compose_exec:
    project_src: /srv/app
    service: postgres
    user: postgres
    argv: [psql, -XAt, -d, app, -c, "SELECT count(*) FROM pg_stat_activity"]
    read_only: true
  register: sessions

- name: Run the database migrations in the backend container
  stackops.runbooks.compose_exec:
    project_src: /srv/app
    service: backend
    argv: [alembic, upgrade, head]

- name: Ask Redis for its memory use, with the password in the environment
  stackops.runbooks.compose_exec:
    project_src: /srv/app
    service: redis
    argv: [redis-cli, -h, 127.0.0.1, INFO, memory]
    env:
      REDISCLI_AUTH: "{{ redis_password }}"
    read_only: true
"""

RETURN = r"""
rc:
  description: The command's exit code. It is absent in check mode for a command that was not run.
  returned: when the command ran
  type: int
  sample: 0
stdout:
  description: Standard output.
  returned: when the command ran
  type: str
stdout_lines:
  description: Standard output, line by line.
  returned: when the command ran
  type: list
  elements: str
stderr:
  description: Standard error.
  returned: when the command ran
  type: str
cmd:
  description: The compose command, as an argv list. Environment values are not in it.
  returned: always
  type: list
  elements: str
"""

import dataclasses
import re
import typing as t
from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeError,
    ComposeProject,
    ProjectRef,
    common_argument_spec,
)

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def argument_spec() -> dict[str, t.Any]:
    spec = common_argument_spec()
    spec.update(
        service={"type": "str", "required": True},
        argv={"type": "list", "elements": "str", "required": True},
        index={"type": "int", "default": 1},
        user={"type": "str"},
        workdir={"type": "str"},
        env={"type": "dict", "no_log": True},
        stdin={"type": "str"},
        read_only={"type": "bool", "default": False},
        ok_rc={"type": "list", "elements": "int", "default": [0]},
    )
    return spec


@dataclasses.dataclass(frozen=True)
class Options:
    """compose_exec's options once checked: what the planner and executor read, instead of the params."""

    project: ProjectRef
    service: str
    argv: tuple[str, ...]
    index: int
    user: str | None
    workdir: str | None
    # no_log: the values reach the command through its environment only, never its arguments or a repr.
    env: Mapping[str, str] = dataclasses.field(repr=False)
    stdin: str | None
    read_only: bool
    ok_rc: tuple[int, ...]


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Validate what the argument spec cannot; the env values as strings."""
    if not params["argv"]:
        raise ComposeError("argv is empty; give the command to run as a list, e.g. [psql, -c, 'SELECT 1'].")
    if params["index"] < 1:
        raise ComposeError(f"index must be 1 or more (the first container is 1), not {params['index']}.")
    if params["workdir"] and not params["workdir"].startswith("/"):
        raise ComposeError(f"workdir {params['workdir']!r} is not an absolute path in the container; give one.")
    for name in params["env"] or {}:
        if not ENV_NAME.match(str(name)):
            # `-e NAME=VALUE` would put the value in the compose command's arguments, for all to see.
            raise ComposeError(
                f"env name {name!r} is not a variable name (letters, digits and _, not starting with a digit)."
            )
    return options_of(
        Options,
        params,
        project=ProjectRef.of(params),
        env={str(k): str(v) for k, v in (params["env"] or {}).items()},
    )


def exec_args(o: Options) -> list[str]:
    """`exec -T ...`; for env, only the names: `-e NAME` takes the value from the CLI's own environment."""
    args = ["exec", "-T", "--index", str(o.index)]
    if o.user:
        args += ["--user", o.user]
    if o.workdir:
        args += ["--workdir", o.workdir]
    for name in sorted(o.env):
        args += ["-e", name]
    return [*args, o.service, *o.argv]


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    args = exec_args(o)
    project = ComposeProject(module, o.project)
    project.check_services([o.service])
    running = [c for c in project.containers() if c.service == o.service and c.running]
    if not running:
        raise ComposeError(
            f"Service {o.service} has no running container; start it first "
            "(stackops.runbooks.compose_service state=started)."
        )
    cmd = [*project.base_args(), *args]
    if module.check_mode and not o.read_only:
        return {"changed": True, "cmd": cmd}
    rc, out, err = project.call(*args, check=False, data=o.stdin, environ_update=dict(o.env))
    result = {
        "changed": not o.read_only,
        "cmd": cmd,
        "rc": rc,
        "stdout": out,
        "stderr": err,
        "stdout_lines": out.splitlines(),
    }
    if rc in o.ok_rc:
        # Ansible fails any result with a non-zero rc that does not say it did not fail.
        result["failed"] = False
    else:
        raise ComposeError(
            f"The command in service {o.service} exited with code {rc} (expected {list(o.ok_rc)}): "
            f"{(err or out).strip()[-1000:]}",
            **result,
        )
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
