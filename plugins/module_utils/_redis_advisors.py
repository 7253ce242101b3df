# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""redis_health's advisors: SLOWLOG, LATENCY LATEST, MEMORY DOCTOR, a bounded PING latency sample and a write probe
that leaves nothing behind, each judged with the thresholds and saying what to do about its findings."""

from __future__ import annotations

import contextlib
import math
import secrets
import time
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._health import Advice, Finding, rate
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import RedisError

if t.TYPE_CHECKING:  # _redis_checks imports this file
    from ansible_collections.stackops.runbooks.plugins.module_utils._redis_checks import Health

ADVISORS = ["slowlog", "latency", "memory_doctor", "latency_sample", "write_probe"]
ADVISOR_DEFAULTS = {
    "slowlog_warning_ms": 100,
    "slowlog_critical_ms": 1000,
    "latency_event_warning_ms": 100,
    "latency_event_critical_ms": 1000,
    "advice_recent_s": 86400,
    "ping_p99_warning_ms": 10,
    "ping_p99_critical_ms": 100,
}
# SLOWLOG's default length (slowlog-max-len); the entries kept in the result.
SLOWLOG_READ = 128
SLOWLOG_KEEP = 10
MAX_SAMPLES = 1000
SAMPLE_BUDGET_S = 5.0
# Commands whose first argument is a subcommand, kept in the redacted text (CONFIG SET, CLIENT KILL, ...).
CONTAINERS = {
    "acl", "client", "cluster", "command", "config", "debug", "function", "latency", "memory", "module", "object",
    "pubsub", "script", "slowlog", "xgroup", "xinfo",
}  # fmt: skip
PROBE_PREFIX = "stackops:health:probe:"
PROBE_TTL_MS = 30000


def text(value: t.Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def redact_command(args: list[t.Any]) -> str:
    """A SLOWLOG entry's command with its arguments (keys and values can be secrets) replaced by their count."""
    words = [text(a) for a in args]
    if not words:
        return ""
    keep = 2 if words[0].lower() in CONTAINERS and len(words) > 1 else 1
    shown = " ".join(w.upper() for w in words[:keep])
    # Redis itself replaces AUTH's and HELLO's arguments, and says how many it left out of a long command.
    hidden = len(words) - keep
    return f"{shown} ({hidden} argument{'s' if hidden != 1 else ''} redacted)" if hidden else shown


def parse_slowlog(raw: list[t.Any]) -> list[dict[str, t.Any]]:
    """SLOWLOG GET's raw reply (id, unix time, microseconds, arguments, client address, client name)."""
    entries = []
    for item in raw:
        args = next((part for part in item[3:] if isinstance(part, list)), [])
        rest = item[item.index(args) + 1 :] if args in item else []
        entries.append(
            {
                "id": int(item[0]),
                "time": int(item[1]),
                "duration_ms": round(int(item[2]) / 1000.0, 3),
                "command": redact_command(args),
                "client_address": text(rest[0]) if rest else None,
                "client_name": text(rest[1]) if len(rest) > 1 else None,
            }
        )
    return entries


def judge_slowlog(entries: list[dict[str, t.Any]], th: dict[str, float], now: float) -> list[Finding]:
    """One finding per command name among the recent entries at or above the warning threshold."""
    worst: dict[str, list[dict[str, t.Any]]] = {}
    for e in entries:
        if now - e["time"] <= th["advice_recent_s"] and e["duration_ms"] >= th["slowlog_warning_ms"]:
            worst.setdefault(e["command"].split(" (")[0], []).append(e)
    found: list[Finding] = []
    for command, slow in sorted(worst.items()):
        slowest = max(e["duration_ms"] for e in slow)
        clients = sorted({e["client_address"] for e in slow if e["client_address"]})
        for f in rate(
            "slowlog",
            f"slowest of {len(slow)} {command} call(s) in SLOWLOG (clients {', '.join(clients) or '?'})",
            slowest,
            th["slowlog_warning_ms"],
            th["slowlog_critical_ms"],
            " ms",
        ):
            found.append(
                Advice(
                    **vars(f),
                    action=f"find what sends {command} from those clients: replace O(N) commands (KEYS, SMEMBERS, "
                    "HGETALL, LRANGE 0 -1 of big values) with SCAN-style iteration or smaller values",
                )
            )
    return found


