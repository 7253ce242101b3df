"""The pure parts of redis_maintenance: sizes with units, values normalised as CONFIG GET reports them, the
settings plan, the input checks that must refuse before anything changes, keys shown in results, and the checks
of a snapshot copy (on real files)."""

from __future__ import annotations

import hashlib
import os
import stat
import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _backup
from ansible_collections.stackops.runbooks.plugins.module_utils import _redis_maintenance as rm
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ProjectRef
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import connection_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils._redis_maintenance import MaintenanceError

# The start of a real RDB file written by Redis 7.0.15 (drill1), then its auxiliary fields.
RDB_HEAD = b"REDIS0010\xfa\tredis-ver\x067.0.15"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("64mb", 67108864),
        ("256MB", 268435456),
        ("1gb", 1073741824),
        ("1Gb", 1073741824),
        ("100kb", 102400),
        ("1k", 1000),
        ("5m", 5000000),
        ("2g", 2000000000),
        ("10b", 10),
        ("67108864", None),
        ("1.5gb", None),
        ("-1mb", None),
        ("mb", None),
        ("64 mb", None),
        ("64tb", None),
    ],
)
def test_memory_bytes_reads_sizes_as_redis_does(token: str, expected: int | None) -> None:
    assert rm.memory_bytes(token) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("maxmemory", "64mb", "67108864"),
        ("maxmemory", "67108864", "67108864"),
        ("maxmemory-policy", "ALLKEYS-LRU", "allkeys-lru"),
        ("appendonly", "Yes", "yes"),
        ("save", "900  1 300\t100", "900 1 300 100"),
        ("save", "", ""),
        ("client-output-buffer-limit", "pubsub 32mb 8mb 60", "pubsub 33554432 8388608 60"),
        ("notify-keyspace-events", "KEA", "KEA"),
        ("dbfilename", "Dump.rdb", "Dump.rdb"),
    ],
)
def test_normalise_gives_the_form_config_get_reports(name: str, value: str, expected: str) -> None:
    assert rm.normalise(name, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "yes"), (False, "no"), (10, "10"), (0.5, "0.5"), ("64mb", "64mb"), ([900, 1, 300, "10"], "900 1 300 10")],
)
def test_values_become_what_config_set_takes(value: t.Any, expected: str) -> None:
    assert rm.to_text("x", value) == expected


@pytest.mark.parametrize("value", [{"a": 1}, [True], None])
def test_other_values_are_refused_naming_the_setting(value: t.Any) -> None:
    with pytest.raises(MaintenanceError, match="config save is"):
        rm.to_text("save", value)


def test_the_plan_compares_after_normalising_both_sides() -> None:
    current = {"maxmemory": "67108864", "maxmemory-policy": "allkeys-lru", "hz": "10"}
    wanted = {"maxmemory": "64mb", "maxmemory-policy": "ALLKEYS-LRU", "hz": "10"}
    assert rm.plan_config(wanted, current) == {}
    wanted = {"maxmemory": "128mb", "maxmemory-policy": "noeviction", "hz": "10"}
    assert rm.plan_config(wanted, current) == {
        "maxmemory": {"before": "67108864", "after": "134217728"},
        "maxmemory-policy": {"before": "allkeys-lru", "after": "noeviction"},
    }


def test_config_names_are_lowercased_and_checked() -> None:
    assert rm.config_texts({"MaxMemory": "1gb", "appendonly": True}) == {"maxmemory": "1gb", "appendonly": "yes"}
    for config, message in (
        ({"requirepass": "s3cret"}, "requirepass is a secret"),
        ({"MASTERAUTH": "s3cret"}, "masterauth is a secret"),
        ({"maxmemory*": "1"}, "not a setting name"),
        ({"max memory": "1"}, "not a setting name"),
        ({"": "1"}, "not a setting name"),
        ({"maxmemory": "1gb", "MAXMEMORY": "2gb"}, "names maxmemory twice"),
    ):
        with pytest.raises(MaintenanceError, match=message):
            rm.config_texts(config)


def test_a_secret_value_is_never_in_the_message() -> None:
    with pytest.raises(MaintenanceError) as caught:
        rm.config_texts({"requirepass": "s3cret-value"})
    assert "s3cret-value" not in str(caught.value)


