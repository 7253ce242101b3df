"""Plain-SQL dumps made by hand (`pg_dump db > backup_YYYYMMDD.sql`): what pg_backup's adopt and pg_restore read
from them, the rules that refuse one (truncated, garbage, another database, a newer server), and the lines a
restore holds back. Fixtures are real pg_dump 15.18 output of a small database `shopfront` (owner `app`), plain and
with `-C --clean`, and pg_dump 17.12 output of the same database (owner `sovd_user`)."""

from __future__ import annotations

import gzip
import hashlib
import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _pg_backup_operations as operations
from ansible_collections.stackops.runbooks.plugins.module_utils import _pgdump, _restore_plan
from ansible_collections.stackops.runbooks.plugins.module_utils._backup import BackupError, BackupSet
from ansible_collections.stackops.runbooks.plugins.modules import pg_backup, pg_restore

FIXTURES = Path(__file__).parent / "fixtures" / "pg"
PLAIN = FIXTURES / "pg_dump-15.18-plain.sql"
CREATE = FIXTURES / "pg_dump-15.18-plain-create-clean.sql"
PLAIN_17 = FIXTURES / "pg_dump-17.12-plain.sql"  # the same database on PostgreSQL 17, owned by sovd_user
SHOPFRONT_TABLES = ["public.empty", "shop.Odd Name", "shop.items"]


def parse(path: Path) -> _pgdump.PlainDump:
    return _pgdump.parse_plain(path.read_bytes().splitlines(keepends=True))


def text(lines: str) -> _pgdump.PlainDump:
    return _pgdump.parse_plain(lines.encode().splitlines(keepends=True))


def test_a_plain_dump_declares_its_versions_tables_rows_sequences_and_roles() -> None:
    dump = parse(PLAIN)
    assert _pgdump.plain_problems(dump) == []
    assert (dump.server_version, dump.dump_version) == ("15.18 (Debian 15.18-0+deb12u1)",) * 2
    assert (dump.server_major, dump.dump_major) == (15, 15)
    assert sorted(dump.tables) == SHOPFRONT_TABLES
    assert dump.rows == {"public.empty": 0, "shop.Odd Name": 2, "shop.items": 4}
    # A sequence never called restores with no last_value: None, as pg_sequences shows it.
    assert dump.sequences == {"shop.items_id_seq": 4, "shop.unused": None}
    assert dump.roles == ["app"]
    assert (dump.database, dump.owner, dump.encoding, dump.collate, dump.held_back) == (None, None, "UTF8", None, 0)


def test_a_dump_made_with_create_names_its_database_owner_and_locale() -> None:
    dump = parse(CREATE)
    assert _pgdump.plain_problems(dump) == []
    assert (dump.database, dump.owner, dump.encoding, dump.collate, dump.ctype) == (
        "shopfront",
        "app",
        "UTF8",
        "C.UTF-8",
        "C.UTF-8",
    )
    # DROP DATABASE, CREATE DATABASE, ALTER DATABASE ... OWNER and \connect.
    assert dump.held_back == 4
    assert dump.rows == parse(PLAIN).rows


def test_a_restore_holds_back_the_database_level_lines_and_nothing_else() -> None:
    lines = CREATE.read_bytes().splitlines(keepends=True)
    kept = list(_pgdump.restorable(lines))
    gone = [line.decode() for line in lines if line not in kept]
    assert [g.split()[0] + " " + g.split()[1] for g in gone] == [
        "DROP DATABASE",
        "CREATE DATABASE",
        "ALTER DATABASE",
        "\\connect shopfront",
    ]
    assert len(kept) == len(lines) - 4
    # What the plain dump (no -C) holds is fed whole.
    plain = PLAIN.read_bytes().splitlines(keepends=True)
    assert list(_pgdump.restorable(plain)) == plain


def test_copy_data_is_never_read_as_a_statement() -> None:
    dump = (
        "--\n-- PostgreSQL database dump\n--\n"
        "CREATE TABLE public.notes (note text);\n"
        "COPY public.notes (note) FROM stdin;\nCREATE DATABASE evil;\nALTER DATABASE app OWNER TO mallory;\n\\.\n"
        "--\n-- PostgreSQL database dump complete\n--\n"
    )
    found = text(dump)
    assert (found.rows, found.database, found.owner, found.held_back) == ({"public.notes": 2}, None, None, 0)
    lines = dump.encode().splitlines(keepends=True)
    assert list(_pgdump.restorable(lines)) == lines


