"""Backup sets on disk (names, manifest, checks, retention, the lock) and the pure parts of pg_backup and pg_restore:
the catalog comparison, the roles taken from pg_dumpall's globals, input checks and the restore plan."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import socket
import stat
import threading
import time
import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _backup, _pgdump, _restore_plan
from ansible_collections.stackops.runbooks.plugins.module_utils._backup import BackupError, BackupSet
from ansible_collections.stackops.runbooks.plugins.modules import pg_backup, pg_restore

FIXTURES = Path(__file__).parent / "fixtures" / "pg"
STAMP = "20260101T020000Z"
EPOCH = 1767232800.0  # STAMP
DAY = 86400.0
# A competing run is another process: a child holds the flock, as a concurrent run would (fork keeps it fast).
FORK = multiprocessing.get_context("fork")


def defaults(spec: dict[str, t.Any], **given: t.Any) -> dict[str, t.Any]:
    """Module params as AnsibleModule would fill them: each option's default, then the given values."""
    return {**{name: option.get("default") for name, option in spec.items()}, **given}


def make_set(
    dest: Path, name: str, db: str = "app", finished: float = EPOCH, files: dict[str, bytes] | None = None
) -> Path:
    """A complete set as pg_backup leaves it: files, then a sealed manifest listing them."""
    root = dest / name
    root.mkdir(parents=True)
    for rel, data in (files or {"app.dump": b"custom dump", "globals.sql": b"CREATE ROLE app;\n"}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    entries = _backup.file_entries(str(root))
    manifest = {
        **WRITTEN,
        "name": name,
        "database": db,
        "finished_epoch": finished,
        "size": sum(e["size"] for e in entries),
        "files": entries,
    }
    _backup.write_manifest(str(root), _backup.seal(manifest))
    return root


# The keys pg_backup writes into every manifest besides the ones a test sets.
WRITTEN = {
    "manifest_version": _backup.MANIFEST_VERSION,
    "owner": "app",
    "encoding": "UTF8",
    "collate": "C.UTF-8",
    "ctype": "C.UTF-8",
    "server_version_num": 150018,
    "dump": "app.dump",
    "tables": {},
    "objects": {},
    "sequences": {},
}


# --- names and times --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "expected"),
    [("app", "app"), ("a.b-c_D9", "a.b-c_D9"), ("my db/x", "my_db_x"), ("café", "caf_"), ("", "_")],
)
def test_label(db: str, expected: str) -> None:
    assert _backup.label(db) == expected


def test_stamps_are_utc_and_round_trip() -> None:
    assert _backup.utc_stamp(0) == "19700101T000000Z"
    assert _backup.utc_stamp(EPOCH + 0.9) == STAMP
    assert _backup.parse_stamp(STAMP) == EPOCH
    assert _backup.parse_stamp(_backup.utc_stamp(1764000000)) == 1764000000.0
    with pytest.raises(ValueError, match="does not match format"):
        _backup.parse_stamp("2026-01-01T02:00:00Z")


def test_new_set_name_counts_up_past_sets_and_partials(tmp_path: Path) -> None:
    assert _backup.new_set_name(str(tmp_path), "my db", EPOCH) == f"my_db-{STAMP}"
    (tmp_path / f"app-{STAMP}").mkdir()
    assert _backup.new_set_name(str(tmp_path), "app", EPOCH) == f"app-{STAMP}-2"
    (tmp_path / f"app-{STAMP}-2.partial").mkdir()
    assert _backup.new_set_name(str(tmp_path), "app", EPOCH) == f"app-{STAMP}-3"
    assert _backup.new_set_name(str(tmp_path), "app", EPOCH + 1) == "app-20260101T020001Z"


def test_new_set_name_counts_a_partial_of_the_base_name(tmp_path: Path) -> None:
    (tmp_path / f"app-{STAMP}.partial").mkdir()
    assert _backup.new_set_name(str(tmp_path), "app", EPOCH) == f"app-{STAMP}-2"


# --- files ------------------------------------------------------------------------------------------------------


