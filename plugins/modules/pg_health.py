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
  - O(advisors) add read-only advice, each finding with the suggested action, on unused and missing indexes, slow
    statements, and the settings changed from their defaults (secrets masked).
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

- name: Advice on indexes and slow statements, warning on statements slower than 200 ms on average
  stackops.runbooks.pg_health:
    login_host: 127.0.0.1
    login_password: "{{ pg_password }}"
    login_db: app
    checks: [sizes]
    advisors: [unused_indexes, missing_indexes, slow_statements, nondefault_settings]
    thresholds:
      slow_statement_warning_ms: 200
    fail_on: never
  register: advice

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
  description:
    - One entry per threshold crossed, each with a reason.
    - Findings of O(advisors) also have an C(action), what to do about it.
  returned: always
  type: list
  elements: dict
  sample:
    - check: activity
      severity: warning
      message: "idle in transaction for 75s (pid 4242, app, user app), at or above the warning threshold 60s"
      value: 75
      threshold: 60
    - check: unused_indexes
      severity: warning
      message: "index public.events_kind_idx on events (2208 kB) was never scanned since statistics began"
      value: 2260992
      threshold: 1048576
      action: "DROP INDEX CONCURRENTLY public.events_kind_idx; after checking that no standby ..."
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
unused_indexes:
  description:
    - With O(advisors=[unused_indexes]), indexes of the connected database never scanned since its statistics
      were reset and backing no constraint, largest first (at most O(top)), with C(count) and C(total_bytes) of
      all of them.
    - C(stats_reset) (null when never reset) and C(stats_age_days) say how long the counters have watched.
  returned: when asked for
  type: dict
  sample:
    stats_reset: null
    stats_age_days: null
    count: 1
    total_bytes: 2260992
    candidates:
      - {schema: public, table: events, index: events_kind_idx, qualified: public.events_kind_idx, scans: 0,
         bytes: 2260992}
missing_indexes:
  description:
    - With O(advisors=[missing_indexes]), the tables over C(missing_index_min_table_mb) with the most rows read by
      sequential scans, with C(seq_scan), C(seq_tup_read), C(idx_scan), C(seq_scan_pct), C(rows_per_seq_scan),
      C(live_rows) and C(bytes); and the statistics' age.
  returned: when asked for
  type: dict
slow_statements:
  description:
    - With O(advisors=[slow_statements]), the statements of the connected database at or above
      C(slow_statement_warning_ms) on average and called at least C(slow_statement_min_calls) times, most total
      time first, with database, user, calls, C(mean_ms), C(total_ms) and rows. Query texts are cut at 200
      characters and redacted.
  returned: when asked for
  type: dict
nondefault_settings:
  description:
    - With O(advisors=[nondefault_settings]), each setting not at its default, with its C(source), its C(default)
      (the built-in value) and C(pending_restart). Secret values are C(********).
  returned: when asked for
  type: dict
  sample:
    count: 1
    settings:
      - {name: primary_conninfo, setting: "host=10.0.0.1 user=replicator password=********", unit: null,
         source: configuration file, default: "", pending_restart: false}
"""

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute
from ansible_collections.stackops.runbooks.plugins.module_utils._health import finish, health_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_checks import (
    OPTIONS,
    SECTIONS,
    check_inputs,
    read_health,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import connection_argument_spec, ensure_libs


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(health_argument_spec(SECTIONS))
    spec.update(OPTIONS)
    return spec


def run_module(module: t.Any) -> dict[str, t.Any]:
    ensure_libs(module)
    o = check_inputs(module.params)
    result, findings = read_health(o, "stackops-pg_health")
    return finish(findings, result, o.fail_on)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