@pytest.mark.parametrize(
    ("cut", "problem"),
    [
        (lambda d: d[: d.index("COPY shop.items") + 60], "it ends inside the data of table shop.items"),
        (lambda d: d[: d.index("-- PostgreSQL database dump complete")], "lacks the closing line"),
        (lambda d: d + "DROP TABLE shop.items;\n", "goes on after pg_dump's closing line ('DROP TABLE shop.items;')"),
        (lambda d: "hello, this is not a dump\n" * 50, "does not start like a pg_dump plain-SQL dump"),
        (
            lambda d: d.replace("-- PostgreSQL database dump\n", "-- PostgreSQL database cluster dump\n", 1),
            "pg_dumpall",
        ),
    ],
    ids=["mid-copy", "no-trailer", "appended", "garbage", "cluster"],
)
def test_a_file_that_is_not_a_complete_plain_dump_is_refused(cut: t.Callable[[str], str], problem: str) -> None:
    problems = _pgdump.plain_problems(text(cut(PLAIN.read_text())))
    assert problems and problem in "; ".join(problems), problems


def test_the_unrestrict_line_after_the_trailer_is_part_of_a_complete_dump() -> None:
    assert PLAIN.read_text().rstrip().splitlines()[-1].startswith("\\unrestrict ")
    assert parse(PLAIN).complete and parse(PLAIN).after_trailer is None