def test_sha256_file(tmp_path: Path) -> None:
    small = tmp_path / "abc"
    small.write_bytes(b"abc")
    assert _backup.sha256_file(str(small)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big"
    data = bytes(range(256)) * (_backup.CHUNK // 256) + b"tail past one chunk"
    big.write_bytes(data)
    assert _backup.sha256_file(str(big)) == hashlib.sha256(data).hexdigest()


def test_files_under_lists_regular_files_relative_and_sorted(tmp_path: Path) -> None:
    for rel in ("z.sql", "app.dir/toc.dat", "app.dir/3001.dat.gz", "a.dump"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "empty").mkdir()
    assert _backup.files_under(str(tmp_path)) == ["a.dump", "app.dir/3001.dat.gz", "app.dir/toc.dat", "z.sql"]


def test_combined_sha256_is_over_sha256sum_lines_sorted_by_path() -> None:
    entries = [{"path": "d/b.dat", "sha256": "bb" * 32}, {"path": "d/a.dat", "sha256": "aa" * 32}]
    lines = f"{'aa' * 32}  d/a.dat\n{'bb' * 32}  d/b.dat\n"
    assert _backup.combined_sha256(entries) == hashlib.sha256(lines.encode()).hexdigest()
    assert _backup.combined_sha256(entries[::-1]) == _backup.combined_sha256(entries)
    assert _backup.combined_sha256(entries[:1]) != _backup.combined_sha256(entries)


# --- the manifest -----------------------------------------------------------------------------------------------


def test_seal_adds_a_checksum_of_the_canonical_body() -> None:
    sealed = _backup.seal({"b": [2], "a": 1})
    assert sealed["manifest_sha256"] == hashlib.sha256(b'{"a":1,"b":[2]}').hexdigest()
    assert _backup.manifest_checksum(sealed) == sealed["manifest_sha256"]
    assert _backup.manifest_checksum({**sealed, "a": 2}) != sealed["manifest_sha256"]


def test_write_then_read_manifest(tmp_path: Path) -> None:
    manifest = _backup.seal(
        {**WRITTEN, "name": "app-x", "database": "app", "finished_epoch": 1.0, "size": 0, "files": []}
    )
    _backup.write_manifest(str(tmp_path), manifest)
    path = tmp_path / _backup.MANIFEST
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().endswith("}\n")
    assert _backup.read_manifest(str(tmp_path)) == manifest


def test_read_manifest_refuses_a_tampered_manifest(tmp_path: Path) -> None:
    root = make_set(tmp_path, f"app-{STAMP}")
    path = root / _backup.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["database"] = "other"
    path.write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="does not match its own checksum") as caught:
        _backup.read_manifest(str(root))
    assert str(caught.value).startswith(f"{path} ")


def test_read_manifest_refuses_a_set_without_manifest_naming_it(tmp_path: Path) -> None:
    with pytest.raises(BackupError) as caught:
        _backup.read_manifest(str(tmp_path))
    assert str(caught.value).startswith(f"{tmp_path} has no manifest.json: it is not a verified backup")


def test_read_manifest_refuses_a_partial_even_with_a_good_manifest(tmp_path: Path) -> None:
    root = make_set(tmp_path, f"app-{STAMP}.partial")
    with pytest.raises(BackupError, match=r"\.partial is an unfinished backup"):
        _backup.read_manifest(str(root))


def test_read_manifest_refuses_a_partial_named_with_a_trailing_slash(tmp_path: Path) -> None:
    root = make_set(tmp_path, f"app-{STAMP}.partial")
    with pytest.raises(BackupError, match="unfinished backup"):
        _backup.read_manifest(f"{root}/")


def test_read_manifest_refuses_a_manifest_pg_backup_did_not_write(tmp_path: Path) -> None:
    _backup.write_manifest(str(tmp_path), _backup.seal({"manifest_version": 1, "files": []}))
    with pytest.raises(BackupError, match="lacks collate, ctype, database, dump, encoding"):
        _backup.read_manifest(str(tmp_path))


def test_read_manifest_refuses_bad_json(tmp_path: Path) -> None:
    (tmp_path / _backup.MANIFEST).write_text('{"manifest_version": 1,')
    with pytest.raises(BackupError, match=r"manifest\.json cannot be read as JSON \(.*\); the backup is damaged"):
        _backup.read_manifest(str(tmp_path))


def test_read_manifest_refuses_another_version(tmp_path: Path) -> None:
    _backup.write_manifest(str(tmp_path), _backup.seal({"manifest_version": 2, "files": []}))
    with pytest.raises(BackupError, match="has manifest version 2, not 1"):
        _backup.read_manifest(str(tmp_path))


# --- verifying the files of a set -------------------------------------------------------------------------------


@pytest.fixture
def directory_set(tmp_path: Path) -> tuple[Path, dict[str, t.Any]]:
    files = {"app.dir/toc.dat": b"table of contents", "app.dir/3001.dat.gz": b"rows", "globals.sql": b"roles"}
    root = make_set(tmp_path, f"app-{STAMP}", files=files)
    return root, _backup.read_manifest(str(root))


def test_verify_files_accepts_an_intact_set(directory_set: tuple[Path, dict[str, t.Any]]) -> None:
    root, manifest = directory_set
    assert [e["path"] for e in manifest["files"]] == ["app.dir/3001.dat.gz", "app.dir/toc.dat", "globals.sql"]
    assert _backup.verify_files(str(root), manifest) == []


def test_verify_files_finds_a_changed_byte(directory_set: tuple[Path, dict[str, t.Any]]) -> None:
    root, manifest = directory_set
    (root / "app.dir/toc.dat").write_bytes(b"table of contentS")
    digest = hashlib.sha256(b"table of contentS").hexdigest()
    recorded = hashlib.sha256(b"table of contents").hexdigest()
    assert _backup.verify_files(str(root), manifest) == [
        f"app.dir/toc.dat has sha256 {digest}, the manifest says {recorded}"
    ]


def test_verify_files_finds_a_truncated_file(directory_set: tuple[Path, dict[str, t.Any]]) -> None:
    root, manifest = directory_set
    (root / "app.dir/toc.dat").write_bytes(b"table")
    assert _backup.verify_files(str(root), manifest) == ["app.dir/toc.dat is 5 bytes, the manifest says 17"]


def test_verify_files_finds_missing_and_extra_files(directory_set: tuple[Path, dict[str, t.Any]]) -> None:
    root, manifest = directory_set
    (root / "globals.sql").unlink()
    (root / "stray.txt").write_text("x")
    (root / "app.dir/9999.dat").write_text("x")
    assert _backup.verify_files(str(root), manifest) == [
        "globals.sql is missing",
        "app.dir/9999.dat is not in the manifest",
        "stray.txt is not in the manifest",
    ]


# --- the sets in a directory ------------------------------------------------------------------------------------


def test_scan_of_a_missing_directory(tmp_path: Path) -> None:
    assert _backup.scan(str(tmp_path / "none")) == ([], [])


def test_scan_lists_sets_newest_first_and_partials_apart(tmp_path: Path) -> None:
    make_set(tmp_path, "app-20260101T000000Z", finished=EPOCH - 2 * DAY)
    make_set(tmp_path, "app-20260103T000000Z", finished=EPOCH)
    make_set(tmp_path, "other-20260102T000000Z", "other", finished=EPOCH - DAY)
    tampered = make_set(tmp_path, "app-20260104T000000Z", finished=EPOCH + DAY)
    manifest = json.loads((tampered / _backup.MANIFEST).read_text())
    (tampered / _backup.MANIFEST).write_text(json.dumps({**manifest, "size": 1}))
    (tmp_path / "app-20260105T000000Z").mkdir()
    (tmp_path / "app-20260106T000000Z.partial").mkdir()
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "app-20260107T000000Z").write_text("a file, not a set")
    (tmp_path / ".app.lock").write_text("")

    sets, partials = _backup.scan(str(tmp_path))

    assert [s.name for s in sets] == [
        "app-20260103T000000Z",
        "other-20260102T000000Z",
        "app-20260101T000000Z",
        "app-20260105T000000Z",
        "app-20260104T000000Z",
    ]
    assert [(s.database, s.finished, s.verified) for s in sets[:3]] == [
        ("app", EPOCH, True),
        ("other", EPOCH - DAY, True),
        ("app", EPOCH - 2 * DAY, True),
    ]
    assert sets[0].size == len(b"custom dump") + len(b"CREATE ROLE app;\n")
    assert sets[0].path == str(tmp_path / "app-20260103T000000Z")
    no_manifest, broken = sets[3], sets[4]
    assert (broken.verified, broken.database, broken.finished, broken.size) == (False, None, None, 0)
    assert (
        broken.error
        == f"{tampered / _backup.MANIFEST} does not match its own checksum: the manifest was changed or damaged."
    )
    assert no_manifest.error is not None
    assert no_manifest.error.startswith(f"{tmp_path / 'app-20260105T000000Z'} has no manifest.json")
    assert partials == [str(tmp_path / "app-20260106T000000Z.partial")]


