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
  - stackops.runbooks.health
  - stackops.runbooks.attributes
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
    type: dict
    default: {}
  big_keys_sample:
    description:
      - With the V(bigkeys) check, how many keys to look at (SCAN, then C(MEMORY USAGE) per key).
    type: int
    default: 1000
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

import time
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    Finding,
    finish,
    health_argument_spec,
    merge_thresholds,
    rate,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import (
    RedisError,
    client,
    connection_argument_spec,
    ensure_libs,
    target,
)

SECTIONS = ["memory", "stats", "clients", "persistence", "replication", "keyspace", "bigkeys"]
DEFAULT_SECTIONS = [s for s in SECTIONS if s != "bigkeys"]
DEFAULTS = {
    "memory_warning_pct": 80,
    "memory_critical_pct": 90,
    "fragmentation_warning_ratio": 1.5,
    "fragmentation_min_mb": 64,
    "hit_ratio_warning_pct": 80,
    "hit_ratio_min_lookups": 1000,
    "clients_warning_pct": 80,
    "clients_critical_pct": 95,
    "last_save_warning_s": 3600,
    "last_save_critical_s": 86400,
    "replication_lag_warning_bytes": 1048576,
    "big_key_warning_bytes": 10485760,
}
MB = 1024 * 1024


def argument_spec() -> dict[str, t.Any]:
    spec = connection_argument_spec()
    spec.update(health_argument_spec(SECTIONS))
    spec["big_keys_sample"] = {"type": "int", "default": 1000, "no_log": False}
    return spec


def memory(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _p: dict) -> tuple[dict, list[Finding]]:
    used, limit = int(info["used_memory"]), int(info.get("maxmemory", 0))
    data = {
        "used_bytes": used,
        "peak_bytes": int(info.get("used_memory_peak", 0)),
        "maxmemory_bytes": limit,
        "policy": info.get("maxmemory_policy"),
        "fragmentation_ratio": float(info.get("mem_fragmentation_ratio", 0)),
        "evicted_keys": int(info.get("evicted_keys", 0)),
        "used_pct": round(100.0 * used / limit, 1) if limit else None,
    }
    found = []
    if limit:
        found += rate(
            "memory",
            f"memory used ({used // MB} MB of {limit // MB} MB, policy {data['policy']})",
            data["used_pct"],
            th["memory_warning_pct"],
            th["memory_critical_pct"],
            "%",
        )
    if used >= th["fragmentation_min_mb"] * MB:
        found += rate(
            "memory",
            "memory fragmentation ratio",
            data["fragmentation_ratio"],
            th["fragmentation_warning_ratio"],
            float("inf"),
        )
    if data["evicted_keys"] and data["policy"] == "noeviction":
        found.append(
            Finding(
                "memory", "critical", "maxmemory is reached with policy noeviction: writes fail", data["evicted_keys"]
            )
        )
    return data, found


def stats(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _p: dict) -> tuple[dict, list[Finding]]:
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    ratio = round(100.0 * hits / (hits + misses), 2) if hits + misses else None
    data = {
        "keyspace_hits": hits,
        "keyspace_misses": misses,
        "hit_pct": ratio,
        "expired_keys": int(info.get("expired_keys", 0)),
        "evicted_keys": int(info.get("evicted_keys", 0)),
        "commands_processed": int(info.get("total_commands_processed", 0)),
    }
    if ratio is None or hits + misses < th["hit_ratio_min_lookups"]:
        return data, []
    return data, rate(
        "stats", "keyspace hit ratio", ratio, th["hit_ratio_warning_pct"], -1.0, "%", higher_is_worse=False
    )


def clients(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _p: dict) -> tuple[dict, list[Finding]]:
    connected, limit = int(info.get("connected_clients", 0)), int(info.get("maxclients", 0))
    data = {
        "connected": connected,
        "blocked": int(info.get("blocked_clients", 0)),
        "maxclients": limit,
        "rejected_connections": int(info.get("rejected_connections", 0)),
    }
    found = []
    if limit:
        found += rate(
            "clients",
            f"{connected} of {limit} clients connected",
            round(100.0 * connected / limit, 1),
            th["clients_warning_pct"],
            th["clients_critical_pct"],
            "%",
        )
    if data["rejected_connections"]:
        found.append(
            Finding(
                "clients",
                "warning",
                f"{data['rejected_connections']} connections were rejected "
                "(maxclients reached) since the server started",
                data["rejected_connections"],
            )
        )
    return data, found