def test_read_plain_reads_gzip_and_checksums_the_file_as_it_is(tmp_path: Path) -> None:
    packed = tmp_path / "backup_20240115.sql.gz"
    packed.write_bytes(gzip.compress(PLAIN.read_bytes()))
    dump, origin = _pgdump.read_plain(str(packed))
    assert dump.rows == parse(PLAIN).rows
    assert origin["compressed"] and origin["size"] == packed.stat().st_size
    assert origin["sha256"] == hashlib.sha256(packed.read_bytes()).hexdigest()
    dump, origin = _pgdump.read_plain(str(PLAIN))
    assert not origin["compressed"] and origin["size"] == PLAIN.stat().st_size


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda d: gzip.compress(d)[:-200], "cannot be read to its end"),
        (lambda d: gzip.compress(d[: len(d) // 2]), "it was cut short"),
        (lambda d: d[: len(d) // 2], "it was cut short"),
        (lambda d: b"PGDMP\x01\x0e\x00" + bytes(100), "custom-format archive without a pg_backup manifest"),
        (lambda d: bytes(range(256)) * 10, "does not start like a pg_dump plain-SQL dump"),
        (lambda d: b"", "does not start like a pg_dump plain-SQL dump"),
    ],
    ids=["truncated-gzip", "gzip-of-a-truncated-dump", "truncated", "custom-format", "garbage", "empty"],
)
def test_read_plain_names_the_file_and_the_fix(
    tmp_path: Path, content: t.Callable[[bytes], bytes], message: str
) -> None:
    path = tmp_path / "backup_20240115.sql"
    path.write_bytes(content(PLAIN.read_bytes()))
    with pytest.raises(BackupError) as refused:
        _pgdump.read_plain(str(path))
    assert str(path) in str(refused.value) and message in str(refused.value)
    assert "nothing was changed" in str(refused.value)


def test_read_plain_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="is not a file on this host"):
        _pgdump.read_plain(str(tmp_path / "nope.sql"))


@pytest.mark.parametrize(
    ("server", "dump", "target", "refused"),
    [
        (15, 15, 15, False),
        (15, 15, 17, False),  # 15 -> 17: upward is what pg_dump is made for
        (17, 17, 15, True),
        (15, 17, 15, True),  # pg_dump 17 of a 15 server: its output is for 17 and later
        (16, 16, 17, False),
        (None, None, 15, False),  # a dump that does not say: psql will tell
    ],
)
def test_version_refusal(server: int | None, dump: int | None, target: int, refused: bool) -> None:
    why = _pgdump.version_refusal("/b/app.sql", server, dump, target, "127.0.2.1:5432")
    assert bool(why) is refused
    if refused:
        assert f"runs PostgreSQL {target}" in why and "onto a server running PostgreSQL 17 or later" in why
        assert "/b/app.sql" in why and "nothing was changed" in why


def test_a_postgresql_17_dump_is_refused_on_15_and_says_why() -> None:
    dump = parse(PLAIN_17)
    assert _pgdump.plain_problems(dump) == [] and dump.rows == parse(PLAIN).rows
    assert (dump.server_major, dump.dump_major, dump.roles) == (17, 17, ["sovd_user"])
    # What PostgreSQL 15 would reject: pg_dump 17 sets a parameter 15 does not have.
    assert "SET transaction_timeout = 0;" in PLAIN_17.read_text()
    assert _pgdump.version_refusal(str(PLAIN_17), 17, 17, 15, "lab1")
    assert not _pgdump.version_refusal(str(PLAIN_17), 17, 17, 17, "lab3")


def test_version_refusal_names_both_versions() -> None:
    why = _pgdump.version_refusal("/b/app-20261206T000000Z", 17, 17, 15, "127.0.2.1:5432")
    assert why.startswith(
        "/b/app-20261206T000000Z was dumped from PostgreSQL 17 by pg_dump 17; the target server 127.0.2.1:5432 runs "
        "PostgreSQL 15, an older major version"
    )


def test_client_refusal() -> None:
    assert _pgdump.client_refusal("psql", 17, 15, "/b.sql", "this host") == ""
    assert _pgdump.client_refusal("psql", 15, None, "/b.sql", "this host") == ""
    why = _pgdump.client_refusal("pg_restore", 15, 17, "/b", "service postgres")
    assert why.startswith("pg_restore 15 in service postgres cannot read /b, which pg_dump 17 wrote")


@pytest.mark.parametrize(
    ("dump", "expected", "live", "refused"),
    [
        (PLAIN, "shopfront", None, ""),  # no live database: nothing to compare with, nothing at risk
        (PLAIN, "app", [], ""),  # an empty live database
        (PLAIN, "app", ["public.empty", "app.customers"], ""),  # one table in common
        (PLAIN, "app", ["app.customers", "app.orders"], "shares no table with database app"),
        (CREATE, "shopfront", ["app.customers"], ""),  # -C names it: the name decides
        (CREATE, "app", None, "is a dump of database shopfront (its CREATE DATABASE line), not of app"),
    ],
)
def test_database_refusal(dump: Path, expected: str, live: list[str] | None, refused: str) -> None:
    why = _pgdump.database_refusal(str(dump), parse(dump), expected, live)
    assert (refused in why) if refused else why == ""
    if refused:
        assert "accept_other_database=true" in why and str(dump) in why


def test_compare_a_trial_restore_with_what_a_plain_dump_holds() -> None:
    expected = _pgdump.expected_of(parse(PLAIN))
    found = {
        "tables": {"public.empty": 0, "shop.Odd Name": 2, "shop.items": 4, "public.extra": 9},
        "objects": {"tables": 4, "indexes": 1},
        "sequences": {"shop.items_id_seq": 4, "shop.unused": None},
    }
    # A table without a COPY block (data as INSERTs) is not held against it; objects are not compared.
    assert _pgdump.compare(expected, found) == []
    found["tables"]["shop.items"] = 3
    found["sequences"]["shop.unused"] = 1
    assert _pgdump.compare(expected, found) == [
        "table shop.items has 3 rows, the backup had 4",
        "sequence shop.unused is at 1, the backup had it at None",
    ]


def test_database_options_prefer_the_dump_then_the_live_database() -> None:
    live = {"owner": "sovd_user", "encoding": "UTF8", "collate": "en_US.UTF-8", "ctype": "en_US.UTF-8"}
    assert _pgdump.database_options(parse(PLAIN), live) == live
    assert _pgdump.database_options(parse(CREATE), live) == {
        "owner": "app",
        "encoding": "UTF8",
        "collate": "C.UTF-8",
        "ctype": "C.UTF-8",
    }
    assert _pgdump.database_options(parse(PLAIN), {}) == {
        "owner": None,
        "encoding": "UTF8",
        "collate": None,
        "ctype": None,
    }


# --- pg_backup operation=adopt ------------------------------------------------------------------------------------


def adopt_params(**given: t.Any) -> dict[str, t.Any]:
    spec = pg_backup.argument_spec()
    return {
        **{name: option.get("default") for name, option in spec.items()},
        "db": "app",
        "dest": "/var/backups/postgres",
        "operation": "adopt",
        "src": "/var/backups/legacy/backup_20240115.sql.gz",
        "login_host": "127.0.2.1",
        "login_port": 5432,
        **given,
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"src": None}, "operation=adopt needs src"),
        ({"src": "backup.sql"}, "operation=adopt needs src, the full path"),
        ({"sentinel": True}, "sentinel=true has no meaning with operation=adopt"),
        ({"operation": "backup"}, "src is for operation=adopt only"),
    ],
)
def test_adopt_inputs_refused(given: dict[str, t.Any], message: str) -> None:
    with pytest.raises(BackupError, match=message):
        pg_backup.check_inputs(adopt_params(**given))


