"""What changes between the server versions the collection supports, decided without a server: the checkpoint
view of PostgreSQL 15 and 17, pg_stat_statements' columns per extension version, every setting of PostgreSQL 17,
Redis 7.0's and 8.0's INFO, nginx -t's warnings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _redis_checks
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import emerg_lines, warn_lines
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_advisors import StatementColumns, statement_columns
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_checks import checkpoint_query
from ansible_collections.stackops.runbooks.plugins.module_utils._pg_maintenance import Guc, literal, normalise, show

try:
    from redis._parsers.helpers import parse_info  # redis-py 5 and later
except ImportError:  # redis-py 4 (Debian 12's python3-redis)
    from redis.client import parse_info


@pytest.mark.parametrize(
    ("version_num", "view", "columns"),
    [
        (150018, "pg_stat_bgwriter", ("checkpoints_timed", "checkpoints_req", "buffers_checkpoint")),
        (160010, "pg_stat_bgwriter", ("checkpoints_timed", "checkpoints_req", "buffers_checkpoint")),
        (170006, "pg_stat_checkpointer", ("num_timed", "num_requested", "buffers_written")),
        (180001, "pg_stat_checkpointer", ("num_timed", "num_requested", "buffers_written")),
    ],
)
def test_checkpoint_counters_are_read_where_each_version_keeps_them(
    version_num: int, view: str, columns: tuple[str, ...]
) -> None:
    query = checkpoint_query(version_num)
    assert f"FROM {view}" in query and all(column in query for column in columns)
    for alias in ("timed", "requested", "write_ms", "sync_ms", "buffers_written", "stats_reset", "source"):
        assert f" {alias}" in query


@pytest.mark.parametrize(
    ("extension_version", "columns"),
    [
        ("1.6", StatementColumns("mean_time", "total_time", "blk_read_time", "blk_write_time")),
        ("1.8", StatementColumns("mean_exec_time", "total_exec_time", "blk_read_time", "blk_write_time")),
        ("1.10", StatementColumns("mean_exec_time", "total_exec_time", "blk_read_time", "blk_write_time")),
        (
            "1.11",
            StatementColumns("mean_exec_time", "total_exec_time", "shared_blk_read_time", "shared_blk_write_time"),
        ),
        (
            "1.12",
            StatementColumns("mean_exec_time", "total_exec_time", "shared_blk_read_time", "shared_blk_write_time"),
        ),
    ],
)
def test_statement_columns_follow_the_installed_extension(extension_version: str, columns: StatementColumns) -> None:
    assert statement_columns(extension_version) == columns


def test_nginx_warnings_are_found_apart_from_errors() -> None:
    # nginx 1.26.3 (Debian 13) testing a site with `listen ... ssl http2`: a warning, and the test passes.
    output = (Path(__file__).parent / "fixtures" / "nginx" / "1.26.3-t-listen-http2.txt").read_text()
    assert warn_lines(output) == [
        'the "listen ... http2" directive is deprecated, use the "http2" directive instead in '
        "/etc/nginx/stackops/conf.d/sovd.conf:18"
    ]
    assert emerg_lines(output) == []
    assert warn_lines('nginx: [warn] the "http2_push" directive is obsolete, ignored in /etc/nginx/a.conf:3') == [
        'the "http2_push" directive is obsolete, ignored in /etc/nginx/a.conf:3'
    ]


# --- Redis INFO of each version, recorded with `redis-cli info everything` ----------------------------------------

REDIS_INFOS = sorted((Path(__file__).parent / "fixtures" / "redis").glob("info-everything-*.txt"))


class ConfigOnly:
    """What the persistence reader asks of a client besides INFO."""

    def config_get(self, name: str) -> dict[str, str]:
        return {"save": "3600 1 300 100 60 10000"} if name == "save" else {}


@pytest.mark.parametrize("path", REDIS_INFOS, ids=lambda p: p.stem.rsplit("-", 1)[1])
def test_redis_health_reads_the_info_of_each_version(path: Path) -> None:
    text = path.read_text()
    info = parse_info(text)
    assert info["redis_version"] == path.stem.rsplit("-", 1)[1]
    th = dict(_redis_checks.DEFAULTS)
    read = {
        name: _redis_checks.READERS[name](info, th, ConfigOnly(), {})
        for name in ("memory", "stats", "clients", "persistence", "replication", "keyspace")
    }
    raw = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    memory, _found = read["memory"]
    assert memory["used_bytes"] == int(raw["used_memory"]) and memory["policy"] == raw["maxmemory_policy"]
    assert memory["fragmentation_ratio"] == float(raw["mem_fragmentation_ratio"])
    clients, _found = read["clients"]
    assert clients["connected"] == int(raw["connected_clients"]) and clients["maxclients"] == int(raw["maxclients"])
    persistence, _found = read["persistence"]
    assert persistence["rdb_last_bgsave_status"] == raw["rdb_last_bgsave_status"] == "ok"
    replication, _found = read["replication"]
    assert replication["role"] == "primary" and replication["connected_replicas"] == int(raw["connected_slaves"])
    keyspace, _found = read["keyspace"]
    keys = {name: int(value.split(",")[0].split("=")[1]) for name, value in raw.items() if re.fullmatch(r"db\d+", name)}
    assert {name: db["keys"] for name, db in keyspace["databases"].items()} == keys
    assert keyspace["total_keys"] == sum(keys.values())


# --- PostgreSQL settings, recorded from pg_settings (15.18: those the unit tests use; 17.12: every one) ----------

RECORDED_SETTINGS = sorted((Path(__file__).parent / "fixtures" / "pg").glob("settings-*.json"))


@pytest.mark.parametrize("path", RECORDED_SETTINGS, ids=lambda p: p.stem.split("-", 1)[1])
def test_every_setting_the_server_holds_reads_and_writes_back(path: Path) -> None:
    """pg_maintenance compares what is asked with what the server holds: each value it holds must read (a new
    setting's unit, an octal file mode), and what would be written must read back as the same value."""
    for row in json.loads(path.read_text())["pg_settings"]:
        guc = Guc.from_row(row)
        value = normalise(guc, row["setting"])
        if not isinstance(value, tuple):
            assert normalise(guc, literal(guc, value)[0]) == value, row


GUCS_17 = {
    row["name"].lower(): Guc.from_row(row)
    for row in json.loads((Path(__file__).parent / "fixtures" / "pg" / "settings-17.12.json").read_text())[
        "pg_settings"
    ]
}


@pytest.mark.parametrize(
    ("name", "value", "held", "shown"),
    [
        # Integers are read as strtol(..., 0) reads them: SHOW prints file modes in octal.
        ("log_file_mode", "0640", 0o640, "0640"),
        ("unix_socket_permissions", "0777", 0o777, "0777"),
        ("statement_timeout", "0x10", 16, "16ms"),
        ("statement_timeout", "010s", 8000, "8s"),
        ("vacuum_cost_delay", "010", 10.0, "10ms"),  # a real: decimal
        # Settings new in 17.
        ("transaction_timeout", "5min", 300000, "5min"),
        ("io_combine_limit", "256kB", 32, "256kB"),
        ("summarize_wal", "yes", "on", "on"),
    ],
)
def test_values_read_as_postgresql_17_reads_them(name: str, value: str, held: float, shown: str) -> None:
    guc = GUCS_17[name]
    assert normalise(guc, value) == held
    assert show(guc, normalise(guc, value)) == shown