def persistence(info: dict[str, t.Any], th: dict[str, float], r: t.Any, _p: dict) -> tuple[dict, list[Finding]]:
    saves = r.config_get("save").get("save", "")
    age = int(time.time()) - int(info.get("rdb_last_save_time", 0))
    data = {
        "rdb_save_rules": saves,
        "rdb_last_bgsave_status": info.get("rdb_last_bgsave_status"),
        "rdb_last_save_age_s": age,
        "rdb_changes_since_last_save": int(info.get("rdb_changes_since_last_save", 0)),
        "rdb_bgsave_in_progress": bool(int(info.get("rdb_bgsave_in_progress", 0))),
        "aof_enabled": bool(int(info.get("aof_enabled", 0))),
        "aof_last_write_status": info.get("aof_last_write_status"),
    }
    found = []
    if data["rdb_last_bgsave_status"] not in (None, "ok"):
        found.append(
            Finding(
                "persistence",
                "critical",
                "the last BGSAVE failed (rdb_last_bgsave_status:err): snapshots are not being written",
                data["rdb_last_bgsave_status"],
            )
        )
    if data["aof_enabled"] and data["aof_last_write_status"] not in (None, "ok"):
        found.append(Finding("persistence", "critical", "the last AOF write failed", data["aof_last_write_status"]))
    if saves and data["rdb_changes_since_last_save"]:
        found += rate(
            "persistence",
            "age of the last RDB snapshot, with unsaved changes",
            age,
            th["last_save_warning_s"],
            th["last_save_critical_s"],
            "s",
        )
    return data, found


def replication(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _p: dict) -> tuple[dict, list[Finding]]:
    role = info.get("role")
    found = []
    if role == "slave":
        data = {
            "role": "replica",
            "master": f"{info.get('master_host')}:{info.get('master_port')}",
            "link_status": info.get("master_link_status"),
        }
        if data["link_status"] != "up":
            found.append(
                Finding(
                    "replication",
                    "critical",
                    f"the link to the primary {data['master']} is {data['link_status']}",
                    data["link_status"],
                )
            )
        return data, found
    offset = int(info.get("master_repl_offset", 0))
    replicas = []
    for key, value in info.items():
        if key.startswith("slave") and isinstance(value, dict):
            lag = offset - int(value.get("offset", 0))
            replicas.append(
                {"address": f"{value.get('ip')}:{value.get('port')}", "state": value.get("state"), "lag_bytes": lag}
            )
            found += rate(
                "replication",
                f"lag of replica {value.get('ip')}:{value.get('port')}",
                lag,
                th["replication_lag_warning_bytes"],
                float("inf"),
                " bytes",
            )
    return {"role": "primary", "connected_replicas": int(info.get("connected_slaves", 0)), "replicas": replicas}, found


def keyspace(info: dict[str, t.Any], _th: dict[str, float], _r: t.Any, _p: dict) -> tuple[dict, list[Finding]]:
    dbs = {
        key: {"keys": int(v.get("keys", 0)), "expires": int(v.get("expires", 0))}
        for key, v in info.items()
        if key.startswith("db") and key[2:].isdigit() and isinstance(v, dict)
    }
    return {"databases": dbs, "total_keys": sum(d["keys"] for d in dbs.values())}, []


def bigkeys(_info: dict[str, t.Any], th: dict[str, float], r: t.Any, params: dict) -> tuple[dict, list[Finding]]:
    sampled, sizes = 0, []
    for key in r.scan_iter(count=500):
        sizes.append((r.memory_usage(key) or 0, key))
        sampled += 1
        if sampled >= params["big_keys_sample"]:
            break
    sizes.sort(reverse=True)
    largest = [{"key": k.decode(errors="replace"), "bytes": size} for size, k in sizes[:10]]
    found = []
    for item in largest:
        found += rate(
            "bigkeys",
            f"key {item['key']!r} uses {item['bytes']} bytes",
            item["bytes"],
            th["big_key_warning_bytes"],
            float("inf"),
            " bytes",
        )
    return {"sampled": sampled, "largest": largest}, found


READERS = {
    "memory": memory,
    "stats": stats,
    "clients": clients,
    "persistence": persistence,
    "replication": replication,
    "keyspace": keyspace,
    "bigkeys": bigkeys,
}


def run_module(module: t.Any) -> dict[str, t.Any]:
    ensure_libs(module)
    params = module.params
    th = merge_thresholds(DEFAULTS, params["thresholds"])
    if params["big_keys_sample"] < 1:
        raise StackopsError(f"big_keys_sample must be at least 1, not {params['big_keys_sample']}.")
    r = client(params)
    try:
        r.ping()
        info = r.info("everything")
    except RedisError as exc:
        error = str(exc).strip() or type(exc).__name__
        finding = Finding("availability", "critical", f"Redis at {target(params)} is not available: {error}")
        return finish(module, [finding], {"is_available": False, "conn_err_msg": error})
    result: dict[str, t.Any] = {
        "is_available": True,
        "server": {
            "version": info.get("redis_version"),
            "mode": info.get("redis_mode"),
            "role": "replica" if info.get("role") == "slave" else "primary",
            "uptime_s": int(info.get("uptime_in_seconds", 0)),
        },
    }
    findings: list[Finding] = []
    for section in params["checks"] or DEFAULT_SECTIONS:
        try:
            data, found = READERS[section](info, th, r, params)
        except RedisError as exc:
            # A command the ACL user may not run (CONFIG, MEMORY) must not hide the other sections.
            data, found = {"error": str(exc)}, [Finding(section, "warning", f"could not read {section}: {exc}")]
        result[section] = data
        findings += found
    return finish(module, findings, result)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
