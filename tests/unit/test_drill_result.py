"""One host's drill verdict (module_utils/_drill.py, the drill_result filter) on recorded readings.

fixtures/drill/results.json holds, per case, the role's variables as a drill leaves them (pg_restore's and
pg_backup's registered results, the negative control's, the failed task's message, the thresholds) and the result
roles/restore_drill/templates/result.json.j2 rendered from them while it computed the verdict in Jinja: the
function must give the same JSON."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import jinja2
import jsonschema
import pytest

from ansible_collections.stackops.runbooks.plugins.filter.drill_report import FilterModule, drill_summary
from ansible_collections.stackops.runbooks.plugins.module_utils._drill import drill_result
from harness.paths import REPO

CASES = json.loads((Path(__file__).parent / "fixtures" / "drill" / "results.json").read_text())
RESULT_SCHEMA = json.loads((REPO / "docs" / "schemas" / "restore_drill.schema.json").read_text())


def verdict(readings: dict[str, t.Any]) -> dict[str, t.Any]:
    """drill_result called the way result.json.j2 calls it, on the role's variables; undefined ones are absent."""
    return drill_result(
        readings.get("__drill_restored", {}),
        host=readings["inventory_hostname"],
        database=readings["restore_drill_db"],
        drill_host=readings["__drill_target"],
        max_rto_s=readings["restore_drill_max_rto_s"],
        max_rpo_hours=readings["restore_drill_max_rpo_hours"],
        backup=readings.get("__drill_backup"),
        negative=readings.get("__drill_negative"),
        failed=readings["__drill_failed"],
        fresh_backup=readings["restore_drill_fresh_backup"],
    )


def valid_run(result: dict[str, t.Any]) -> dict[str, t.Any]:
    """A run document of the one result, checked against the report's schema."""
    run = {
        "schema": "stackops.runbooks/restore-drill/1",
        "run_id": "20261123T140500Z",
        "started_at": "2026-11-23T14:05:00Z",
        "finished_at": "2026-11-23T14:07:00Z",
        "controller": "ctl",
        "thresholds": {"max_rto_s": 900.0, "max_rpo_hours": 26.0},
        "options": {
            "fresh_backup": False,
            "negative_control": True,
            "amcheck": True,
            "require_sentinel": False,
            "smoke_queries": 0,
        },
        "results": [result],
    }
    run["summary"] = drill_summary(run["results"])
    jsonschema.validate(json.loads(json.dumps(run)), RESULT_SCHEMA)
    return run


