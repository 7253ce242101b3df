# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every redis_* module (plugins/module_utils/_redis.py connection_argument_spec).
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
    default: 6379
  login_user:
    description:
      - An ACL user name (Redis 6+). Without it the password authenticates the C(default) user.
    type: str
  login_password:
    description:
      - The password. It reaches the server through the library, never through a process argument or the task
        output.
    type: str
  login_unix_socket:
    description:
      - A Unix socket path to connect through instead of the host (C(login_host)).
    type: path
  db:
    description:
      - The database index.
    type: int
    default: 0
  tls:
    description:
      - Connect with TLS.
    type: bool
    default: false
  validate_certs:
    description:
      - With C(tls), verify the server's certificate.
    type: bool
    default: true
  ca_certs:
    description:
      - With C(tls), a file of CA certificates to verify the server with.
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection and for each reply.
    type: int
    default: 5

requirements:
  - The redis Python library on the managed host (C(python3-redis) or C(redis)).
"""

    # The sections and thresholds of redis_health.
    CHECKS = r"""
options:
  checks:
    description:
      - The sections to read. PING, version and role are always read. Default is every section except
        V(bigkeys), which scans and so runs only when asked for.
    type: list
    elements: str
    choices: [memory, stats, clients, persistence, replication, keyspace, bigkeys]
  thresholds:
    description:
      - Numbers that override the defaults. Unknown names are refused with the list of valid ones.
      - C(memory_warning_pct) 80 and C(memory_critical_pct) 90 (of C(maxmemory), when set).
      - C(fragmentation_warning_ratio) 1.5, judged above C(fragmentation_min_mb) 64 MB used.
      - C(hit_ratio_warning_pct) 80, judged after C(hit_ratio_min_lookups) 1000 lookups.
      - C(clients_warning_pct) 80 and C(clients_critical_pct) 95 (of C(maxclients)).
      - C(last_save_warning_s) 3600 and C(last_save_critical_s) 86400, judged only when RDB snapshots are
        configured.
      - C(replication_lag_warning_bytes) 1048576.
      - C(big_key_warning_bytes) 10485760.
      - For C(advisors), C(slowlog_warning_ms) 100 and C(slowlog_critical_ms) 1000 (a SLOWLOG entry's duration),
        C(latency_event_warning_ms) 100 and C(latency_event_critical_ms) 1000 (an event's latest spike), both
        judged only for entries of the last C(advice_recent_s) 86400 seconds; C(ping_p99_warning_ms) 10 and
        C(ping_p99_critical_ms) 100 (the 99th percentile of the PING sample).
    type: dict
    default: {}
  big_keys_sample:
    description:
      - With the V(bigkeys) check, how many keys to look at (SCAN, then C(MEMORY USAGE) per key).
    type: int
    default: 1000
  advisors:
    description:
      - Advisors to run after C(checks), each a section of the result whose findings carry an C(action), the
        suggested fix. None runs unless asked for.
      - V(slowlog), the last 128 entries of C(SLOWLOG GET), the 10 slowest kept, each command with its arguments
        replaced by their count (keys and values can be secrets).
      - V(latency), C(LATENCY LATEST)'s events, and whether the latency monitor is on.
      - V(memory_doctor), the text of C(MEMORY DOCTOR), a finding when it names issues.
      - V(latency_sample), C(latency_samples) PINGs (5 seconds at most) with min, average, p99 and max round trip.
      - V(write_probe), whether the server accepts writes now (it refuses them when out of memory with
        C(noeviction), after a failed save, or on a replica) - C(SET) of a key of its own
        (C(stackops:health:probe:<random>)) with a 30 s TTL, C(GET) and C(DEL). It leaves nothing behind, and does
        not run in check mode. A primary that refuses is critical; a replica that refuses is as expected.
    type: list
    elements: str
    choices: [slowlog, latency, memory_doctor, latency_sample, write_probe]
    default: []
  latency_samples:
    description:
      - With the V(latency_sample) advisor, how many PINGs to time, 1 to 1000.
    type: int
    default: 100
"""

    # stack_health nests these options under one dictionary option: plugins/doc_fragments/stack_health.py, made
    # from this file by tests/tools/gen_fragments.py.