def test_adopt_inputs_accepted() -> None:
    pg_backup.check_inputs(adopt_params())


@pytest.mark.parametrize(
    ("given", "server", "live", "roles", "refused"),
    [
        ({"db": "shopfront"}, 15, None, {"app"}, ""),
        ({"db": "shopfront"}, 17, ["shop.items"], {"app"}, ""),
        ({"db": "shopfront"}, 14, None, {"app"}, "runs PostgreSQL 14"),
        ({"db": "app"}, 15, ["app.customers"], {"app"}, "shares no table with database app"),
        ({"db": "app", "accept_other_database": True}, 15, ["app.customers"], {"app"}, ""),
        ({"db": "shopfront"}, 15, None, {"postgres"}, "The roles app, which"),
    ],
)
def test_adopt_refusal(
    given: dict[str, t.Any], server: int, live: list[str] | None, roles: set[str], refused: str
) -> None:
    why = operations.refusal(
        str(PLAIN), parse(PLAIN), pg_backup.check_inputs(adopt_params(**given)), server, live, roles
    )
    assert (refused in why) if refused else why == ""


def test_a_file_is_adopted_once() -> None:
    sets = [
        BackupSet("app-1", "/d/app-1", "app", 2.0, 1, None, None),
        BackupSet("app-2", "/d/app-2", "app", 1.0, 1, None, "ab12"),
        BackupSet("x-2", "/d/x-2", "x", 1.0, 1, None, "cd34"),
        BackupSet("app-3", "/d/app-3", None, None, 0, "damaged", None),
    ]
    assert operations.adopted(sets, "app", "ab12") == sets[1]
    assert operations.adopted(sets, "app", "cd34") is None  # of another database
    assert operations.adopted(sets, "app", "ef56") is None


# --- pg_restore of a plain dump -----------------------------------------------------------------------------------


def test_a_plain_dump_in_src_is_told_from_a_backup_set(tmp_path: Path) -> None:
    legacy = tmp_path / "backup_20240115.sql"
    legacy.write_text("-- anything")
    backup = tmp_path / "app-20260101T020000Z"
    backup.mkdir()
    (backup / "manifest.json").write_text("{}")
    (backup / "globals.sql").write_text("")
    assert _restore_plan.plain_source(str(legacy), None) == str(legacy)
    assert _restore_plan.plain_source(str(backup / "globals.sql"), None) is None
    assert _restore_plan.plain_source(str(backup), None) is None
    assert _restore_plan.plain_source(str(tmp_path), "latest") is None


def test_a_plain_dump_restores_with_psql_in_the_plan() -> None:
    params = {
        **{name: option.get("default") for name, option in pg_restore.argument_spec().items()},
        "db": "app",
        "src": str(PLAIN),
        "force": True,
    }
    target = _restore_plan.Target(exists=True, tables=["shop.items"])
    o = _restore_plan.check_inputs(params)
    plan = _restore_plan.plan_restore(o, str(PLAIN), target, "app_restore_1", "app_pre_restore_1", [], plain=True)
    steps = [step.command for step in plan]
    assert steps[:3] == [
        f"read {PLAIN} to its end: a complete pg_dump plain dump",
        "create database app_restore_1 and run the dump in it with psql -X -v ON_ERROR_STOP=1 --single-transaction",
        "ANALYZE app_restore_1 and compare its row counts and sequences with the dump's COPY data and setval calls",
    ]
    assert steps[-1] == "in one transaction, rename app to app_pre_restore_1 and app_restore_1 to app"


def test_the_plain_manifest_carries_what_restore_reads() -> None:
    dump = parse(PLAIN)
    target = _restore_plan.Target(
        exists=True, settings={"owner": "app", "encoding": "UTF8", "collate": "C", "ctype": "C"}
    )
    manifest = _restore_plan.plain_manifest(str(PLAIN), dump, {"sha256": "ab", "path": str(PLAIN)}, target)
    assert _restore_plan.majors(manifest) == (15, 15)
    assert (manifest["owner"], manifest["collate"], manifest["objects"], manifest["sentinel"]) == (
        "app",
        "C",
        None,
        None,
    )
    assert manifest["tables"] == dump.rows and manifest["plain"]["roles"] == ["app"]