def checks(result: dict[str, t.Any]) -> dict[str, tuple[bool | None, str]]:
    return {c["name"]: (c["passed"], c["detail"]) for c in result["checks"]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_result_is_what_the_jinja_template_gave(name: str) -> None:
    case = CASES[name]
    assert json.loads(json.dumps(verdict(case["readings"]))) == case["result"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_result_is_valid_in_a_run_document(name: str) -> None:
    valid_run(verdict(CASES[name]["readings"]))


def test_a_drill_within_its_limits_passes() -> None:
    result = verdict(CASES["pass"]["readings"])
    assert (result["status"], result["reason"]) == ("pass", None)
    assert checks(result)["rto"] == (True, "41.7 s to verify, restore and check (limit 900 s)")
    assert checks(result)["rpo"] == (True, "the backup was 12.08 h old (limit 26 h)")
    assert "negative_control" not in checks(result)
    assert result["elapsed"] == {"verify": 1.2, "restore": 35.9, "check": 4.6, "total": 41.7}  # not cleanup
    assert (result["rows"], result["tables"]) == (120418, 3)
    assert result["backup"]["fresh"] is False


@pytest.mark.parametrize(
    ("name", "failed", "detail"),
    [
        ("failed_rto", "rto", "41.7 s to verify, restore and check (limit 30 s)"),
        ("failed_rpo", "rpo", "the backup was 12.08 h old (limit 6 h)"),
    ],
)
def test_a_limit_exceeded_fails_with_its_check(name: str, failed: str, detail: str) -> None:
    result = verdict(CASES[name]["readings"])
    assert (result["status"], result["reason"]) == ("fail", f"failed checks: {failed}")
    assert checks(result)[failed] == (False, detail)


def test_limits_given_as_text_are_compared_as_numbers() -> None:
    result = verdict(CASES["failed_rto_and_rpo_as_text"]["readings"])
    assert result["reason"] == "failed checks: rto, rpo"
    assert checks(result)["rpo"] == (False, "the backup was 12.08 h old (limit 6.5 h)")


def test_the_limit_itself_passes() -> None:
    readings = copy.deepcopy(CASES["pass"]["readings"])
    readings["restore_drill_max_rto_s"] = 41.7
    assert verdict(readings)["status"] == "pass"


def test_a_caught_negative_control_passes_with_the_refusal_shortened() -> None:
    result = verdict(CASES["negative_caught"]["readings"])
    passed, detail = checks(result)["negative_control"]
    assert (result["status"], passed) == ("pass", True)
    assert detail.startswith("a dump with one byte flipped was refused: app.dump: sha256 is ")
    assert detail.endswith(" the backup set is damaged...")
    assert len(detail) <= len("a dump with one byte flipped was refused: ") + 200


@pytest.mark.parametrize("length", range(195, 212))
def test_the_refusal_is_shortened_as_jinjas_truncate_200_did(length: int) -> None:
    message = ("sha256 mismatch " * 20)[:length]
    readings = {**CASES["pass"]["readings"], "__drill_negative": {"failed": True, "msg": message}}
    detail = checks(verdict(readings))["negative_control"][1]
    shortened = jinja2.Environment(autoescape=True).from_string("{{ msg | truncate(200) }}").render(msg=message)
    assert detail == f"a dump with one byte flipped was refused: {shortened}"


def test_a_negative_control_not_caught_fails_the_drill() -> None:
    result = verdict(CASES["negative_not_caught"]["readings"])
    assert checks(result)["negative_control"] == (False, "a dump with one byte flipped was NOT refused")
    assert (result["status"], result["reason"]) == ("fail", "failed checks: negative_control")


def test_a_skipped_negative_control_is_no_check() -> None:
    assert "negative_control" not in checks(verdict(CASES["negative_skipped"]["readings"]))


def test_the_failed_tasks_message_is_the_reason() -> None:
    result = verdict(CASES["failure_message"]["readings"])
    assert result["status"] == "fail"
    assert result["reason"] == CASES["failure_message"]["readings"]["__drill_failed"]
    assert checks(result)["row_counts"][0] is False
    assert (result["rto_s"], result["elapsed"], result["rows"], result["tables"]) == (None, {}, None, None)
    assert result["backup"]["fresh"] is True


@pytest.mark.parametrize("name", ["nothing_read", "backup_without_manifest"])
def test_a_drill_that_read_nothing_fails_with_empty_parts(name: str) -> None:
    result = verdict(CASES[name]["readings"])
    assert result["status"] == "fail"
    assert result["reason"].startswith("Find the backup: ")
    assert (result["backup"], result["rpo_hours"], result["rto_s"], result["checks"]) == (None, None, None, [])
    assert result["cleanup"] == {"dropped": [], "files_removed": False}


def test_the_filter_is_the_function() -> None:
    assert FilterModule().filters()["drill_result"] is drill_result


def test_a_host_without_a_result_is_unreachable_and_valid_in_a_run_document() -> None:
    # What report.yml records for a host of the play that left no result.
    result = drill_result(
        {}, host="lab9", database="app", drill_host=None, max_rto_s=900, max_rpo_hours=26, unreachable=True
    )
    assert result["status"] == "unreachable"
    assert result["reason"].startswith("no result: the host could not be reached")
    assert (result["backup"], result["rto_s"], result["checks"], result["elapsed"]) == (None, None, [], {})
    told = drill_result(
        {},
        host="lab9",
        database="app",
        drill_host=None,
        max_rto_s=900,
        max_rpo_hours=26,
        failed="Find the backup: none",
        unreachable=True,
    )
    assert (told["status"], told["reason"]) == ("unreachable", "Find the backup: none")
    summary = valid_run(result)["summary"]
    assert (summary["unreachable"], summary["status"]) == (1, "fail")
