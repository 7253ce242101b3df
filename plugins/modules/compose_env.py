#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_env
short_description: Compare the environment compose containers run with against compose and .env, secrets unshown
version_added: 0.1.0
description:
  - Reads each container's environment (C(docker inspect), C(Config.Env)) and compares it, variable by variable,
    with what Compose would give the container now (C(docker compose config), which resolves C(.env),
    C(env_file) and defaults) and with the project's env file (C(.env), or the last of O(env_files)).
  - Each variable's state is V(match), V(differs), V(not_in_container) (Compose gives it now, the container lacks
    it) or V(not_in_compose) (the container has it, Compose no longer gives it, and its image does not set it).
    A container with any other state than V(match) runs an old configuration and needs to be recreated (a plain
    C(restart) keeps it). A warning finding names its service and the variables.
  - Secrets are never returned, nor anything derived from them (no hash). The values are compared inside the
    module and only the verdict leaves. A variable is a secret when its name holds C(PASS), C(PWD), C(SECRET),
    C(TOKEN), C(KEY), C(JWT), C(CREDENTIAL), C(PRIVATE), C(SALT), C(AUTH), C(COOKIE), C(SIGN), C(DSN) or C(CERT),
    when it is named in O(sensitive_names), when its value looks like a JWT, or when its value holds a secret seen
    elsewhere in the project (or a URL's password); it is shown as C(********). A URL (C(DATABASE_URL),
    C(REDIS_URL)) is shown with its scheme, user, host, port and database, its password masked. Everything else
    is shown in full.
  - The runbooks' "check the environment variables" (C(docker-compose exec backend env | grep DATABASE)) without
    printing the passwords.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode reads the same.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: It never reports a change.
  platform:
    platforms: posix
options:
  services:
    description:
      - The services whose containers to compare. Default is every service of the project.
    type: list
    elements: str
  sensitive_names:
    description:
      - Variable names that are secrets although their names do not say so.
    type: list
    elements: str
    default: []
  public_names:
    description:
      - Variable names shown in full although their names look secret (C(PUBLIC_KEY_ID)). A URL named here is
        shown with its password.
    type: list
    elements: str
    default: []
  fail_on:
    description:
      - Fail the task when the status reaches this severity. The findings of this module are warnings.
    type: str
    choices: [critical, warning, never]
    default: critical
"""

EXAMPLES = r"""
- name: Compare the running configuration with compose and .env
  stackops.runbooks.compose_env:
    project_src: /srv/app
    sensitive_names: [SMTP_LOGIN]
  register: config

- name: Name the services that need to be recreated
  ansible.builtin.debug:
    msg: "{{ config.findings | map(attribute='message') | list }}"
  when: config.status != 'ok'
"""

RETURN = r"""
status:
  description: V(warning) when a container needs to be recreated, V(ok) otherwise.
  returned: always
  type: str
  sample: warning
findings:
  description: One warning (C(check) V(config.recreate)) per container that runs another configuration than
    Compose gives it now; C(value) lists the variables.
  returned: always
  type: list
  elements: dict
services:
  description:
    - Per service, per container, whether it needs to be recreated and each variable of its own (those only its
      image sets are left out) with C(kind) (V(public), V(url) or V(secret)), C(state), C(running) (the value
      shown as its kind allows), C(compose) (when the state is not V(match)) and C(env_file) (V(match) or
      V(differs), when the env file has the variable).
  returned: always
  type: dict
  sample:
    app:
      app-app-1:
        recreate_needed: true
        variables:
          DATABASE_URL: {kind: url, state: differs, running: "postgresql://app:********@db:5432/app",
                         compose: "postgresql://app:********@db:5433/app", env_file: differs}
          JWT_SECRET: {kind: secret, state: match, running: "********", env_file: match}
          LOG_LEVEL: {kind: public, state: match, running: info}
env_file:
  description: Each variable of the env file, shown as its kind allows, and whether any container has it.
  returned: always; null when there is no env file
  type: dict
  sample: {APP_IMAGE: {kind: public, value: "app:1.4.2", in_containers: false}}
env_file_path:
  description: The env file compared against; null when there is none.
  returned: always
  type: str
"""

import dataclasses
import typing as t
from collections.abc import Mapping

from ansible_collections.stackops.runbooks.plugins.module_utils import _compose_env
from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeProject,
    ProjectRef,
    common_argument_spec,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._health import finish, health_argument_spec


def argument_spec() -> dict[str, t.Any]:
    spec = common_argument_spec()
    spec.update(services={"type": "list", "elements": "str"}, **_compose_env.options_spec())
    spec["fail_on"] = health_argument_spec([])["fail_on"]
    return spec


@dataclasses.dataclass(frozen=True)
class Options:
    """compose_env's options once checked: what the executor reads, instead of the params."""

    project: ProjectRef
    services: tuple[str, ...]  # empty: every service of the project
    names: _compose_env.Names
    fail_on: str


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Nothing the argument spec leaves to check: the options as their record."""
    return options_of(
        Options,
        params,
        project=ProjectRef.of(params),
        names=_compose_env.Names.of(params),
    )


def run_module(module: t.Any) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    project = ComposeProject(module, o.project)
    if o.services:
        project.check_services(list(o.services))
    containers = [c for c in project.containers() if not o.services or c.service in o.services]
    data, findings = _compose_env.read(project, containers, o.names)
    return finish(findings, data, o.fail_on)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
