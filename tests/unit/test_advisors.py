"""The advisors of pg_health and redis_health judged without a server: unused and missing indexes, slow statements,
changed settings with their secrets masked, SLOWLOG with its arguments redacted, LATENCY LATEST, MEMORY DOCTOR, the
PING sample and the write probe."""

from __future__ import annotations

import json
import typing as t
from dataclasses import asdict
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _pg_advisors as pga
from ansible_collections.stackops.runbooks.plugins.module_utils import _redis_advisors as rda
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_checks import DEFAULTS as PG_DEFAULTS
from ansible_collections.stackops.runbooks.plugins.module_utils._redis_checks import DEFAULTS as REDIS_DEFAULTS
from ansible_collections.stackops.runbooks.plugins.module_utils._redis_checks import Health, check_inputs
from ansible_collections.stackops.runbooks.plugins.modules import redis_health

FIXTURES = Path(__file__).parent / "fixtures"
MB = 1024 * 1024


def pg_th(**given: float) -> dict[str, float]:
    return {**{k: float(v) for k, v in PG_DEFAULTS.items()}, **given}


def redis_options(check_mode: bool = False, **given: t.Any) -> Health:
    """redis_health's options as its input check makes them: the defaults, with `given`."""
    params = {name: option.get("default") for name, option in redis_health.argument_spec().items()}
    return check_inputs(params | given, check_mode)


def redis_th(**given: float) -> dict[str, float]:
    return {**{k: float(v) for k, v in REDIS_DEFAULTS.items()}, **given}


# --- PostgreSQL -------------------------------------------------------------------------------------------------


def index(name: str, size: int) -> dict[str, t.Any]:
    return {"schema": "public", "table": "t", "index": name, "qualified": f"public.{name}", "scans": 0, "bytes": size}


def test_unused_indexes_are_judged_only_on_old_enough_statistics_and_above_a_size() -> None:
    candidates = [index("big_idx", 5 * MB), index("small_idx", 8192)]
    young = {"stats_reset": "2026-12-06T00:00:00+00:00", "stats_age_days": 2.0}
    assert pga.judge_unused(candidates, young, pg_th()) == []
    old = {"stats_reset": "2026-11-01T00:00:00+00:00", "stats_age_days": 36.0}
    found = [asdict(f) for f in pga.judge_unused(candidates, old, pg_th())]
    assert [f["value"] for f in found] == [5 * MB]
    assert found[0]["severity"] == "warning" and "36 days ago" in found[0]["message"]
    assert found[0]["action"].startswith("DROP INDEX CONCURRENTLY public.big_idx;")
    never_reset = {"stats_reset": None, "stats_age_days": None}
    assert len(pga.judge_unused(candidates, never_reset, pg_th(unused_index_min_mb=0))) == 2


def table(seq: int, idx: int, size_mb: int = 50) -> dict[str, t.Any]:
    return {
        "schema": "public",
        "table": "orders",
        "qualified": "public.orders",
        "seq_scan": seq,
        "seq_tup_read": seq * 1000,
        "idx_scan": idx,
        "live_rows": 1000,
        "bytes": size_mb * MB,
        "rows_per_seq_scan": 1000,
        "seq_scan_pct": round(100.0 * seq / max(seq + idx, 1), 1),
    }


@pytest.mark.parametrize(
    ("seq", "idx", "judged"),
    [(500, 10, True), (50, 0, False), (500, 5000, False), (100, 100, True)],
)
def test_missing_indexes_need_many_sequential_scans_and_a_share_of_them(seq: int, idx: int, judged: bool) -> None:
    found = pga.judge_missing([table(seq, idx)], pg_th())
    assert bool(found) is judged
    if judged:
        assert "CREATE INDEX CONCURRENTLY" in found[0].action and "public.orders" in found[0].message  # type: ignore[attr-defined]