def test_backup_set_as_dict() -> None:
    good = BackupSet("app-x", "/b/app-x", "app", EPOCH, 10, None)
    assert good.as_dict(EPOCH + 5400) == {
        "name": "app-x",
        "path": "/b/app-x",
        "database": "app",
        "finished_at": "2026-01-01T02:00:00Z",
        "age_hours": 1.5,
        "size": 10,
        "verified": True,
    }
    bad = BackupSet("app-y", "/b/app-y", None, None, 0, "damaged")
    assert bad.as_dict(EPOCH) == {
        "name": "app-y",
        "path": "/b/app-y",
        "database": None,
        "size": 0,
        "verified": False,
        "error": "damaged",
    }


# --- retention --------------------------------------------------------------------------------------------------


def aged(db: str | None, days: float, error: str | None = None) -> BackupSet:
    name = f"{db}-{_backup.utc_stamp(EPOCH - days * DAY)}"
    return BackupSet(name, f"/b/{name}", None if error else db, EPOCH - days * DAY, 1, error)


# Newest first, as scan returns them: app sets 0..4 days old, with a failed set and another database's among them.
APP = [aged("app", age) for age in range(5)]
FAILED = aged("app", 0.5, error="manifest damaged")
OTHER = [aged("other", 1.5), aged("other", 9)]
SETS = sorted([*APP, FAILED, *OTHER], key=lambda s: s.finished or 0.0, reverse=True)


