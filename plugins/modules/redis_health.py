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
  - O(advisors) add advice, each finding with the suggested action - SLOWLOG with redacted arguments, LATENCY
    LATEST, MEMORY DOCTOR, a bounded PING latency sample and a write probe that leaves no data behind.
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

- name: Advice - slow commands, latency spikes, memory doctor, PING latency, and whether writes are accepted
  stackops.runbooks.redis_health:
    login_host: 127.0.0.1
    login_password: "{{ redis_password }}"
    checks: [memory]
    advisors: [slowlog, latency, memory_doctor, latency_sample, write_probe]
    latency_samples: 50
    fail_on: never
  register: redis_advice
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
    C(threshold)); findings of O(advisors) also have an C(action), what to do about it.
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
slowlog:
  description:
    - With O(advisors=[slowlog]), C(length) (SLOWLOG LEN), C(read) and the C(slowest) entries, each with C(id),
      C(time) (Unix time), C(duration_ms), the redacted C(command), C(client_address) and C(client_name).
  returned: when asked for
  type: dict
  sample:
    length: 2
    read: 2
    slowest:
      - {id: 7, time: 1796610000, duration_ms: 152.3, command: "EVAL (3 arguments redacted)",
         client_address: "127.0.2.3:40312", client_name: ""}
latency:
  description:
    - With O(advisors=[latency]), the C(events) of C(LATENCY LATEST) (C(event), C(time), C(latest_ms), C(max_ms))
      and C(monitor_threshold_ms) (C(latency-monitor-threshold), 0 when the monitor is off, null when unreadable).
  returned: when asked for
  type: dict
memory_doctor:
  description: With O(advisors=[memory_doctor]), its C(report) text.
  returned: when asked for
  type: dict
latency_sample:
  description: With O(advisors=[latency_sample]), C(count), C(asked), C(min_ms), C(avg_ms), C(p99_ms), C(max_ms).
  returned: when asked for
  type: dict
  sample: {count: 100, asked: 100, min_ms: 0.041, avg_ms: 0.062, p99_ms: 0.201, max_ms: 0.233}
write_probe:
  description:
    - With O(advisors=[write_probe]), C(writable), C(read_back) (the value read back was the one written),
      C(error) (the server's refusal), C(key) and C(elapsed_ms); C(skipped) in check mode.
  returned: when asked for
  type: dict
  sample: {skipped: false, key: "stackops:health:probe:3f2a9c0d1e4b5a69", writable: true, read_back: true,
           elapsed_ms: 0.412}
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._health import finish, health_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import connection_argument_spec, ensure_libs
from ansible_collections.stackops.runbooks.plugins.module_utils._redis_checks import (
    OPTIONS,
    SECTIONS,
    check_inputs,
    read_health,
)


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(health_argument_spec(SECTIONS))
    spec.update(OPTIONS)
    return spec


def run_module(module: t.Any) -> dict[str, t.Any]:
    ensure_libs(module)
    o = check_inputs(module.params, module.check_mode)
    result, findings = read_health(o)
    return finish(findings, result, o.fail_on)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
