"""pg_backup's operation units: the pure planners (unfinished sets, the backup, retention, adoption, the check's
verdict on age) and the module's dispatch, over a backup directory recorded from the lab. fixtures/pg/backup-dest
holds the manifests pg_backup wrote for four backups of lab1's `app` (PostgreSQL 15.18, in the compose service) and
the newest of lab3's `sovd_db`, one dest shared by two databases; the dumps themselves are left out."""

from __future__ import annotations

import contextlib
import shutil
import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _pg_backup_operations as operations
from ansible_collections.stackops.runbooks.plugins.module_utils._backup import BackupError, BackupSet, scan
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import ClientPlace, parse_plain
from ansible_collections.stackops.runbooks.plugins.modules import pg_backup

FIXTURES = Path(__file__).parent / "fixtures" / "pg"
HOUR = 3600.0
DAY = 86400.0
# finished_epoch of the recorded sets of app, newest first.
NEWEST = 1796667018.421939  # app-20261207T181014Z
APP = ["app-20261207T181014Z", "app-20261207T180625Z", "app-20261207T173515Z", "app-20261207T173339Z"]


def options(**given: t.Any) -> operations.Options:
    params = {name: option.get("default") for name, option in pg_backup.argument_spec().items()}
    params.update(db="app", dest="/var/backups/postgres", login_host="127.0.2.1")
    params.update(given)
    return operations.check_inputs(params)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """A copy of the recorded dest, with the unfinished sets two killed runs left (one of app, one of sovd_db)."""
    root = tmp_path / "backups"
    shutil.copytree(FIXTURES / "backup-dest", root)
    (root / "app-20261207T190000Z.partial").mkdir()
    (root / "sovd_db-20261207T190000Z.partial").mkdir()
    return root


def paths(dest: Path, *names: str) -> list[str]:
    return [str(dest / name) for name in names]


class Module:
    """What the operations ask of their AnsibleModule besides the client programs."""

    def __init__(self, check_mode: bool = False) -> None:
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)


# --- the options ------------------------------------------------------------------------------------------------


def test_options_carry_what_the_operations_read() -> None:
    o = options(operation="adopt", src="/var/backups/legacy/../legacy/backup_20240115.sql", login_port=5433)
    assert o.src == "/var/backups/legacy/backup_20240115.sql"
    assert o.server == "127.0.2.1:5433"
    assert options(login_unix_socket="/run/postgresql").server == "/run/postgresql:5432"
    assert options().src == ""
    assert (o.login.db, o.login.port, o.client) == ("postgres", 5433, ClientPlace("postgres", None))
    with pytest.raises(AttributeError):
        o.db = "other"  # type: ignore[misc]


# --- the planners on the recorded dest ----------------------------------------------------------------------------


def test_the_recorded_dest_reads_as_five_verified_sets(dest: Path) -> None:
    sets, partials = scan(str(dest))
    assert [s.name for s in sets if s.database == "app"] == APP
    assert all(s.verified for s in sets)
    assert next(s.finished for s in sets if s.database == "app") == NEWEST
    assert partials == paths(dest, "app-20261207T190000Z.partial", "sovd_db-20261207T190000Z.partial")


def test_only_the_unfinished_sets_of_db_are_removed(dest: Path) -> None:
    _sets, partials = scan(str(dest))
    steps = operations.partial_steps(partials, "app")
    assert [step.data["path"] for step in steps] == paths(dest, "app-20261207T190000Z.partial")
    assert [step.command for step in steps] == [f"remove {dest}/app-20261207T190000Z.partial"]
    assert operations.partial_steps(partials, "shopfront") == []