@pytest.mark.parametrize(
    ("count", "days", "removed"),
    [
        (None, None, []),
        (4, None, [4]),
        (None, 1.5, [2, 3, 4]),
        (4, 1.5, [4]),
        (1, None, [1, 2, 3, 4]),
        (None, 2.5, [3, 4]),
        (1, 2.5, [3, 4]),
        (2, None, [2, 3, 4]),
        (10, None, []),
        (None, 100, []),
    ],
)
def test_expired_keeps_a_set_while_either_rule_keeps_it(
    count: int | None, days: float | None, removed: list[int]
) -> None:
    gone = _backup.expired(SETS, "app", count, days, EPOCH)
    assert gone == [APP[age] for age in removed]
    assert FAILED not in gone
    assert not set(OTHER) & set(gone)


def test_expired_never_removes_the_newest_verified_set() -> None:
    old = [aged("app", 30), aged("app", 31)]
    failed_newest = aged("app", 0, error="no manifest")
    assert _backup.expired([failed_newest, *old], "app", None, 1, EPOCH) == [old[1]]
    assert _backup.expired([failed_newest, *old], "app", 1, None, EPOCH) == [old[1]]
    assert _backup.expired(old[:1], "app", 1, 1, EPOCH) == []


def test_expired_leaves_other_databases_alone() -> None:
    assert _backup.expired(SETS, "other", 1, None, EPOCH) == [OTHER[1]]
    assert _backup.expired(SETS, "third", 1, 1, EPOCH) == []


def test_partials_of_matches_the_label_exactly() -> None:
    partials = [
        f"/b/app-{STAMP}.partial",
        f"/b/app-{STAMP}-2.partial",
        f"/b/app_x-{STAMP}.partial",
        f"/b/app-2-{STAMP}.partial",
        f"/b/my_db-{STAMP}.partial",
    ]
    assert _backup.partials_of(partials, "app") == partials[:2]
    assert _backup.partials_of(partials, "app-2") == [partials[3]]
    assert _backup.partials_of(partials, "my db") == [partials[4]]
    assert _backup.partials_of(partials, "ap") == []


