"""pg_restore's operation units: the pure planners of module_utils/_restore_plan.py (options, restore and drill
phases, revert, cleanup) and the executors of _restore.py run against a stand-in admin session, in check mode and
for real, through one Recorder."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _restore, _restore_plan
from ansible_collections.stackops.runbooks.plugins.module_utils._backup import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder
from ansible_collections.stackops.runbooks.plugins.module_utils._pgdump import ClientPlace
from ansible_collections.stackops.runbooks.plugins.module_utils._restore_plan import Target
from ansible_collections.stackops.runbooks.plugins.modules import pg_restore

ROOT = "/var/backups/postgres/app-20260101T020000Z"
SCRATCH, PREVIOUS = "app_restore_20260101101500", "app_pre_restore_20260101101500"
# pg_database's datname column as a restored, reverted and drilled server has it.
DATABASES = [
    "postgres",
    "template0",
    "template1",
    "app",
    "app_pre_restore_20260101101500",
    "app_pre_restore_20260102101500",
    "app_pre_restore_20260103101500",
    "app_reverted_20260102111500",
    "app_reverted_20260103111500",
    "app_pre_restore_latest",  # not a time: no copy of this module's
    "app2_pre_restore_20260103101500",  # another database's copy
    "app_restore_20260104101500",
]
SESSION = {"pid": 4242, "usename": "app", "client": "10.0.0.5", "application_name": "web"}


def options(**given: t.Any) -> _restore_plan.Options:
    spec = pg_restore.argument_spec()
    params = {name: option.get("default") for name, option in spec.items()}
    return _restore_plan.check_inputs({**params, "db": "app", "src": ROOT, **given})


def phases(steps: list[t.Any]) -> list[str]:
    return [step.data.get("phase", "") for step in steps]


# --- options --------------------------------------------------------------------------------------------------------


def test_the_options_are_frozen_and_carry_the_login_and_where_the_client_programs_run() -> None:
    o = options(jobs=4, smoke_queries=[{"name": "one", "query": "SELECT 1"}], login_password="secret")
    assert (o.db, o.jobs, o.smoke_queries, o.drill) == ("app", 4, ({"name": "one", "query": "SELECT 1"},), False)
    assert o.login.password == "secret" and o.client == ClientPlace("postgres", None)
    assert "secret" not in repr(o)
    with pytest.raises(AttributeError):
        o.db = "other"  # type: ignore[misc]


# --- restore and drill ----------------------------------------------------------------------------------------------


def test_each_step_of_a_restore_names_the_phase_that_carries_it_out() -> None:
    target = Target(exists=True, tables=["public.customers"], sessions=[SESSION])
    o = options(force=True, terminate_connections=True, keep_previous=1)
    statements = ["CREATE ROLE reporting;", "ALTER ROLE reporting WITH NOLOGIN;"]
    steps = _restore_plan.plan_restore(o, ROOT, target, SCRATCH, PREVIOUS, ["reporting"], statements=statements)
    assert phases(steps) == ["", "roles", "load", "check", "check", "check", "swap", "swap", "prune"]
    assert steps[1].data["sql"] == tuple(statements)


def test_the_roles_statements_run_whenever_there_are_any() -> None:
    """As before the operation units: globals.sql lines for roles this server lacks are run, even when none of them
    creates a role (pg_dumpall writes CREATE ROLE before any ALTER ROLE or GRANT of it, so this does not happen)."""
    steps = _restore_plan.plan_restore(options(), ROOT, Target(exists=False), SCRATCH, PREVIOUS, [], statements=["x"])
    assert phases(steps)[1] == "roles" and steps[1].data["sql"] == ("x",)


def test_a_drill_plans_no_swap_and_drops_what_it_restored_even_over_a_connected_database() -> None:
    target = Target(exists=True, tables=["public.customers"], sessions=[SESSION])
    steps = _restore_plan.plan_restore(options(operation="drill", keep_previous=2), ROOT, target, SCRATCH, PREVIOUS, [])
    assert phases(steps) == ["", "load", "check", "check", "drop"]


def test_a_plain_dump_is_read_not_verified_and_creates_no_roles() -> None:
    steps = _restore_plan.plan_restore(options(), ROOT, Target(exists=False), SCRATCH, PREVIOUS, [], plain=True)
    assert phases(steps) == ["", "load", "check", "check", "check", "swap"]
    assert steps[-1].command == f"rename {SCRATCH} to app"


# --- revert and cleanup ---------------------------------------------------------------------------------------------


def test_the_earlier_copies_are_this_database_s_newest_first() -> None:
    assert _restore_plan.earlier_copies("app", DATABASES) == [
        "app_pre_restore_20260103101500",
        "app_pre_restore_20260102101500",
        "app_pre_restore_20260101101500",
    ]
    assert _restore_plan.earlier_copies("app", DATABASES, "reverted") == [
        "app_reverted_20260103111500",
        "app_reverted_20260102111500",
    ]


@pytest.mark.parametrize(
    ("keep", "gone"),
    [
        (
            0,
            [
                *(f"app_pre_restore_2026010{d}101500" for d in (3, 2, 1)),
                *(f"app_reverted_2026010{d}111500" for d in (3, 2)),
            ],
        ),
        (1, ["app_pre_restore_20260102101500", "app_pre_restore_20260101101500", "app_reverted_20260102111500"]),
        (3, []),
    ],
)
def test_cleanup_plans_a_drop_of_each_copy_beyond_the_newest_kept(keep: int, gone: list[str]) -> None:
    steps = _restore_plan.plan_cleanup(_restore_plan.beyond_kept("app", DATABASES, keep))
    assert [step.command for step in steps] == [f"drop database {name}" for name in gone]


def test_revert_puts_back_the_newest_copy_and_refuses_when_there_is_none() -> None:
    assert _restore_plan.copy_to_revert("app", DATABASES) == "app_pre_restore_20260103101500"
    with pytest.raises(BackupError, match=r"^There is no earlier copy of app2 \(app2_pre_restore_<time>\) to put"):
        _restore_plan.copy_to_revert("app2", ["app2", "app2_pre_restore_latest"])
    copy, aside = "app_pre_restore_20260103101500", "app_reverted_20260104101500"
    steps = _restore_plan.plan_revert(options(operation="revert"), copy, Target(exists=True), aside)
    assert [step.command for step in steps] == [f"in one transaction, rename app to {aside} and {copy} to app"]


def test_revert_refuses_connected_sessions_unless_it_may_end_them() -> None:
    target = Target(exists=True, sessions=[SESSION])
    with pytest.raises(BackupError) as caught:
        _restore_plan.plan_revert(options(operation="revert"), "app_pre_restore_1", target, "app_reverted_1")
    assert str(caught.value) == (
        "1 sessions are connected to app; stop the application first, or set terminate_connections=true. Nothing "
        "was changed."
    )
    assert _restore_plan.plan_revert(options(operation="revert", terminate_connections=True), "c", target, "a")


# --- the executors, against a stand-in admin session ----------------------------------------------------------------


class Session:
    """The admin session's side of Restore, recording what it was asked to do."""

    def __init__(self, o: _restore_plan.Options, admin: t.Any, fail: str = "") -> None:
        self.o, self.db, self.fail = o, o.db, fail
        self.did: list[str] = []

    def databases(self) -> list[str]:
        return DATABASES

    def lock(self) -> None:
        self.did.append("lock")

    def drop_scratches(self) -> list[str]:
        self.did.append("drop_scratches")
        return ["app_restore_20260104101500"]

    def in_transaction(self, what: str, statements: list[str]) -> None:
        self.did.append(f"roles {statements}")

    def create(self, scratch: str, manifest: dict[str, t.Any]) -> None:
        self.did.append(f"create {scratch}")

    def load(self, tools: t.Any, root: str, manifest: dict[str, t.Any], scratch: str) -> None:
        self.act("load")

    def check(self, scratch: str, manifest: dict[str, t.Any], proofs: list[t.Any]) -> tuple[dict[str, t.Any], dict]:
        self.act("check")
        return {"analyze": True}, {"app.customers": 3}

    def swap(self, scratch: str, previous: str | None) -> None:
        self.act(f"swap {scratch} {previous}")

    def drop(self, name: str) -> None:
        self.did.append(f"drop {name}")

    def prune(self, keep: int) -> list[str]:
        self.did.append(f"prune {keep}")
        return ["app_pre_restore_20260101101500"]

    def act(self, what: str) -> None:
        if self.fail and what.startswith(self.fail):
            raise BackupError(f"{what} refused")
        self.did.append(what)