@pytest.mark.parametrize(
    ("count", "days", "now", "removed"),
    [
        (None, None, NEWEST, []),  # no rule: everything is kept
        (2, None, NEWEST, APP[2:]),
        (1, None, NEWEST + 400 * DAY, APP[1:]),
        (10, None, NEWEST, []),
        # The sets of app finished 18:10:18, 18:06:42, 17:35:18 and 17:33:44: half an hour keeps the two newest.
        (None, 1 / 48, NEWEST, APP[2:]),
        (None, 1 / 48, NEWEST + 400 * DAY, APP[1:]),  # the newest is never removed, however old
        (3, 1 / 48, NEWEST, APP[3:]),  # a set stays while either rule keeps it
    ],
)
def test_retention_removes_only_older_verified_sets_of_db(
    dest: Path, count: int | None, days: float | None, now: float, removed: list[str]
) -> None:
    sets, _partials = scan(str(dest))
    steps = operations.retention_steps(sets, options(retention_count=count, retention_days=days), now)
    assert [step.data["path"] for step in steps] == paths(dest, *removed)
    assert [step.command for step in steps] == [f"remove {path}" for path in paths(dest, *removed)]


def test_retention_never_counts_or_removes_a_damaged_set(dest: Path) -> None:
    (dest / APP[1] / "manifest.json").write_text("{}")
    sets, _partials = scan(str(dest))
    steps = operations.retention_steps(sets, options(retention_count=1), NEWEST)
    assert [step.data["path"] for step in steps] == paths(dest, *APP[2:])


def test_the_backup_steps() -> None:
    work, final = "/b/app-20261207T190000Z.partial", "/b/app-20261207T190000Z"
    steps = operations.backup_steps(options(), work, final)
    assert [step.command for step in steps] == [
        f"pg_dump -Fc of app into {work}, read back in full, every file synced and checksummed",
        f"pg_dumpall --globals-only into {work}/globals.sql",
        f"write {work}/manifest.json and rename {work} to {final}",
    ]
    steps = operations.backup_steps(options(format="directory", jobs=4, globals=False), work, final)
    assert [step.command.split()[:2] for step in steps] == [["pg_dump", "-Fd"], ["write", f"{work}/manifest.json"]]


def test_the_adopt_steps_are_the_plan_users_see() -> None:
    dump = parse_plain((FIXTURES / "pg_dump-15.18-plain.sql").read_bytes().splitlines(keepends=True))
    scratch = "stackops_adopt_20261207190000_4242"
    steps = operations.adopt_steps("/legacy/backup_20240115.sql", dump, scratch, "app-20240115T020000Z")
    assert [step.command for step in steps] == [
        "read /legacy/backup_20240115.sql to its end: a complete pg_dump plain dump of 3 tables",
        f"create database {scratch} and run the dump in it with psql -X -v ON_ERROR_STOP=1 --single-transaction",
        f"compare {scratch}'s row counts and sequences with the dump's COPY data and setval calls",
        f"back {scratch} up as app-20240115T020000Z, verified like every backup, recording "
        "/legacy/backup_20240115.sql's sha256",
        f"drop {scratch}",
    ]


@pytest.mark.parametrize(
    ("now", "max_age", "stale", "warning"),
    [
        (NEWEST + 2 * HOUR, None, None, ""),
        (NEWEST + 2 * HOUR, 26.0, False, ""),
        (NEWEST + 30 * HOUR, 26.0, True, "The newest backup of app (app-20261207T181014Z) is 30.0 hours old, over "),
    ],
)
def test_the_age_of_the_newest_set(dest: Path, now: float, max_age: float | None, stale: bool, warning: str) -> None:
    sets, _partials = scan(str(dest))
    best = next(s for s in sets if s.database == "app")
    fields, said = operations.freshness(best, now, options(max_age_hours=max_age))
    assert fields["newest"] == best.as_dict(now)
    assert fields["age_hours"] == round((now - NEWEST) / HOUR, 4)
    assert fields.get("stale") == stale
    assert said.startswith(warning) if warning else said == ""


def test_no_set_is_stale_only_when_asked() -> None:
    assert operations.freshness(None, NEWEST, options()) == ({}, "")
    fields, said = operations.freshness(None, NEWEST, options(max_age_hours=26))
    assert fields == {"stale": True}
    assert said == "There is no verified backup of app in /var/backups/postgres."