def test_newest() -> None:
    assert _backup.newest(SETS, "app") == APP[0]
    assert _backup.newest(SETS, "other") == OTHER[0]
    assert _backup.newest(SETS, None) == APP[0]
    assert _backup.newest([FAILED], "app") is None
    assert _backup.newest(SETS, "third") is None


# --- the lock of a target ---------------------------------------------------------------------------------------


def hold(dest: str, db: str, ready: t.Any, release: t.Any) -> None:
    with _backup.TargetLock(dest, db, 0):
        ready.set()
        release.wait(10)


def die_holding(dest: str, db: str) -> None:
    _backup.TargetLock(dest, db, 0).__enter__()
    os._exit(0)  # as if killed: no release, the kernel drops the flock


@contextlib.contextmanager
def holder(dest: Path, db: str = "app") -> t.Iterator[tuple[t.Any, t.Any]]:
    """A child process holding the lock until the caller's release event is set."""
    ready, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=hold, args=(str(dest), db, ready, release))
    child.start()
    try:
        assert ready.wait(5), "the child did not take the lock"
        yield child, release
    finally:
        release.set()
        child.join(5)
    assert child.exitcode == 0


def test_lock_held_elsewhere_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with holder(tmp_path) as (child, _release):
        record = json.loads((tmp_path / ".app.lock").read_text())
        assert record["pid"] == child.pid
        with pytest.raises(BackupError) as caught:
            _backup.TargetLock(str(tmp_path), "app", 0).__enter__()
    message = str(caught.value)
    assert message.startswith(
        f"Another backup of this database is running (pid {child.pid} on {socket.gethostname()}, started "
    )
    assert f"lock {tmp_path / '.app.lock'}" in message
    assert "raise lock_timeout" in message


def test_lock_waits_up_to_its_timeout(tmp_path: Path) -> None:
    with holder(tmp_path):
        started = time.monotonic()
        with pytest.raises(BackupError, match="Another backup of this database is running"):
            _backup.TargetLock(str(tmp_path), "app", 0.3).__enter__()
        assert time.monotonic() - started >= 0.3


def test_lock_is_taken_once_the_holder_releases_it(tmp_path: Path) -> None:
    with holder(tmp_path) as (_child, release):
        threading.Timer(0.2, release.set).start()
        with _backup.TargetLock(str(tmp_path), "app", 5) as lock:
            assert lock.stale is None
            assert json.loads((tmp_path / ".app.lock").read_text())["pid"] == os.getpid()


def test_a_clean_release_empties_the_lock_file(tmp_path: Path) -> None:
    with holder(tmp_path):
        assert (tmp_path / ".app.lock").read_text() != ""
    path = tmp_path / ".app.lock"
    assert path.read_text() == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with _backup.TargetLock(str(tmp_path), "app", 0) as lock:
        assert lock.stale is None
    assert path.read_text() == ""
    assert lock.fd is None


def test_a_lock_left_by_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    child = FORK.Process(target=die_holding, args=(str(tmp_path), "app"))
    child.start()
    child.join(5)
    assert child.exitcode == 0
    with _backup.TargetLock(str(tmp_path), "app", 0) as lock:
        assert lock.stale is not None
        assert (lock.stale["pid"], lock.stale["host"]) == (child.pid, socket.gethostname())
        assert lock.stale["started_at"].endswith("Z")
        assert json.loads((tmp_path / ".app.lock").read_text())["pid"] == os.getpid()


def test_a_lock_file_with_garbage_is_kept_as_the_stale_record(tmp_path: Path) -> None:
    (tmp_path / ".app.lock").write_text("not json")
    with _backup.TargetLock(str(tmp_path), "app", 0) as lock:
        assert lock.stale == {"record": "not json"}


def test_another_database_in_the_same_dest_does_not_conflict(tmp_path: Path) -> None:
    with holder(tmp_path, "app"), _backup.TargetLock(str(tmp_path), "other", 0) as lock:
        assert lock.path == str(tmp_path / ".other.lock")
        assert lock.stale is None


# --- _pgdump: versions and the catalog comparison ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 15),
        ("pg_restore (PostgreSQL) 17.2", 17),
        ("pg_dump (PostgreSQL) 18beta1", 18),
        ("pg_dump: command not found", None),
    ],
)
def test_major_of(text: str, major: int | None) -> None:
    assert _pgdump.major_of(text) == major


