# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every pg_* module (plugins/module_utils/_postgres.py connection_argument_spec),
    # named as community.postgresql names them.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - The server's host name or address.
    type: str
    default: localhost
  login_port:
    description:
      - The server's port.
    type: int
    default: 5432
  login_user:
    description:
      - The role to connect as.
    type: str
    default: postgres
  login_password:
    description:
      - The role's password. It reaches the server through the library, never through a process argument or
        the task output.
    type: str
  login_unix_socket:
    description:
      - A Unix socket directory to connect through instead of the host (C(login_host)).
    type: path
  login_db:
    description:
      - The database to connect to.
    type: str
    default: postgres
  ssl_mode:
    description:
      - libpq's C(sslmode).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - A file of CA certificates to verify the server with (C(sslrootcert)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection.
    type: int
    default: 5

requirements:
  - psycopg2 on the managed host (C(python3-psycopg2) or C(psycopg2-binary)).
"""

    # The sections and thresholds of pg_health.
    CHECKS = r"""
options:
  checks:
    description:
      - The sections to read. Availability, version and recovery role are always read. Default is every section.
      - A liveness probe can ask for V(connections) alone.
    type: list
    elements: str
    choices:
      [connections, activity, locks, sizes, cache, vacuum, wraparound, replication, statements, settings, checkpoints]
  thresholds:
    description:
      - Numbers that override the defaults. Unknown names are refused with the list of valid ones.
      - C(connections_warning_pct) 80 and C(connections_critical_pct) 95 (of C(max_connections)).
      - C(idle_in_transaction_warning_s) 60 and C(idle_in_transaction_critical_s) 600.
      - C(long_query_warning_s) 60 and C(long_query_critical_s) 300.
      - C(lock_wait_warning_s) 10 and C(lock_wait_critical_s) 60.
      - C(cache_hit_warning_pct) 90 and C(cache_hit_critical_pct) 80, below which it is a finding, judged only
        after C(cache_min_reads) 1000 block reads.
      - C(dead_tuples_warning_pct) 20 and C(dead_tuples_critical_pct) 50, for tables over
        C(dead_tuples_min_rows) 10000 rows.
      - C(wraparound_warning_pct) 50 and C(wraparound_critical_pct) 75 (of the 2^31 XID horizon).
      - C(replication_lag_warning_s) 30 and C(replication_lag_critical_s) 300.
      - For C(advisors), C(unused_index_min_mb) 1 (smaller unused indexes are listed, not judged) and
        C(unused_index_min_stats_days) 7 (younger statistics have not seen the whole workload, so candidates are
        listed, not judged).
      - C(missing_index_min_table_mb) 10, C(missing_index_min_seq_scans) 100 and C(missing_index_seq_scan_pct) 50
        (sequential scans as a share of all scans of the table).
      - C(slow_statement_warning_ms) 1000 and C(slow_statement_critical_ms) 10000 (mean execution time), for
        statements called at least C(slow_statement_min_calls) 10 times.
    type: dict
    default: {}
  top:
    description:
      - How many rows the lists keep (largest tables, top statements, long queries, advisor candidates).
    type: int
    default: 10
  advisors:
    description:
      - Advisors to run after C(checks), each a section of the result whose findings carry an C(action), the
        suggested fix. They only read, and none runs unless asked for.
      - V(unused_indexes), indexes never scanned since the statistics were reset, that back no primary key, unique
        or exclusion constraint, with their size and the statistics' age. Scans on standbys are not counted.
      - V(missing_indexes), tables above a size read mostly by sequential scans.
      - V(slow_statements), statements of the connected database in C(pg_stat_statements) slower on average than
        a threshold, with calls, mean and total time, their texts redacted like in V(statements).
      - V(nondefault_settings), the settings not at their default (C(pg_settings.source) other than C(default) and
        C(override)); values of secret settings (a name with C(password) but C(password_encryption), C(secret),
        C(passphrase), C(token) or ending in C(_key)) are masked whole; in the others, the passwords of connection
        strings and URIs (C(primary_conninfo)) and the values of options named like secrets (an
        C(archive_command) with C(--repo1-s3-key=...) or C(PGPASSWORD=...)) are masked.
        C(fsync), C(full_page_writes) or C(zero_damaged_pages) set unsafely is critical, C(autovacuum) off or
        C(ignore_checksum_failure) on a warning.
    type: list
    elements: str
    choices: [unused_indexes, missing_indexes, slow_statements, nondefault_settings]
    default: []
"""

    # stack_health nests these options under one dictionary option: plugins/doc_fragments/stack_health.py, made
    # from this file by tests/tools/gen_fragments.py.

    # Where pg_backup and pg_restore run the PostgreSQL client programs (_pgdump.py tools_argument_spec).
    TOOLS = r"""
options:
  compose_service:
    description:
      - The service that runs PostgreSQL, with O(compose_project_src). Its client programs always match the server's
        version, and need not be installed on the host.
    type: str
    default: postgres
  jobs:
    description:
      - Parallel jobs of C(pg_dump) (directory format only) or C(pg_restore). On a small host the server shares
        the cores, and one big table dominates anyway; measure before raising it.
    type: int
    default: 1
"""