def slowlog(_info: dict[str, t.Any], th: dict[str, float], r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
    entries = parse_slowlog(r.execute_command("SLOWLOG", "GET", SLOWLOG_READ))
    length = int(r.execute_command("SLOWLOG", "LEN"))
    found = judge_slowlog(entries, th, time.time())
    entries.sort(key=lambda e: e["duration_ms"], reverse=True)
    return {"length": length, "read": len(entries), "slowest": entries[:SLOWLOG_KEEP]}, found


def parse_latency(raw: list[t.Any]) -> list[dict[str, t.Any]]:
    """LATENCY LATEST's raw reply: event, unix time of the latest spike, its milliseconds, the highest."""
    return [{"event": text(e[0]), "time": int(e[1]), "latest_ms": int(e[2]), "max_ms": int(e[3])} for e in raw]


def judge_latency(events: list[dict[str, t.Any]], th: dict[str, float], now: float) -> list[Finding]:
    found: list[Finding] = []
    for e in events:
        if now - e["time"] > th["advice_recent_s"]:
            continue
        label = f"latest spike of latency event {e['event']} (highest {e['max_ms']} ms)"
        for f in rate(
            "latency", label, e["latest_ms"], th["latency_event_warning_ms"], th["latency_event_critical_ms"], " ms"
        ):
            found.append(Advice(**vars(f), action=f"LATENCY DOCTOR and LATENCY HISTORY {e['event']} tell its cause"))
    return found


def latency(_info: dict[str, t.Any], th: dict[str, float], r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
    events = parse_latency(r.execute_command("LATENCY", "LATEST"))
    data: dict[str, t.Any] = {"events": events}
    try:
        monitor = int(r.config_get("latency-monitor-threshold").get("latency-monitor-threshold", 0))
    except RedisError:  # an ACL user without CONFIG still gets the events
        monitor = None
    data["monitor_threshold_ms"] = monitor
    if monitor == 0:
        data["note"] = "the latency monitor is off (latency-monitor-threshold 0): no event is recorded"
    return data, judge_latency(events, th, time.time())


def judge_doctor(report: str) -> list[Finding]:
    """MEMORY DOCTOR names each issue on a line starting with ' * '; a report without any says all is well."""
    issues = [line.strip()[2:].split(":")[0] for line in report.splitlines() if line.strip().startswith("* ")]
    if not issues:
        return []
    return [
        Advice(
            "memory_doctor",
            "warning",
            f"MEMORY DOCTOR reports: {', '.join(issues)}",
            len(issues),
            None,
            "read memory_doctor.report: it explains each issue and its fix",
        )
    ]


def memory_doctor(_info: dict[str, t.Any], _th: dict[str, float], r: t.Any, _o: Health) -> tuple[dict, list[Finding]]:
    report = text(r.execute_command("MEMORY", "DOCTOR")).strip()
    return {"report": report}, judge_doctor(report)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summarise(times_ms: list[float]) -> dict[str, t.Any]:
    return {
        "count": len(times_ms),
        "min_ms": round(min(times_ms), 3),
        "avg_ms": round(sum(times_ms) / len(times_ms), 3),
        "p99_ms": round(percentile(times_ms, 99), 3),
        "max_ms": round(max(times_ms), 3),
    }


def latency_sample(_info: dict[str, t.Any], th: dict[str, float], r: t.Any, o: Health) -> tuple[dict, list[Finding]]:
    """PING round trips, at most latency_samples of them and SAMPLE_BUDGET_S seconds."""
    wanted = o.latency_samples
    times: list[float] = []
    deadline = time.monotonic() + SAMPLE_BUDGET_S
    while len(times) < wanted and time.monotonic() < deadline:
        started = time.perf_counter()
        r.ping()
        times.append((time.perf_counter() - started) * 1000)
    data = {**summarise(times), "asked": wanted}
    found = rate(
        "latency_sample",
        f"PING round trip p99 over {len(times)} samples",
        data["p99_ms"],
        th["ping_p99_warning_ms"],
        th["ping_p99_critical_ms"],
        " ms",
    )
    action = "compare with the server's own view (LATENCY LATEST, SLOWLOG): a slow server, or the network between"
    return data, [Advice(**vars(f), action=action) for f in found]


def write_probe(info: dict[str, t.Any], _th: dict[str, float], r: t.Any, o: Health) -> tuple[dict, list[Finding]]:
    """SET a key of its own with a TTL, GET it back and DEL it: whether the server accepts writes now."""
    if o.check_mode:
        return {"skipped": True, "note": "the write probe writes, so it does not run in check mode"}, []
    key, value = f"{PROBE_PREFIX}{secrets.token_hex(8)}", secrets.token_hex(8)
    started = time.perf_counter()
    data: dict[str, t.Any] = {"skipped": False, "key": key}
    try:
        r.set(key, value, px=PROBE_TTL_MS, nx=True)
        read_back = r.get(key)
        data.update(writable=True, read_back=text(read_back) == value if read_back is not None else False)
    except RedisError as exc:
        data.update(writable=False, error=str(exc).strip())
    finally:
        # A refused SET wrote nothing, and the TTL removes the key anyway.
        with contextlib.suppress(RedisError):
            r.delete(key)
    data["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
    replica = info.get("role") == "slave"
    if data["writable"] or replica:
        if replica and not data["writable"]:
            data["note"] = "a replica refuses writes: expected"
        return data, []
    return data, [
        Advice(
            "write_probe",
            "critical",
            f"the primary refuses writes: {data['error']}",
            data["error"],
            None,
            "OOM: raise maxmemory or set an eviction policy; MISCONF: fix the failed RDB save (disk, permissions); "
            "READONLY: this node is a replica; NOPERM: the login user may not write",
        )
    ]


ADVISOR_READERS = {
    "slowlog": slowlog,
    "latency": latency,
    "memory_doctor": memory_doctor,
    "latency_sample": latency_sample,
    "write_probe": write_probe,
}


def check_samples(samples: int | None) -> None:
    if samples is not None and not 1 <= samples <= MAX_SAMPLES:
        raise StackopsError(f"latency_samples must be between 1 and {MAX_SAMPLES}, not {samples}.")