def test_slow_statements_are_warning_or_critical_by_mean_time() -> None:
    rows = [
        {"queryid": "1", "database": "app", "user": "app", "calls": 20, "mean_ms": 1500.0, "total_ms": 30000.0},
        {"queryid": "2", "database": "app", "user": "app", "calls": 12, "mean_ms": 12000.0, "total_ms": 144000.0},
    ]
    found = pga.judge_slow(rows, pg_th())
    assert [(f.severity, f.threshold) for f in found] == [("warning", 1000.0), ("critical", 10000.0)]
    assert "EXPLAIN" in found[0].action  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        (
            "primary_conninfo",
            "host=10.0.0.1 port=5432 user=replicator password=s3cr3t sslmode=require",
            "host=10.0.0.1 port=5432 user=replicator password=******** sslmode=require",
        ),
        ("primary_conninfo", "user=r password='a b\\' c' host=x", "user=r password='********' host=x"),
        ("ssl_passphrase_command", "echo s3cr3t", "********"),
        ("some_ext.api_secret", "s3cr3t", "********"),
        ("archive_command", "pgbackrest --repo1-s3-key=AKIA1 push %p", "pgbackrest --repo1-s3-key=******** push %p"),
        ("archive_command", "PGPASSWORD=s3cr3t rsync %p x", "PGPASSWORD=******** rsync %p x"),
        ("restore_command", "curl https://u:s3cr3t@host/wal/%f -o %p", "curl https://u:********@host/wal/%f -o %p"),
        ("work_mem", "4096", "4096"),
        ("password_encryption", "scram-sha-256", "scram-sha-256"),
        ("application_name", "", ""),
    ],
)
def test_setting_values_with_secrets_are_masked(name: str, value: str, shown: str) -> None:
    assert pga.mask_setting(name, value) == shown


def test_unsafe_settings_are_findings() -> None:
    settings = [
        {"name": "fsync", "setting": "off", "source": "configuration file"},
        {"name": "autovacuum", "setting": "off", "source": "configuration file"},
        {"name": "fsync", "setting": "on", "source": "configuration file"},
        {"name": "work_mem", "setting": "65536", "source": "configuration file"},
    ]
    found = pga.judge_settings(settings)
    assert [(f.message.split(" is ")[0], f.severity) for f in found] == [
        ("setting fsync", "critical"),
        ("setting autovacuum", "warning"),
    ]


def test_recorded_settings_of_postgresql_17_show_no_secret() -> None:
    # pg_settings of the lab's PostgreSQL 17 (drill1), with a primary_conninfo holding a password and an
    # ssl_passphrase_command set for the record (tests/integration/test_advisors.py's scratch fixture).
    recorded = json.loads((FIXTURES / "pg" / "nondefault-settings-17.json").read_text())
    assert "drill-conninfo-password" in json.dumps(recorded) and "drill-passphrase-secret" in json.dumps(recorded)
    masked = {s["name"]: pga.mask_setting(s["name"], s["setting"]) for s in recorded}
    assert "drill-conninfo-password" not in json.dumps(masked) and "drill-passphrase-secret" not in json.dumps(masked)
    assert masked["primary_conninfo"] == "host=127.0.2.1 user=rep password=********"
    assert masked["ssl_passphrase_command"] == "********"
    assert masked["shared_preload_libraries"] == "pg_stat_statements" and masked["max_connections"] == "100"
    assert pga.judge_settings(recorded) == []


def test_recorded_index_statistics_give_the_unused_candidates() -> None:
    # pg_stat_user_indexes joined with pg_index on drill1's scratch database, after its workload.
    recorded = json.loads((FIXTURES / "pg" / "advisor-indexes-17.json").read_text())
    # Never scanned: the primary key's and the unique constraint's indexes too, which are no candidates.
    never = {i["indexrelname"] for i in recorded["pg_stat_user_indexes"] if i["idx_scan"] == 0}
    assert never == {"events_pkey", "events_code_key", "events_note_idx"}
    assert [c["index"] for c in recorded["unused"]] == ["events_note_idx"]
    found = pga.judge_unused(recorded["unused"], {"stats_reset": None, "stats_age_days": None}, pg_th())
    assert [f.message.split()[1] for f in found] == ["public.events_note_idx"]
    assert (
        pga.judge_unused(
            recorded["unused"], {"stats_reset": None, "stats_age_days": None}, pg_th(unused_index_min_mb=8)
        )
        == []
    )
    # scans: 120 sequential scans, no index; events: 4 (the index builds) against 5 index scans.
    assert [f.message.split()[1] for f in pga.judge_missing(recorded["missing"], pg_th())] == ["public.scans"]


# --- Redis ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ([b"SET", b"session:abc", b"s3cr3t"], "SET (2 arguments redacted)"),
        ([b"config", b"set", b"requirepass", b"s3cr3t"], "CONFIG SET (2 arguments redacted)"),
        ([b"KEYS", b"*"], "KEYS (1 argument redacted)"),
        ([b"PING"], "PING"),
        ([b"CLIENT", b"LIST"], "CLIENT LIST"),
        ([], ""),
    ],
)
def test_slowlog_commands_keep_only_their_names(args: list[bytes], shown: str) -> None:
    assert rda.redact_command(args) == shown