def catalog_reading(**changes: t.Any) -> dict[str, t.Any]:
    found: dict[str, t.Any] = {
        "tables": {"public.customers": 20000, "public.orders": 51234, "audit.log": 0},
        "objects": {"tables": 3, "indexes": 5, "sequences": 2, "views": 1},
        "sequences": {"public.customers_id_seq": 20000, "public.orders_id_seq": None},
    }
    for key, value in changes.items():
        found[key] = {**found[key], **value}
    return found


def test_compare_identical_is_empty() -> None:
    assert _pgdump.compare(catalog_reading(), catalog_reading()) == []


def test_compare_row_counts_and_tables() -> None:
    found = catalog_reading()
    found["tables"] = {"public.customers": 19999, "public.orders": 51234, "public.extra": 3}
    assert _pgdump.compare(catalog_reading(), found) == [
        "table audit.log (0 rows in the backup) is missing",
        "table public.customers has 19999 rows, the backup had 20000",
        "table public.extra is restored but was not in the backup",
    ]


def test_compare_object_counts() -> None:
    found = catalog_reading()
    found["objects"] = {"tables": 3, "indexes": 4, "sequences": 2, "views": 1, "matviews": 1}
    assert _pgdump.compare(catalog_reading(), found) == [
        "4 indexes restored, the backup had 5",
        "1 matviews restored, the backup had 0",
    ]


def test_compare_sequence_values() -> None:
    found = catalog_reading(sequences={"public.customers_id_seq": 1, "public.orders_id_seq": 7})
    assert _pgdump.compare(catalog_reading(), found) == [
        "sequence public.customers_id_seq is at 1, the backup had it at 20000",
        "sequence public.orders_id_seq is at 7, the backup had it at None",
    ]
    del found["sequences"]["public.customers_id_seq"]
    assert _pgdump.compare(catalog_reading(), found)[0] == (
        "sequence public.customers_id_seq is at None, the backup had it at 20000"
    )


# --- _pgdump: the roles of pg_dumpall --globals-only ------------------------------------------------------------

GLOBALS = (FIXTURES / "globals.sql").read_text()
REPORTING_ALTER = (
    "ALTER ROLE reporting WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;"
)
TEAM_CREATE = 'CREATE ROLE "Report ""Team""";'
TEAM_ALTER = 'ALTER ROLE "Report ""Team""" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION;'


def extended_globals() -> str:
    """The recorded output with two more roles, their memberships (PostgreSQL 15's section) and a setting."""
    roles = "\n".join(["CREATE ROLE reporting;", REPORTING_ALTER, TEAM_CREATE, TEAM_ALTER])
    memberships = "\n".join(
        [
            "--",
            "-- Role memberships",
            "--",
            "",
            "GRANT app TO reporting GRANTED BY postgres;",
            'GRANT app TO "Report ""Team""" GRANTED BY postgres;',
            "GRANT reporting TO app GRANTED BY postgres;",
        ]
    )
    # Where the roles end and the (empty) settings begin; PostgreSQL 15 puts the memberships between.
    section = "\n\n--\n-- User Configurations\n--\n\n"
    assert GLOBALS.count(section) == 1
    setting = "ALTER ROLE reporting SET search_path TO app;\n"
    return GLOBALS.replace(section, f"\n{roles}\n\n{memberships}{section}{setting}")


def test_the_fixture_is_a_complete_dumpall() -> None:
    assert _pgdump.GLOBALS_TRAILER in GLOBALS
    assert "SCRAM-SHA-256$4096:ZmFrZQ==$ZmFrZQ==:ZmFrZQ==" in GLOBALS


def test_role_statements_for_roles_the_server_has_are_none() -> None:
    assert _pgdump.role_statements(GLOBALS, {"app", "postgres"}) == ([], [])
    existing = {"app", "postgres", "reporting", 'Report "Team"'}
    assert _pgdump.role_statements(extended_globals(), existing) == ([], [])


