# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""What redis_health reads and how it judges it, shared with stack_health: PING and one INFO, section by
section, each reading compared with the thresholds."""

from __future__ import annotations

import time
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    Finding,
    HealthOptions,
    merge_thresholds,
    rate,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import RedisError, RedisLogin, client, describe
from ansible_collections.stackops.runbooks.plugins.module_utils._redis_advisors import (
    ADVISOR_DEFAULTS,
    ADVISOR_READERS,
    ADVISORS,
    check_samples,
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
    **ADVISOR_DEFAULTS,
}
# redis_health's options past the connection and the verdict, shared with stack_health's redis option.
OPTIONS: dict[str, t.Any] = {
    "big_keys_sample": {"type": "int", "default": 1000, "no_log": False},
    "advisors": {"type": "list", "elements": "str", "choices": ADVISORS, "default": []},
    "latency_samples": {"type": "int", "default": 100},
}
MB = 1024 * 1024


def memory(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
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


def stats(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
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


def clients(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
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


def persistence(info: dict[str, t.Any], th: dict[str, float], r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
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


def replication(info: dict[str, t.Any], th: dict[str, float], _r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
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


def keyspace(info: dict[str, t.Any], _th: dict[str, float], _r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
    dbs = {
        key: {"keys": int(v.get("keys", 0)), "expires": int(v.get("expires", 0))}
        for key, v in info.items()
        if key.startswith("db") and key[2:].isdigit() and isinstance(v, dict)
    }
    return {"databases": dbs, "total_keys": sum(d["keys"] for d in dbs.values())}, []


def bigkeys(_info: dict[str, t.Any], th: dict[str, float], r: t.Any, o: Health) -> tuple[dict, list[Finding]]:
    sampled, sizes = 0, []
    for key in r.scan_iter(count=500):
        sizes.append((r.memory_usage(key) or 0, key))
        sampled += 1
        if sampled >= o.big_keys_sample:
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


READERS: dict[str, t.Callable[..., tuple[dict[str, t.Any], list[Finding]]]] = {
    **ADVISOR_READERS,
    "memory": memory,
    "stats": stats,
    "clients": clients,
    "persistence": persistence,
    "replication": replication,
    "keyspace": keyspace,
    "bigkeys": bigkeys,
}


@dataclass(frozen=True)
class Health(HealthOptions):
    """redis_health's options (stack_health's redis option) once checked: what one health read takes."""

    login: RedisLogin
    advisors: tuple[str, ...]
    big_keys_sample: int
    latency_samples: int
    check_mode: bool  # the write probe does not write in check mode


def check_inputs(params: Mapping[str, t.Any], check_mode: bool) -> Health:
    thresholds = merge_thresholds(DEFAULTS, params["thresholds"])
    if params["big_keys_sample"] < 1:
        raise StackopsError(f"big_keys_sample must be at least 1, not {params['big_keys_sample']}.")
    check_samples(params["latency_samples"])
    return options_of(
        Health,
        params,
        login=RedisLogin.of(params),
        thresholds=thresholds,
        fail_on=params.get("fail_on", "critical"),
        check_mode=check_mode,
    )


def read_health(o: Health) -> tuple[dict[str, t.Any], list[Finding]]:
    """The result sections and the findings of one health read; an unreachable server is a critical finding. In
    check mode the write probe does not write."""
    r = client(o.login)
    try:
        r.ping()
        info = r.info("everything")
    except RedisError as exc:
        error = describe(exc, o.login.db)
        finding = Finding("availability", "critical", f"Redis at {o.login.target} is not available: {error}")
        return {"is_available": False, "conn_err_msg": error}, [finding]
    result: dict[str, t.Any] = {
        "is_available": True,
        "server": {
            "version": info.get("redis_version"),
            "mode": info.get("redis_mode"),
            "role": "replica" if info.get("role") == "slave" else "primary",
            "uptime_s": int(info.get("uptime_in_seconds", 0)),
        },
    }
    th = dict(o.thresholds)
    findings: list[Finding] = []
    for section in dict.fromkeys((*(o.checks or DEFAULT_SECTIONS), *o.advisors)):
        try:
            data, found = READERS[section](info, th, r, o)
        except RedisError as exc:
            # A command the ACL user may not run (CONFIG, MEMORY) must not hide the other sections.
            data, found = {"error": str(exc)}, [Finding(section, "warning", f"could not read {section}: {exc}")]
        result[section] = data
        findings += found
    return result, findings