def slow_entry(ident: int, when: int, micros: int, args: list[bytes]) -> list[t.Any]:
    return [ident, when, micros, args, b"127.0.2.3:40000", b""]


def test_slowlog_findings_per_command_within_the_recent_window() -> None:
    now = 1_800_000_000
    raw = [
        slow_entry(3, now - 10, 150_000, [b"KEYS", b"user:*"]),
        slow_entry(2, now - 20, 1_500_000, [b"KEYS", b"s3cr3t*"]),
        slow_entry(1, now - 100_000, 5_000_000, [b"HGETALL", b"big"]),  # too old to judge
        slow_entry(0, now - 5, 20_000, [b"GET", b"x"]),  # under the threshold
    ]
    entries = rda.parse_slowlog(raw)
    assert entries[0] == {
        "id": 3,
        "time": now - 10,
        "duration_ms": 150.0,
        "command": "KEYS (1 argument redacted)",
        "client_address": "127.0.2.3:40000",
        "client_name": "",
    }
    found = rda.judge_slowlog(entries, redis_th(), now)
    assert [(f.severity, f.value) for f in found] == [("critical", 1500.0)]
    assert "2 KEYS call(s)" in found[0].message and "s3cr3t" not in json.dumps([asdict(f) for f in found])
    # Redis Enterprise puts a complexity before the arguments.
    assert (
        rda.parse_slowlog([[1, now, 10, 42, [b"GET", b"k"], b"c", b"n"]])[0]["command"] == "GET (1 argument redacted)"
    )


def test_latency_events_are_judged_by_their_latest_spike_when_recent() -> None:
    now = 1_800_000_000
    events = rda.parse_latency([[b"command", now - 5, 250, 900], [b"fork", now - 200_000, 5000, 5000]])
    assert events[0] == {"event": "command", "time": now - 5, "latest_ms": 250, "max_ms": 900}
    found = rda.judge_latency(events, redis_th(), now)
    assert [(f.severity, f.value) for f in found] == [("warning", 250)]
    assert "LATENCY DOCTOR" in found[0].action  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["7.0.15", "8.0.2"])
def test_recorded_memory_doctor_reports(version: str) -> None:
    # MEMORY DOCTOR of the lab's Redis (lab1 7.0, lab3 8.0): no issue on their small datasets.
    report = (FIXTURES / "redis" / f"memory-doctor-{version}.txt").read_text().strip()
    assert report.startswith("Hi Sam") and rda.judge_doctor(report) == []


def test_memory_doctor_issues_are_one_finding() -> None:
    report = (
        "Sam, I detected a few issues in this Redis instance memory implants:\n\n"
        " * Peak memory: In the past this instance used more than 150% the memory that is currently using. ...\n\n"
        " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 ...\n\n"
        "I'm here to keep you safe, Sam. I want to help you.\n"
    )
    (found,) = rda.judge_doctor(report)
    assert found.message == "MEMORY DOCTOR reports: Peak memory, High total RSS" and found.value == 2


def test_recorded_slowlog_and_latency_of_redis_8() -> None:
    # SLOWLOG GET and LATENCY LATEST of drill1's Redis 8.0 after a slow script with a "secret" argument.
    recorded = json.loads((FIXTURES / "redis" / "advisors-8.0.2.json").read_text())
    assert "drill-slowlog-secret" in json.dumps(recorded)
    (entry,) = rda.parse_slowlog(recorded["slowlog"])
    assert entry["command"] == "EVAL (3 arguments redacted)" and entry["client_address"] == "127.0.0.1:59370"
    assert "drill-slowlog-secret" not in json.dumps(entry) and entry["duration_ms"] == 231.96
    now = entry["time"] + 60
    (slow,) = rda.judge_slowlog([entry], redis_th(), now)
    assert (slow.severity, slow.value) == ("warning", 231.96)
    (event,) = rda.parse_latency(recorded["latency"])
    assert event == {"event": "command", "time": entry["time"], "latest_ms": 231, "max_ms": 231}
    assert [f.severity for f in rda.judge_latency([event], redis_th(), now)] == ["warning"]
    assert rda.judge_slowlog([entry], redis_th(), now + 86400) == []  # no longer recent