def test_the_summary_lists_db_and_every_unverified_set(dest: Path) -> None:
    (dest / APP[3] / "manifest.json").unlink()
    sets, _partials = scan(str(dest))
    backups, unverified = operations.summary(sets, "sovd_db", NEWEST)
    assert [b["name"] for b in backups] == ["sovd_db-20261207T184043Z"]
    assert unverified == paths(dest, APP[3])


# --- the executors and the module's dispatch ----------------------------------------------------------------------


class Closing:
    def close(self) -> None:
        pass


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client programs and the database answer; nothing of theirs is run."""
    monkeypatch.setattr(operations, "Tools", lambda *_args: object())
    monkeypatch.setattr(operations, "must_connect", lambda *_args, **_kwargs: t.cast(t.Any, Closing()))


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.usefixtures("offline")
def test_check_mode_plans_the_backup_and_retention_and_changes_nothing(dest: Path) -> None:
    before = listing(dest)
    rec = Recorder(check=True)
    operations.backup(Module(check_mode=True), options(dest=str(dest), retention_count=2), rec)
    assert listing(dest) == before
    path = rec.result["path"]
    assert path.startswith(f"{dest}/app-") and not path.endswith(".partial")
    # The planned set counts as the newest: two are kept, so all recorded sets but the newest go.
    assert rec.result["removed"] == paths(dest, *APP[1:])
    assert rec.result["removed_partial"] == []
    assert rec.changed
    assert rec.commands[-3:] == [f"remove {p}" for p in paths(dest, *APP[1:])]


def test_check_fails_on_a_damaged_newest_set_with_the_sets(dest: Path) -> None:
    """The recorded sets hold their manifests only, so the newest one's files are missing."""
    rec = Recorder(check=False)
    with pytest.raises(BackupError) as caught:
        operations.check(Module(), options(dest=str(dest), operation="check"), rec)
    assert str(caught.value) == (
        f"The newest backup {dest}/{APP[0]} is damaged: app.dump is missing; globals.sql is missing."
    )
    assert caught.value.details["changed"] is False
    assert [b["name"] for b in caught.value.details["backups"]] == APP


class Dispatch:
    """What run_module asks of its AnsibleModule."""

    def __init__(self, params: dict[str, t.Any], check_mode: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def test_the_check_operation_through_the_module(tmp_path: Path) -> None:
    params = {name: option.get("default") for name, option in pg_backup.argument_spec().items()}
    params.update(db="app", dest=str(tmp_path), operation="check", max_age_hours=26.0)
    module = Dispatch(params)
    result = pg_backup.run_module(t.cast(t.Any, module))
    assert set(result) == {"changed", "backups", "unverified", "stale", "timings"}  # no plan: it is adopt's
    assert result["changed"] is False
    assert result["stale"] is True
    assert set(result["timings"]) == {"check"}
    assert module.warnings == [f"There is no verified backup of app in {tmp_path}."]


def test_a_file_adopted_before_is_no_change(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The plan is empty and nothing is made when an adopted set of db already records the file's sha256."""
    src = FIXTURES / "pg_dump-15.18-plain.sql"
    _dump, origin = operations.read_plain(str(src))
    earlier = BackupSet("shopfront-1", f"{tmp_path}/shopfront-1", "shopfront", 1.0, 1, None, origin["sha256"])

    class Admin:
        server_version = 150018

    monkeypatch.setattr(operations, "connected", lambda *_args, **_kwargs: contextlib.nullcontext(Admin()))
    monkeypatch.setattr(operations, "rows", lambda *_args: [{"rolname": "app"}])
    monkeypatch.setattr(operations, "live_tables", lambda *_args: None)
    monkeypatch.setattr(operations, "scan", lambda _dest: ([earlier], []))
    rec = Recorder(check=False, audit="plan")
    operations.adopt(Module(), options(db="shopfront", dest=str(tmp_path), operation="adopt", src=str(src)), rec)
    result = rec.outcome(False)
    assert result["changed"] is False
    assert result["plan"] == []
    assert result["path"] == earlier.path
    assert list(tmp_path.iterdir()) == []