def params(**extra: t.Any) -> dict[str, t.Any]:
    base = {
        **{name: option.get("default") for name, option in connection_argument_spec().items()},
        "db": 3,
        "batch_size": 1000,
        "delete_pattern": [],
        "flush": None,
        "confirm": False,
        "snapshot": False,
        "snapshot_dest": None,
        "snapshot_timeout": 300,
        "config": {},
        "rewrite_config": False,
        "login_host": "127.0.2.3",
        "compose_service": "redis",
        "compose_project_src": None,
        "compose_project_name": None,
        "compose_files": [],
    }
    return {**base, **extra}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"flush": "db"}, "flush=db deletes all keys of database 3; set confirm: true"),
        ({"flush": "all"}, "flush=all deletes all keys of every database of the server; set confirm: true"),
        (
            {"delete_pattern": ["session:*", "*"]},
            "delete_pattern '\\*' has only wildcards, so it deletes every key of database 3",
        ),
        ({"delete_pattern": ["**"]}, "add confirm: true"),
        ({"delete_pattern": ["?*"]}, "delete_pattern '\\?\\*' has only wildcards"),
        ({"delete_pattern": ["[a-z]*"]}, "delete_pattern '\\[a-z\\]\\*' has only wildcards"),
        ({"delete_pattern": [""]}, "empty pattern"),
        ({"batch_size": 0}, "batch_size must be 1 or more, not 0"),
        ({"snapshot": True}, "snapshot needs snapshot_dest"),
        ({"snapshot": True, "snapshot_dest": "backups"}, "snapshot_dest backups is not an absolute path"),
        ({"snapshot": True, "snapshot_dest": "/b", "snapshot_timeout": 0}, "snapshot_timeout must be at least 1"),
        ({"snapshot_dest": "/b"}, "snapshot_dest is set but snapshot is not"),
        ({"config": {"requirepass": "x"}}, "requirepass is a secret"),
    ],
)
def test_bad_inputs_are_refused_before_anything_runs(extra: dict[str, t.Any], message: str) -> None:
    with pytest.raises(MaintenanceError, match=message):
        rm.check_inputs(params(**extra))


def test_confirmed_inputs_pass_as_typed_options() -> None:
    flushing = rm.check_inputs(
        params(flush="all", confirm=True, delete_pattern=["*"], snapshot=True, snapshot_dest="/b")
    )
    assert (flushing.flush, flushing.delete_pattern, flushing.snapshot_dest, flushing.compose_project) == (
        "all",
        ("*",),
        "/b",
        None,
    )
    deleting = rm.check_inputs(
        params(
            delete_pattern=["session:*", "cache:*:page"],
            config={"MaxMemory": "1gb", "appendonly": True},
            compose_project_src="/srv/app",
        )
    )
    assert dict(deleting.config) == {"maxmemory": "1gb", "appendonly": "yes"}
    assert (deleting.flush, deleting.snapshot_dest) == ("", "")
    assert deleting.compose_project == ProjectRef("/srv/app")
    with pytest.raises(AttributeError):
        deleting.batch_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (b"session:42", "session:42"),
        (b"session:\xff\x00", "session:\\xff\\x00"),
        (b"with space 'quote\"\n", "with space 'quote\"\\x0a"),
        ("caf\u00e9".encode(), "caf\u00e9"),
    ],
)
def test_keys_are_shown_printable(key: bytes, shown: str) -> None:
    assert rm.printable(key) == shown


def test_versions_compare_as_numbers() -> None:
    assert rm.version_of("7.0.15") >= (7,)
    assert rm.version_of("6.2.14") < (7,)
    assert rm.version_of("10.0.0") > rm.version_of("7.4.1")


def test_set_names_take_a_suffix(tmp_path: Path) -> None:
    epoch = 1767232800.0
    assert _backup.new_set_name(str(tmp_path), "dump", epoch, ".rdb") == "dump-20260101T020000Z.rdb"
    (tmp_path / "dump-20260101T020000Z.rdb").touch()
    assert _backup.new_set_name(str(tmp_path), "dump", epoch, ".rdb") == "dump-20260101T020000Z-2.rdb"