def test_recorded_slowlog_of_redis_7_hides_key_names() -> None:
    # lab1's Redis 7.0 SLOWLOG as found: the test harness's DUMPs of session keys and SCANs, LATENCY LATEST empty.
    recorded = json.loads((FIXTURES / "redis" / "advisors-7.0.15.json").read_text())
    entries = rda.parse_slowlog(recorded["slowlog"])
    assert len(entries) == len(recorded["slowlog"]) and "session:" not in json.dumps(entries)
    assert {e["command"] for e in entries} >= {"DUMP (1 argument redacted)", "SCAN (3 arguments redacted)"}
    now = max(e["time"] for e in entries)
    slow = sorted({e["command"].split(" (")[0] for e in entries if e["duration_ms"] >= 100})
    found = rda.judge_slowlog(entries, redis_th(), now)
    assert [f.message.split()[3] for f in found] == slow and slow
    assert rda.parse_latency(recorded["latency"]) == []


def test_percentiles_of_the_ping_sample() -> None:
    times = [float(n) for n in range(1, 101)]
    assert rda.summarise(times) == {"count": 100, "min_ms": 1.0, "avg_ms": 50.5, "p99_ms": 99.0, "max_ms": 100.0}
    assert rda.summarise([0.2])["p99_ms"] == 0.2


class FakeRedis:
    def __init__(self, refuse: str | None = None) -> None:
        self.refuse, self.calls, self.store = refuse, [], {}  # type: ignore[var-annotated]

    def ping(self) -> bool:
        self.calls.append(("PING",))
        return True

    def set(self, key: str, value: str, px: int, nx: bool) -> bool:
        self.calls.append(("SET", key, px, nx))
        if self.refuse:
            raise rda.RedisError(self.refuse)
        self.store[key] = value.encode()
        return True

    def get(self, key: str) -> bytes | None:
        self.calls.append(("GET", key))
        return self.store.get(key)

    def delete(self, key: str) -> int:
        self.calls.append(("DEL", key))
        if self.refuse:
            raise rda.RedisError(self.refuse)
        return 1 if self.store.pop(key, None) is not None else 0


def test_the_write_probe_leaves_nothing_behind() -> None:
    r = FakeRedis()
    data, found = rda.write_probe({"role": "master"}, redis_th(), r, redis_options())
    assert (data["writable"], data["read_back"], found) == (True, True, [])
    assert [c[0] for c in r.calls] == ["SET", "GET", "DEL"] and r.store == {}
    assert r.calls[0][1].startswith("stackops:health:probe:") and r.calls[0][2:] == (30000, True)


def test_a_primary_that_refuses_writes_is_critical_and_a_replica_is_expected_to() -> None:
    oom = "OOM command not allowed when used memory > 'maxmemory'."
    data, found = rda.write_probe({"role": "master"}, redis_th(), FakeRedis(oom), redis_options())
    assert data["writable"] is False and data["error"] == oom
    assert [(f.severity, f.check) for f in found] == [("critical", "write_probe")] and oom in found[0].message
    readonly = "READONLY You can't write against a read only replica."
    data, found = rda.write_probe({"role": "slave"}, redis_th(), FakeRedis(readonly), redis_options())
    assert (data["writable"], found) == (False, []) and "expected" in data["note"]


def test_the_write_probe_does_not_write_in_check_mode() -> None:
    r = FakeRedis()
    data, found = rda.write_probe({"role": "master"}, redis_th(), r, redis_options(check_mode=True))
    assert (data["skipped"], found, r.calls) == (True, [], [])


def test_the_ping_sample_is_bounded() -> None:
    r = FakeRedis()
    data, found = rda.latency_sample({}, redis_th(), r, redis_options(latency_samples=25))
    assert (data["count"], data["asked"], len(r.calls), found) == (25, 25, 25, [])
    strict = redis_th(ping_p99_warning_ms=0, ping_p99_critical_ms=1000)
    _result, found = rda.latency_sample({}, strict, FakeRedis(), redis_options(latency_samples=3))
    assert [f.severity for f in found] == ["warning"]


@pytest.mark.parametrize("samples", [0, -1, 1001])
def test_latency_samples_out_of_bounds_are_refused(samples: int) -> None:
    with pytest.raises(StackopsError, match=f"latency_samples must be between 1 and 1000, not {samples}"):
        redis_options(latency_samples=samples)
