# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How a host's stack is logged into: the one place that turns the inventory's stackops_pg_* and stackops_redis_*
variables into the login options of a service's modules, for module_defaults of the action groups."""

from __future__ import annotations

DOCUMENTATION = r"""
name: stack_login
author: stackops developers (@stackops)
short_description: The login options of a host's PostgreSQL or Redis, from its stackops_* variables
version_added: 0.1.0
description:
  - Returns the login options (C(login_host), C(login_port), C(login_user), C(login_password)) of the modules of the
    action group C(stackops.runbooks.postgres) or C(stackops.runbooks.redis), from the host's variables
    C(stackops_pg_host), C(stackops_pg_port), C(stackops_pg_user), C(stackops_pg_password) (PostgreSQL) or
    C(stackops_redis_host), C(stackops_redis_port), C(stackops_redis_user), C(stackops_redis_password) (Redis).
  - The collection's roles set it as module_defaults of their blocks, so every role connects the same way; a
    playbook can do the same for its own tasks.
  - Without a host (C(stackops_pg_host) or C(stackops_redis_host)) it fails, naming the variable to set; a module
    would otherwise connect to its default, localhost, which may be another server.
  - With O(role), the role's own login variables of before (C(<role>_login_host), C(<role>_login_port),
    C(<role>_login_user), C(<role>_login_password)) still win over the stackops_* ones, with a deprecation warning
    naming the variable to set instead. They go in release 1.0.0.
options:
  _terms:
    description: The service, C(postgres) or C(redis).
    type: list
    elements: str
    required: true
  role:
    description: The role whose deprecated C(<role>_login_*) variables are read too.
    type: str
  host:
    description:
      - The inventory host whose stackops_* variables to read (its hostvars), such as the drill host of
        stackops.runbooks.restore_drill; by default the host the task runs for.
    type: str
"""

EXAMPLES = r"""
- name: Vacuum and check the database with the inventory's login
  module_defaults:
    group/stackops.runbooks.postgres: "{{ lookup('stackops.runbooks.stack_login', 'postgres') }}"
  block:
    - name: Vacuum
      stackops.runbooks.pg_maintenance:
        vacuum: true
    - name: Health
      stackops.runbooks.pg_health:
"""

RETURN = r"""
_raw:
  description: One dictionary of login options; those without a setting are left out (the module's default).
  type: list
  elements: dict
"""

import typing as t

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

display = Display()

# Each service's login options and the stackops_* variable of each; the host is required.
SETTINGS: dict[str, dict[str, str]] = {
    "postgres": {
        "login_host": "stackops_pg_host",
        "login_port": "stackops_pg_port",
        "login_user": "stackops_pg_user",
        "login_password": "stackops_pg_password",
    },
    "redis": {
        "login_host": "stackops_redis_host",
        "login_port": "stackops_redis_port",
        "login_user": "stackops_redis_user",
        "login_password": "stackops_redis_password",
    },
}


def given(value: t.Any) -> bool:
    """Whether a variable holds a setting: an empty string (a role's old default) or null does not."""
    return value is not None and value != ""


def stack_login(
    service: str, read: t.Callable[[str], t.Any], role: str | None = None, warn: t.Callable[[str], None] = print
) -> dict[str, t.Any]:
    """The login options of service from the variables that `read` gives (None for an undefined one): each from the
    role's deprecated <role>_login_* variable when it is set (with a warning), else from the stackops_* one."""
    if service not in SETTINGS:
        raise AnsibleError(f"stack_login: unknown service {service!r}; give one of {', '.join(SETTINGS)}.")
    found: dict[str, t.Any] = {}
    for option, setting in SETTINGS[service].items():
        old = f"{role}_{option}" if role else None
        value = read(old) if old else None
        if given(value):
            warn(f"{old} is deprecated: set {setting} instead (the same for every role of the collection).")
        else:
            value = read(setting)
        if given(value):
            found[option] = value
    if "login_host" not in found:
        either = f"{SETTINGS[service]['login_host']} (or the deprecated {role}_login_host)" if role else None
        raise AnsibleError(
            f"No {service} host to log into: set {either or SETTINGS[service]['login_host']} for this host. Without "
            "it the modules would connect to localhost, which may be another server."
        )
    return found


class LookupModule(LookupBase):
    def run(self, terms: list[t.Any], variables: dict[str, t.Any] | None = None, **kwargs: t.Any) -> list[t.Any]:
        self.set_options(var_options=variables, direct=kwargs)
        known = variables or {}
        host = self.get_option("host")
        if host:
            if host not in known.get("hostvars", {}):
                raise AnsibleError(f"stack_login: {host!r} is not a host of the inventory.")
            known = known["hostvars"][host]

        def read(name: str) -> t.Any:
            return self._templar.template(known[name]) if name in known else None

        def warn(message: str) -> None:
            display.deprecated(message, version="1.0.0", collection_name="stackops.runbooks")

        return [stack_login(str(term), read, self.get_option("role"), warn) for term in terms]