def carry_out(o: _restore_plan.Options, target: Target, run: Session | None = None) -> tuple[Session, Recorder]:
    run = run or Session(o, None)
    statements = ["CREATE ROLE reporting;"]
    steps = _restore_plan.plan_restore(o, ROOT, target, SCRATCH, PREVIOUS, ["reporting"], statements=statements)
    rec = Recorder(check=False, audit="plan")
    rec.result.update(checks={"files": "ok"}, proofs=[], roles_created=["reporting"])
    assert rec.plan(steps)
    previous = PREVIOUS if target.exists else None
    manifest = {"name": "app-20260101T020000Z"}
    laps = _restore.Laps()
    _restore.carry_out(t.cast(t.Any, run), steps, t.cast(t.Any, None), (ROOT, manifest), (SCRATCH, previous), rec, laps)
    return run, rec


def test_a_restore_carries_out_its_plan_s_phases_in_order() -> None:
    run, rec = carry_out(options(force=True, keep_previous=1), Target(exists=True, tables=["public.customers"]))
    assert run.did == [
        "lock",
        "drop_scratches",
        "roles ['CREATE ROLE reporting;']",
        f"create {SCRATCH}",
        "load",
        "check",
        f"swap {SCRATCH} {PREVIOUS}",
        "prune 1",
    ]
    assert rec.result["dropped"] == ["app_restore_20260104101500", "app_pre_restore_20260101101500"]
    assert set(rec.result["elapsed"]) == {"restore", "check", "swap", "total", "cleanup"}
    assert rec.result["row_counts"] == {"app.customers": 3} and rec.result["checks"]["analyze"] is True


