#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_health
short_description: Everything the runbooks check on Redis, in one connection, with a verdict
version_added: 0.1.0
description:
  - Reads Redis's health with PING and one C(INFO). It replaces the runbooks' C(redis-cli ping), C(INFO memory),
    C(INFO stats) and C(DBSIZE).
  - The sections are memory against C(maxmemory) and its policy, with fragmentation and evictions; keyspace hit
    ratio and expired keys; connected, blocked and rejected clients; persistence (last BGSAVE status and age,
    AOF); replication; key counts per database. Big keys can be sampled with SCAN (never KEYS).
  - Readings are compared with O(thresholds) and give RV(status) and RV(findings), the same shape as
    M(stackops.runbooks.pg_health). An unreachable server or a refused password is a critical finding, not a
    crash.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.redis
  - stackops.runbooks.redis.checks
  - stackops.runbooks.health
  - stackops.runbooks.attributes
"""

EXAMPLES = r"""
- name: Check Redis, failing the task only when something is critical
  stackops.runbooks.redis_health:
    login_host: 127.0.0.1
    login_password: "{{ redis_password }}"
  register: redis

- name: Look for big keys too, and fail on warnings
  stackops.runbooks.redis_health:
    login_host: 127.0.0.1
    login_password: "{{ redis_password }}"
    checks: [memory, bigkeys]
    fail_on: warning
"""

RETURN = r"""
is_available:
  description: Whether the server answered PING.
  returned: always
  type: bool
status:
  description: The verdict, the worst severity among RV(findings).
  returned: always
  type: str
  sample: ok
findings:
  description: One entry per threshold crossed, each with a reason (C(check), C(severity), C(message), C(value),
    C(threshold)).
  returned: always
  type: list
  elements: dict
conn_err_msg:
  description: Why the connection or PING failed.
  returned: when RV(is_available) is false
  type: str
server:
  description: Version, mode, role and uptime.
  returned: when available
  type: dict
  sample: {version: 7.0.15, mode: standalone, role: master, uptime_s: 3600}
memory:
  description: Used, peak and maximum memory, the eviction policy, fragmentation and evicted keys.
  returned: when the section was read
  type: dict
stats:
  description: Keyspace hits and misses, hit ratio, expired keys, and commands processed.
  returned: when the section was read
  type: dict
clients:
  description: Connected, blocked and rejected clients, and C(maxclients).
  returned: when the section was read
  type: dict
persistence:
  description: RDB and AOF state, with the last BGSAVE status and age.
  returned: when the section was read
  type: dict
replication:
  description: The role, connected replicas and their lag, or the link to the primary.
  returned: when the section was read
  type: dict
keyspace:
  description: Keys and keys with an expiry per database.
  returned: when the section was read
  type: dict
bigkeys:
  description: The largest sampled keys by C(MEMORY USAGE).
  returned: when the section was read
  type: dict
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    finish,
    health_argument_spec,
    merge_thresholds,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import connection_argument_spec, ensure_libs
from ansible_collections.stackops.runbooks.plugins.module_utils._redis_checks import DEFAULTS, SECTIONS, read_health


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(health_argument_spec(SECTIONS))
    spec["big_keys_sample"] = {"type": "int", "default": 1000, "no_log": False}
    return spec


def run_module(module: t.Any) -> dict[str, t.Any]:
    ensure_libs(module)
    params = module.params
    th = merge_thresholds(DEFAULTS, params["thresholds"])
    if params["big_keys_sample"] < 1:
        raise StackopsError(f"big_keys_sample must be at least 1, not {params['big_keys_sample']}.")
    result, findings = read_health(params, th)
    return finish(module, findings, result)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