class HostFiles(rm.Files):
    """The host-mode Files, with an optional damage done to the copy (as a save racing the copy would)."""

    def __init__(self, damage: bool = False) -> None:
        super().__init__(None, "redis", None)
        self.damage = damage

    def copy_out(self, source: str, target: str) -> tuple[str, str]:
        expected, copied = super().copy_out(source, target)
        if self.damage:
            with open(target, "ab") as handle:
                handle.write(b"x")
            copied = hashlib.sha256(Path(target).read_bytes()).hexdigest()
        return expected, copied


def test_a_snapshot_copy_is_private_checked_and_named(tmp_path: Path) -> None:
    source = tmp_path / "server" / "dump.rdb"
    source.parent.mkdir()
    source.write_bytes(RDB_HEAD + os.urandom(4096))
    dest = tmp_path / "copies" / "redis"
    copy = rm.copy_snapshot(HostFiles(), str(source), str(dest))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert copy["sha256"] == digest and copy["size"] == source.stat().st_size
    assert Path(copy["path"]).read_bytes() == source.read_bytes()
    assert Path(copy["path"]).name.startswith("dump-") and copy["path"].endswith(".rdb")
    assert Path(copy["sha256_file"]).read_text() == f"{digest}  {Path(copy['path']).name}\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    for path in (copy["path"], copy["sha256_file"]):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in dest.iterdir()) == sorted([Path(copy["path"]).name, Path(copy["sha256_file"]).name])


@pytest.mark.parametrize(
    ("content", "damage", "message"),
    [
        (b"not an rdb file at all", False, "does not start with the RDB magic REDIS"),
        (RDB_HEAD, True, "has sha256 .*, the server's file"),
    ],
)
def test_a_copy_that_fails_a_check_is_not_kept(tmp_path: Path, content: bytes, damage: bool, message: str) -> None:
    source = tmp_path / "dump.rdb"
    source.write_bytes(content)
    dest = tmp_path / "copies"
    dest.mkdir()
    with pytest.raises(MaintenanceError, match=message):
        rm.copy_snapshot(HostFiles(damage), str(source), str(dest))
    assert list(dest.iterdir()) == []


def test_a_missing_rdb_file_says_to_use_the_compose_service(tmp_path: Path) -> None:
    with pytest.raises(MaintenanceError, match=r"is not on this host.*compose_project_src"):
        rm.copy_snapshot(HostFiles(), str(tmp_path / "absent.rdb"), str(tmp_path / "copies"))
    assert list((tmp_path / "copies").iterdir()) == []


# CONFIG GET answers recorded from Redis 7.0.15 on drill1: sizes in bytes, policies lowercased.
RECORDED = {"maxmemory": "67108864", "maxmemory-policy": "noeviction", "save": "3600 1 300 100 60 10000"}


@pytest.mark.parametrize(
    ("asked", "rewrite", "commands"),
    [
        # 64mb is what the server holds already: only the policy is set.
        (
            {"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"},
            True,
            ["CONFIG SET maxmemory-policy allkeys-lru", "CONFIG REWRITE"],
        ),
        ({"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}, False, ["CONFIG SET maxmemory-policy allkeys-lru"]),
        ({"maxmemory": "128mb", "save": ""}, False, ["CONFIG SET maxmemory 128mb", "CONFIG SET save "]),
        # Nothing differs: no step, and no CONFIG REWRITE either.
        ({"maxmemory": "64MB", "save": "3600 1 300 100 60 10000"}, True, []),
    ],
)
def test_the_settings_plan_on_recorded_readings(asked: dict, rewrite: bool, commands: list) -> None:
    wanted = rm.config_texts(asked)
    current = {name: RECORDED[name] for name in wanted}
    steps = rm.config_steps(wanted, rm.plan_config(wanted, current), rewrite)
    assert [step.command for step in steps] == commands


@pytest.mark.parametrize(
    ("scope", "keys", "commands"),
    [("db", 0, []), ("db", 12, ["FLUSHDB ASYNC"]), ("all", 1, ["FLUSHALL ASYNC"]), ("all", 0, [])],
)
def test_the_flush_plan(scope: str, keys: int, commands: list) -> None:
    assert [step.command for step in rm.flush_steps(scope, keys)] == commands
