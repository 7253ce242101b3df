#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_health
short_description: Everything the runbooks check on PostgreSQL, in one connection, with a verdict
version_added: 0.1.0
description:
  - Connects once, read-only, and reads the server's health. It replaces the runbooks' list of
    C(psql -c "SELECT ... FROM pg_stat_activity ...") commands.
  - The sections are availability, version and recovery role; connections by state and by client against
    C(max_connections); idle-in-transaction sessions and long-running queries; blocked and blocking sessions;
    database and largest-table sizes; cache hit ratio; dead tuples and last (auto)vacuum and analyze;
    transaction-ID wraparound age; replication lag; C(pg_stat_statements) top queries; settings waiting for a
    restart; checkpoint counts and times.
  - Reads the views of each server version it is tested on, PostgreSQL 15 and 17 (the checkpointer's counters
    moved to C(pg_stat_checkpointer) in 17), and the columns of the installed C(pg_stat_statements) version.
  - Each reading is compared with O(thresholds). Every crossing is a finding with a reason, and the worst one
    gives RV(status) (V(ok), V(warning) or V(critical)). O(fail_on) says which status fails the task.
  - An unreachable server is a critical finding (RV(is_available=false)), not a crash. With O(fail_on=never) it
    is reported as data.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.postgres
  - stackops.runbooks.postgres.checks
  - stackops.runbooks.health
  - stackops.runbooks.attributes
"""

EXAMPLES = r"""
- name: Check PostgreSQL, failing the task only when something is critical
  stackops.runbooks.pg_health:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    login_db: app
  register: pg

- name: A cheap liveness probe that never fails the task
  stackops.runbooks.pg_health:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    checks: [connections]
    fail_on: never

- name: Stricter on long queries for an OLTP database
  stackops.runbooks.pg_health:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    thresholds:
      long_query_warning_s: 5
      long_query_critical_s: 30
"""

RETURN = r"""
is_available:
  description: Whether the server accepted the connection.
  returned: always
  type: bool
  sample: true
status:
  description: The verdict, the worst severity among RV(findings).
  returned: always
  type: str
  sample: warning
findings:
  description: One entry per threshold crossed, each with a reason.
  returned: always
  type: list
  elements: dict
  sample:
    - check: activity
      severity: warning
      message: "idle in transaction for 75s (pid 4242, app, user app), at or above the warning threshold 60s"
      value: 75
      threshold: 60
conn_err_msg:
  description: Why the connection failed.
  returned: when RV(is_available) is false
  type: str
server:
  description: Version and role.
  returned: when available
  type: dict
  sample: {version: "17.12 (Debian 17.12-0+deb13u1)", version_num: 170012, in_recovery: false}
connections:
  description: Connections in use against C(max_connections), by state and by client address and user.
  returned: when the section was read
  type: dict
activity:
  description:
    - The oldest idle-in-transaction sessions and the long-running queries.
    - Query texts are cut at 200 characters, with password literals replaced by C(********).
  returned: when the section was read
  type: dict
locks:
  description: Sessions waiting for a lock, with who blocks them and for how long.
  returned: when the section was read
  type: dict
sizes:
  description: Database sizes and the largest tables.
  returned: when the section was read
  type: dict
cache:
  description: Block reads and hits of the connected database and the hit ratio.
  returned: when the section was read
  type: dict
vacuum:
  description: Tables with the most dead tuples, with their last (auto)vacuum and (auto)analyze times.
  returned: when the section was read
  type: dict
wraparound:
  description: The oldest transaction ID age per database, and as a percentage of the 2^31 horizon.
  returned: when the section was read
  type: dict
replication:
  description: On a primary, each standby's state and lag; on a standby, its replay lag.
  returned: when the section was read
  type: dict
statements:
  description:
    - The top statements by mean time from pg_stat_statements, or a note saying why there are none.
    - Each with calls, rows, mean and total execution time, and the time spent reading and writing shared
      blocks (C(read_ms), C(write_ms), zero unless C(track_io_timing) is on).
    - C(extension_version) is the extension's version in the connected database, whose columns are read.
    - Query texts are cut at 200 characters, with password literals replaced by C(********).
  returned: when the section was read
  type: dict
settings:
  description: Settings changed but waiting for a restart.
  returned: when the section was read
  type: dict
checkpoints:
  description:
    - Checkpoints since the statistics were reset, reported and not judged. C(timed) ran on C(checkpoint_timeout),
      C(requested) were asked for (WAL past C(max_wal_size), a CHECKPOINT, a backup or a restore), C(requested_pct)
      is their share. Also C(write_ms), C(sync_ms), C(buffers_written) and C(stats_reset).
    - C(source) names the view read, C(pg_stat_checkpointer) from PostgreSQL 17, C(pg_stat_bgwriter) before.
  returned: when the section was read
  type: dict
  sample:
    source: pg_stat_checkpointer
    timed: 12
    requested: 3
    requested_pct: 20.0
    write_ms: 1520.0
    sync_ms: 31.0
    buffers_written: 4210
    stats_reset: "2026-12-06T20:26:37.186489+00:00"
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    finish,
    health_argument_spec,
    merge_thresholds,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_checks import DEFAULTS, SECTIONS, read_health
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import connection_argument_spec, ensure_libs


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(health_argument_spec(SECTIONS))
    spec["top"] = {"type": "int", "default": 10}
    return spec


def run_module(module: t.Any) -> dict[str, t.Any]:
    ensure_libs(module)
    params = module.params
    th = merge_thresholds(DEFAULTS, params["thresholds"])
    if params["top"] < 1:
        raise StackopsError(f"top must be at least 1, not {params['top']}.")
    result, findings = read_health(params, th, "stackops-pg_health")
    return finish(module, findings, result)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