def test_a_drill_carries_out_no_swap_and_drops_what_it_restored() -> None:
    run, rec = carry_out(options(operation="drill", keep_previous=1), Target(exists=False))
    assert run.did[-3:] == ["load", "check", f"drop {SCRATCH}"]
    assert rec.result["dropped"] == ["app_restore_20260104101500", SCRATCH]
    assert "swap" not in rec.result["elapsed"]


@pytest.mark.parametrize("fail", ["load", "check", "swap"])
def test_a_failure_after_the_new_database_exists_drops_it_and_says_the_target_is_as_it_was(fail: str) -> None:
    run = Session(options(), None, fail)
    with pytest.raises(BackupError) as caught:
        carry_out(options(), Target(exists=False), run)
    assert run.did[-1] == f"drop {SCRATCH}"
    assert str(caught.value).startswith(
        f"The restore of {ROOT} failed and app is as it was ({SCRATCH} was dropped): {fail}"
    )
    assert caught.value.details["dropped"] == ["app_restore_20260104101500", SCRATCH]


@pytest.mark.parametrize("check", [True, False])
def test_cleanup_drops_only_in_a_real_run_and_reports_the_same_plan(
    monkeypatch: pytest.MonkeyPatch, check: bool
) -> None:
    sessions: list[Session] = []
    monkeypatch.setattr(_restore, "Restore", lambda o, admin: sessions.append(Session(o, admin)) or sessions[-1])
    rec = Recorder(check=check, audit="plan")
    _restore.cleanup(None, options(operation="cleanup", src=None, keep_previous=2), None, rec)
    gone = ["app_pre_restore_20260101101500"]
    assert rec.outcome(False, timed=False) == {
        "changed": True,
        "plan": [f"drop database {name}" for name in gone],
        "dropped": gone,
    }
    assert sessions[0].did == ([] if check else [f"drop {name}" for name in gone])


@pytest.mark.parametrize("check", [True, False])
def test_revert_swaps_only_in_a_real_run(monkeypatch: pytest.MonkeyPatch, check: bool) -> None:
    sessions: list[Session] = []
    monkeypatch.setattr(_restore, "Restore", lambda o, admin: sessions.append(Session(o, admin)) or sessions[-1])
    monkeypatch.setattr(_restore, "inspect", lambda o, admin: Target(exists=True))
    monkeypatch.setattr(_restore, "stamp", lambda: "20260104101500")
    rec = Recorder(check=check, audit="plan")
    _restore.revert(None, options(operation="revert", src=None), None, rec)
    result = rec.outcome(False, timed=False)
    assert result == {
        "changed": True,
        "plan": [
            "in one transaction, rename app to app_reverted_20260104101500 and app_pre_restore_20260103101500 to app"
        ],
        "restored_db": "app",
        "previous_db": "app_reverted_20260104101500",
        "dropped": [],
    }
    swap = "swap app_pre_restore_20260103101500 app_reverted_20260104101500"
    assert sessions[0].did == ([] if check else ["lock", swap])
