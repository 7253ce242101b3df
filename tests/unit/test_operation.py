"""module_utils/_operation: the one recorder of what a mutating module's run did or, in check mode, would do."""

from __future__ import annotations

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder, Step

PLAN = [Step("CONFIG SET maxmemory 64mb", {"name": "maxmemory"}), Step("CONFIG REWRITE")]


@pytest.mark.parametrize("check", [True, False])
def test_check_mode_and_a_real_run_record_the_same_plan_and_only_a_real_run_carries_it_out(check: bool) -> None:
    rec = Recorder(check=check)
    assert rec.plan(PLAN) is not check
    assert (rec.changed, rec.commands) == (True, ["CONFIG SET maxmemory 64mb", "CONFIG REWRITE"])


def test_an_empty_plan_is_no_change_and_nothing_to_do() -> None:
    rec = Recorder(check=False)
    assert rec.plan([]) is False
    assert (rec.changed, rec.commands) == (False, [])


def test_a_change_of_an_earlier_operation_stays_and_done_steps_are_recorded_after_the_fact() -> None:
    rec = Recorder(check=False)
    rec.done([Step("SCAN MATCH session:* COUNT 500 + UNLINK", {"keys": 3})])
    assert rec.plan([]) is False
    assert rec.changed is True and rec.commands == ["SCAN MATCH session:* COUNT 500 + UNLINK"]


def test_the_outcome_has_the_fields_timings_and_the_diff_only_when_asked() -> None:
    rec = Recorder(check=True)
    rec.result["flushed"] = 4
    rec.diff("flush", {"db0": 4}, {"db0": 0})
    with rec.timed("flush"):
        rec.plan([Step("FLUSHDB ASYNC")])
    plain = rec.outcome(False, server={"version": "7.0.15"})
    assert plain == {
        "changed": True,
        "commands": ["FLUSHDB ASYNC"],
        "server": {"version": "7.0.15"},
        "flushed": 4,
        "timings": {"flush": plain["timings"]["flush"]},
    }
    assert 0 <= plain["timings"]["flush"] < 1
    assert rec.outcome(True)["diff"] == {"before": {"flush": {"db0": 4}}, "after": {"flush": {"db0": 0}}}


def test_an_operation_that_fails_still_has_its_time() -> None:
    rec = Recorder(check=False)
    with pytest.raises(RuntimeError), rec.timed("snapshot"):
        raise RuntimeError("BGSAVE refused")
    assert "snapshot" in rec.timings


def test_the_audit_list_takes_the_module_s_own_name() -> None:
    rec = Recorder(check=True, audit="queries")
    rec.plan([Step("VACUUM")])
    assert rec.outcome(False)["queries"] == ["VACUUM"] and "commands" not in rec.outcome(False)


def test_a_module_that_reports_its_own_times_leaves_timings_out() -> None:
    rec = Recorder(check=False, audit="plan")
    with rec.timed("restore"):
        rec.plan([Step("rename app_restore_1 to app")])
    rec.result["elapsed"] = {"restore": 0.1, "total": 0.1}
    assert rec.outcome(False, timed=False) == {
        "changed": True,
        "plan": ["rename app_restore_1 to app"],
        "elapsed": {"restore": 0.1, "total": 0.1},
    }