def test_role_statements_create_the_missing_roles_of_the_recording() -> None:
    statements, created = _pgdump.role_statements(GLOBALS, {"postgres"})
    assert created == ["app"]
    assert statements == [
        "CREATE ROLE app;",
        "ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS "
        "PASSWORD 'SCRAM-SHA-256$4096:ZmFrZQ==$ZmFrZQ==:ZmFrZQ==';",
    ]


def test_role_statements_carry_settings_and_memberships_of_missing_roles() -> None:
    statements, created = _pgdump.role_statements(extended_globals(), {"app", "postgres"})
    assert created == ["reporting", 'Report "Team"']
    assert statements == [
        "CREATE ROLE reporting;",
        REPORTING_ALTER,
        TEAM_CREATE,
        TEAM_ALTER,
        "GRANT app TO reporting GRANTED BY postgres;",
        'GRANT app TO "Report ""Team""" GRANTED BY postgres;',
        "ALTER ROLE reporting SET search_path TO app;",
    ]


def test_role_statements_never_carry_psql_commands_sets_or_comments() -> None:
    statements, created = _pgdump.role_statements(extended_globals(), set())
    assert created == ["app", "postgres", "reporting", 'Report "Team"']
    assert len(statements) == 12
    assert all(s.startswith(("CREATE ROLE ", "ALTER ROLE ", "GRANT ")) for s in statements)
    assert not [s for s in statements if s.startswith(("\\", "SET ", "--"))]


# --- the modules' input checks ----------------------------------------------------------------------------------


def backup_params(**given: t.Any) -> dict[str, t.Any]:
    return defaults(pg_backup.argument_spec(), **{"db": "app", "dest": "/var/backups/postgres", **given})


def restore_params(**given: t.Any) -> dict[str, t.Any]:
    return defaults(pg_restore.argument_spec(), **{"db": "app", "src": f"/var/backups/postgres/app-{STAMP}", **given})


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"jobs": 4, "format": "directory"},
        {"retention_count": 1, "retention_days": 0.5, "max_age_hours": 26, "lock_timeout": 30},
        {"operation": "check"},
    ],
)
def test_pg_backup_accepts(given: dict[str, t.Any]) -> None:
    pg_backup.check_inputs(backup_params(**given))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"jobs": 4}, "jobs=4 needs format=directory: pg_dump writes in parallel only into a directory."),
        ({"jobs": 0}, "jobs must be 1 or more, not 0."),
        ({"dest": "backups"}, "dest backups is not an absolute path; give the backup directory's full path."),
        ({"retention_count": -1}, "retention_count must be more than 0, not -1; leave it out to keep every backup."),
        ({"retention_count": 0}, "retention_count must be more than 0, not 0; leave it out to keep every backup."),
        ({"retention_days": -2.5}, "retention_days must be more than 0, not -2.5; leave it out to keep every backup."),
        ({"max_age_hours": 0}, "max_age_hours must be more than 0, not 0; leave it out to keep every backup."),
        ({"lock_timeout": -1}, "lock_timeout must be 0 or more seconds, not -1."),
    ],
)
def test_pg_backup_refuses(given: dict[str, t.Any], message: str) -> None:
    with pytest.raises(BackupError) as caught:
        pg_backup.check_inputs(backup_params(**given))
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"db": "a" * 36},
        {"operation": "cleanup", "src": None, "keep_previous": 0},
        {"operation": "revert", "src": None},
        {"keep_previous": 2, "jobs": 4},
    ],
)
def test_pg_restore_accepts(given: dict[str, t.Any]) -> None:
    _restore_plan.check_inputs(restore_params(**given))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"db": "postgres"}, "login_db is postgres, the database being replaced; a session cannot rename"),
        ({"login_db": "app", "operation": "revert"}, "login_db is app, the database being replaced"),
        ({"keep_previous": -1}, "keep_previous must be 0 or more, not -1."),
        ({"operation": "cleanup"}, "operation=cleanup needs keep_previous: how many earlier copies to keep"),
        ({"src": None}, "src is required to restore"),
        ({"jobs": 0}, "jobs must be 1 or more, not 0."),
        ({"db": "a" * 37}, f"db {'a' * 37} is too long: with _pre_restore_<time> added it would pass"),
        ({"db": "é" * 19}, f"db {'é' * 19} is too long"),
    ],
)
def test_pg_restore_refuses(given: dict[str, t.Any], message: str) -> None:
    with pytest.raises(BackupError) as caught:
        _restore_plan.check_inputs(restore_params(**given))
    assert str(caught.value).startswith(message)


# --- the restore plan -------------------------------------------------------------------------------------------

ROOT = f"/var/backups/postgres/app-{STAMP}"
SCRATCH = "app_restore_20260101101500"
PREVIOUS = "app_pre_restore_20260101101500"
SESSIONS = [
    {"pid": 4242, "usename": "app", "client": "10.0.0.5", "application_name": "web"},
    {"pid": 4243, "usename": "app", "client": None, "application_name": "psql"},
]


def plan(target: _restore_plan.Target, roles: list[str] | None = None, **given: t.Any) -> list[str]:
    o = _restore_plan.check_inputs(restore_params(**given))
    return [step.command for step in _restore_plan.plan_restore(o, ROOT, target, SCRATCH, PREVIOUS, roles or [])]


def test_plan_for_a_new_database() -> None:
    assert plan(_restore_plan.Target(exists=False)) == [
        f"verify {ROOT} against its manifest",
        f"create database {SCRATCH} and restore the dump into it with pg_restore --exit-on-error",
        f"ANALYZE {SCRATCH} and compare its row counts, objects and sequences with the manifest",
        "check the sentinel row",
        f"reset {SCRATCH}'s statistics counters: they count the restore's reads, not the site's",
        f"rename {SCRATCH} to app",
    ]


def test_plan_of_a_drill_replaces_nothing() -> None:
    target = _restore_plan.Target(exists=True, tables=["public.customers"], sessions=SESSIONS)
    steps = plan(target, operation="drill", amcheck=True, smoke_queries=[{"name": "customers", "query": "SELECT 1"}])
    assert steps[-2:] == [
        "check the sentinel row, amcheck, smoke query customers",
        f"drop {SCRATCH}: a drill replaces nothing",
    ]
    assert not any("rename" in step for step in steps)


def test_plan_replacing_a_database() -> None:
    target = _restore_plan.Target(exists=True, tables=["public.customers"], sessions=SESSIONS)
    steps = plan(target, ["reporting", 'Report "Team"'], force=True, terminate_connections=True, keep_previous=1)
    assert steps == [
        f"verify {ROOT} against its manifest",
        'create the missing roles reporting, Report "Team"',
        f"create database {SCRATCH} and restore the dump into it with pg_restore --exit-on-error",
        f"ANALYZE {SCRATCH} and compare its row counts, objects and sequences with the manifest",
        "check the sentinel row",
        f"reset {SCRATCH}'s statistics counters: they count the restore's reads, not the site's",
        "end the 2 sessions connected to app",
        f"in one transaction, rename app to {PREVIOUS} and {SCRATCH} to app",
        "drop the earlier copies of app beyond the newest 1",
    ]


def test_plan_an_empty_existing_database_needs_no_force() -> None:
    assert (
        plan(_restore_plan.Target(exists=True))[-1]
        == f"in one transaction, rename app to {PREVIOUS} and {SCRATCH} to app"
    )


def test_plan_refuses_a_database_with_tables_without_force() -> None:
    tables = [f"public.t{n}" for n in range(1, 8)]
    with pytest.raises(BackupError) as caught:
        plan(_restore_plan.Target(exists=True, tables=tables, sessions=SESSIONS))
    assert str(caught.value) == (
        "Database app holds 7 tables (public.t1, public.t2, public.t3, public.t4, public.t5 ...). Replacing it needs "
        f"force=true; it would be kept as {PREVIOUS}. Nothing was changed."
    )


def test_plan_refuses_connected_sessions_without_terminate_connections() -> None:
    with pytest.raises(BackupError) as caught:
        plan(_restore_plan.Target(exists=True, tables=["public.t"], sessions=SESSIONS), force=True)
    assert str(caught.value) == (
        "2 sessions are connected to app: pid 4242 app@10.0.0.5 (web), pid 4243 app@local (psql). Stop the "
        "application first (the restore playbook does), or set terminate_connections=true. Nothing was changed."
    )
