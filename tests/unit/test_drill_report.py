"""The restore drill's run document (schema, summary) and its Markdown and HTML reports."""

from __future__ import annotations

import copy
import json
import typing as t
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.stackops.runbooks.plugins.filter.drill_report import (
    HTML_TEMPLATE,
    PROVENANCE,
    FilterModule,
    drill_html,
    drill_markdown,
    drill_summary,
)
from harness.paths import REPO

FIXTURES = Path(__file__).parent / "fixtures" / "drill"
SCHEMA = json.loads((REPO / "docs" / "schemas" / "restore_drill.schema.json").read_text())
SCHEMA_V2 = json.loads((REPO / "docs" / "schemas" / "restore_drill.v2.schema.json").read_text())
EVIL = "<img onerror=x>"
VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "source", "wbr"}


@pytest.fixture
def run() -> dict[str, t.Any]:
    return json.loads((FIXTURES / "run.json").read_text())


@pytest.fixture
def run_v2() -> dict[str, t.Any]:
    return json.loads((FIXTURES / "run_v2.json").read_text())


@pytest.fixture
def history() -> list[dict[str, t.Any]]:
    return json.loads((FIXTURES / "history.json").read_text())


def result(host: str, status: str, database: str = "app", **fields: t.Any) -> dict[str, t.Any]:
    return {"host": host, "database": database, "drill_host": "drill1", "status": status, **fields}


# --- summary --------------------------------------------------------------------------------------------------------


def test_summary_counts_each_status_and_names_failed_hosts_once() -> None:
    results = [
        result("lab3", "pass"),
        result("lab2", "fail", "app"),
        result("lab2", "fail", "billing"),
        result("lab1", "unreachable"),
        result("lab4", "pass"),
    ]
    assert drill_summary(results) == {
        "databases": 5,
        "passed": 2,
        "failed": 2,
        "unreachable": 1,
        "status": "fail",
        "failed_hosts": ["lab1", "lab2"],
    }


def test_summary_passes_only_when_every_result_passed() -> None:
    assert drill_summary([result("lab1", "pass"), result("lab2", "pass")])["status"] == "pass"
    assert drill_summary([result("lab1", "pass"), result("lab2", "unreachable")])["status"] == "fail"


@pytest.mark.parametrize("results", [[], None, "junk", [None, 3]])
def test_summary_of_no_results_fails(results: t.Any) -> None:
    assert drill_summary(results) == {
        "databases": 0,
        "passed": 0,
        "failed": 0,
        "unreachable": 0,
        "status": "fail",
        "failed_hosts": [],
    }


def test_summary_counts_an_unknown_or_missing_status_as_failed() -> None:
    summary = drill_summary([{"host": "lab1", "status": "weird"}, {"database": "app"}])
    assert (summary["failed"], summary["databases"], summary["failed_hosts"]) == (2, 2, ["?", "lab1"])


def test_fixture_summary_is_what_the_filter_computes(run: dict[str, t.Any], history: list[dict[str, t.Any]]) -> None:
    for doc in [*history, run]:
        assert doc["summary"] == drill_summary(doc["results"])


def test_filter_module_names() -> None:
    assert set(FilterModule().filters()) == {"drill_result", "drill_summary", "drill_markdown", "drill_html"}


# --- schema ---------------------------------------------------------------------------------------------------------


def errors(doc: t.Any, schema: dict[str, t.Any] = SCHEMA) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["schema"]["const"] == "stackops.runbooks/restore-drill/1"


def test_fixture_runs_validate(run: dict[str, t.Any], history: list[dict[str, t.Any]]) -> None:
    for doc in [*history, run]:
        assert errors(doc) == [], doc["run_id"]


def _drop(key: str) -> t.Callable[[dict[str, t.Any]], None]:
    return lambda doc: doc.pop(key)


def _set(path: str, value: t.Any) -> t.Callable[[dict[str, t.Any]], None]:
    def change(doc: dict[str, t.Any]) -> None:
        *parents, last = path.split(".")
        target: t.Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return change


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (_drop("summary"), ""),
        (_drop("thresholds"), ""),
        (lambda doc: doc["results"][0].pop("checks"), "results/0"),
        (lambda doc: doc["results"][0]["backup"].pop("sha256"), "results/0/backup"),
        (_set("schema", "stackops.runbooks/restore-drill/2"), "schema"),
        (_set("run_id", "2026-11-23 14:05"), "run_id"),
        (_set("started_at", "23/11/2026"), "started_at"),
        (_set("extra", 1), ""),
        (_set("summary.status", "unreachable"), "summary/status"),
        (_set("results.0.status", "ok"), "results/0/status"),
        (_set("results.0.rto_s", -1.5), "results/0/rto_s"),
        (_set("results.0.rpo_hours", "12"), "results/0/rpo_hours"),
        (_set("results.0.rows", 1.5), "results/0/rows"),
        (_set("results.0.elapsed.restore", -2), "results/0/elapsed/restore"),
        (_set("results.0.backup.sha256", "abc"), "results/0/backup/sha256"),
        (_set("results.0.checks.0.name", "vibes"), "results/0/checks/0/name"),
        (_set("results.0.checks.0.passed", "yes"), "results/0/checks/0/passed"),
        (_set("results.0.surprise", True), "results/0"),
        (_set("results.1.reason", None), "results/1/reason"),
        (_set("thresholds.max_rto_s", -900), "thresholds/max_rto_s"),
        (_set("options.smoke_queries", -1), "options/smoke_queries"),
    ],
)
def test_broken_runs_fail_validation(
    run: dict[str, t.Any], change: t.Callable[[dict[str, t.Any]], None], where: str
) -> None:
    change(run)
    found = errors(run)
    assert found, "the broken document validated"
    assert any(e.startswith(f"{where}:") for e in found), found


def test_nullable_fields_and_open_phase_names_validate(run: dict[str, t.Any]) -> None:
    unreachable = run["results"][2]
    assert (unreachable["backup"], unreachable["rto_s"], unreachable["elapsed"]) == (None, None, {})
    run["results"][0]["elapsed"]["fresh_backup"] = 12.5
    run["results"][0]["checks"].append({"name": "smoke:any name", "passed": None, "detail": ""})
    run["results"].append({**run["results"][0], "host": "lab4", "reason": "passed, with a note"})
    unreachable["drill_host"] = None
    assert errors(run) == []


def test_schema_v2_is_version_1_with_provenance() -> None:
    """Version 2 adds provenance and changes nothing else: a field that drifted in one file only fails here."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA_V2)
    v2 = copy.deepcopy(SCHEMA_V2)
    assert sorted(v2["properties"].pop("provenance")["required"]) == sorted(key for key, _label in PROVENANCE)
    assert v2["required"].pop() == "provenance"
    assert v2["$defs"].pop("name_or_null") == {"type": ["string", "null"], "minLength": 1}
    assert v2["properties"]["schema"].pop("const") == "stackops.runbooks/restore-drill/2"
    assert v2.pop("$id") == "urn:stackops:runbooks:restore-drill:2"
    v1 = copy.deepcopy(SCHEMA)
    v1["properties"]["schema"].pop("const")
    v1.pop("$id")
    for key in ("title", "description"):
        assert v2.pop(key).startswith(v1.pop(key))
    assert v2 == v1


def test_v2_fixture_validates_against_v2_only(run: dict[str, t.Any], run_v2: dict[str, t.Any]) -> None:
    assert errors(run_v2, SCHEMA_V2) == []
    assert [e for e in errors(run_v2) if e.startswith(("schema:", ":"))], "a v2 document passed as v1"
    assert errors(run, SCHEMA_V2), "a v1 document passed as v2"
    assert {k for k in run_v2 if k not in run} == {"provenance"}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda doc: doc.pop("provenance"), ""),
        (lambda doc: doc["provenance"].pop("git_commit"), "provenance"),
        (_set("provenance.awx_job_id", "4711"), "provenance/awx_job_id"),
        (_set("provenance.awx_job_id", 0), "provenance/awx_job_id"),
        (_set("provenance.launch_type", None), "provenance/launch_type"),
        (_set("provenance.user", ""), "provenance/user"),
        (_set("provenance.password", "hunter2"), "provenance"),
    ],
)
def test_broken_provenance_fails_v2_validation(
    run_v2: dict[str, t.Any], change: t.Callable[[dict[str, t.Any]], None], where: str
) -> None:
    change(run_v2)
    found = errors(run_v2, SCHEMA_V2)
    assert any(e.startswith(f"{where}:") for e in found), found


# --- Markdown -------------------------------------------------------------------------------------------------------


def test_markdown_has_a_row_per_database_and_the_failures(
    run: dict[str, t.Any], history: list[dict[str, t.Any]]
) -> None:
    report = drill_markdown(run, history)
    assert report.startswith("# Restore drill 20261123T140500Z: FAIL\n")
    assert "| max RTO (restore time) | 900.0 s |" in report
    assert "| lab1 | app | drill1 | pass | 41.7 | 12.08 | 120,418 | 3.5 MiB |  |" in report
    assert "| lab2 | app | drill1 | fail | 38.2 | 30.50 | 98,110 | 2.7 MiB | row_counts, rpo |" in report
    assert "| lab3 | app | drill1 | unreachable | n/a | n/a | n/a | n/a |  |" in report
    failures = report.split("## Failures")[1].split("## Trend")[0]
    assert "- **lab2** / app (fail): backup is 30.5 h old (max 26 h); row_counts:" in failures
    assert (
        "- **lab3** / app (unreachable): lab3: ssh: connect to host 127.0.2.9 port 22: Connection refused" in failures
    )
    assert "lab1" not in failures
    checks = report.split("## Checks")[1].split("## Failures")[0]
    assert "- ✗ row_counts: orders has 10 rows, backup had 12" in checks
    assert "- ○ sentinel: no sentinel table (require_sentinel is false)" in checks
    assert "- ✓ rto: 41.7 s <= 900 s" in checks


def test_markdown_trend_has_each_run_once_oldest_first(run: dict[str, t.Any], history: list[dict[str, t.Any]]) -> None:
    trend = drill_markdown(run, [*history, run]).split("## Trend")[1]
    assert trend == drill_markdown(run, history).split("## Trend")[1]
    rows = [line for line in trend.splitlines() if line.startswith("| 2026")]
    assert rows == [
        "| 20261109T140500Z | pass | 2/2 | 39.4 | 12.09 |",
        "| 20261116T140500Z | fail | 0/1 | n/a | n/a |",
        "| 20261123T140500Z | fail | 1/3 | 41.7 | 30.50 |",
    ]


def test_markdown_cells_cannot_break_the_table_or_open_tags() -> None:
    run = {"run_id": "r1", "results": [result(EVIL, "fail", reason="a | b\nc <script>")]}
    report = drill_markdown(run)
    assert "<img" not in report
    assert "<script" not in report
    assert "| &lt;img onerror=x> | app | drill1 | fail |" in report
    assert "(fail): a \\| b c &lt;script>" in report


def test_markdown_of_an_empty_or_missing_run_says_so() -> None:
    for run in ({}, None, {"results": [], "summary": "junk"}):
        report = drill_markdown(run)
        assert report.startswith("# Restore drill ?: FAIL")
        assert "No database was drilled." in report
        assert "| max RTO (restore time) | n/a |" in report


# --- HTML -----------------------------------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Checks nesting as it parses: every end tag closes the innermost open element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.seen: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    assert tags.problems == []
    assert tags.open == []
    return tags


def assert_self_contained(page: str) -> Tags:
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    tags = parse(page)
    assert tags.seen.count("html") == tags.seen.count("body") == 1
    for tag, name, value in tags.attrs:
        assert name not in {"src", "href", "xlink:href", "srcset", "action"}, (tag, name, value)
        assert not name.startswith("on"), (tag, name)
        assert "://" not in (value or ""), (tag, name, value)
    assert "url(" not in page
    assert "@import" not in page
    return tags


def test_html_is_balanced_and_self_contained(run: dict[str, t.Any], history: list[dict[str, t.Any]]) -> None:
    page = drill_html(run, history)
    tags = assert_self_contained(page)
    assert tags.seen.count("svg") == 4
    assert tags.seen.count("table") == 2 + 3 + 2 + 1  # summary, thresholds, a host each, checks of two, trend
    assert "polyline" not in tags.seen  # the trend's middle run has no numbers: the others stand alone
    text = " ".join(tags.text)
    for expected in ("Restore drill 20261123T140500Z", "Connection refused", "row_counts, rpo", "120,418", "n/a"):
        assert expected in text


def test_html_bars_and_threshold_lines(run: dict[str, t.Any]) -> None:
    page = drill_html(run)
    assert page.count("<rect ") == 4  # RTO and RPO of lab1 and lab2; lab3 was unreachable
    assert page.count('<rect class="bad"') == 1  # lab2's backup is older than 26 h
    assert page.count('class="limit"') == 4
    assert "max 900 s" in page
    assert "max 26 h" in page


def test_html_escapes_every_string_from_the_run(run: dict[str, t.Any]) -> None:
    evil = copy.deepcopy(run)
    evil["run_id"] = evil["controller"] = EVIL
    for r in evil["results"]:
        r["host"] = r["database"] = r["drill_host"] = r["reason"] = EVIL
        for check in r["checks"]:
            check["name"] = check["detail"] = EVIL
    evil["results"][0]["status"] = EVIL
    page = drill_html(evil, [evil])
    tags = assert_self_contained(page)
    assert "img" not in tags.seen
    assert "<img" not in page
    assert "&lt;img onerror=x&gt;" in page
    assert EVIL in " ".join(tags.text)


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"run_id": "20261123T140500Z", "thresholds": {"max_rto_s": 900, "max_rpo_hours": 26}, "results": []},
        {"results": [result("lab1", "unreachable", reason="ssh refused", rto_s=None, rpo_hours=None, checks=[])]},
        {"results": [{"host": "lab1", "rto_s": "slow", "rpo_hours": float("nan"), "checks": "x", "backup": 3}]},
        {"results": [{"host": "lab1", "checks": [{"passed": []}, {"passed": "yes", "name": None}, 7]}], "summary": 1},
    ],
)
def test_reports_render_odd_runs(doc: dict[str, t.Any]) -> None:
    assert drill_markdown(doc, [doc, None]).startswith("# Restore drill ")
    page = drill_html(doc, [doc, None])
    tags = assert_self_contained(page)
    assert tags.seen.count("svg") == 4
    assert "polyline" not in tags.seen  # no numbers, no line
    assert "<rect " not in page


def test_html_trend_of_one_run_is_a_point(run: dict[str, t.Any]) -> None:
    page = drill_html(run, [run])
    tags = assert_self_contained(page)
    assert tags.seen.count("circle") == 2
    assert "20261123T140500Z" in page


def test_html_trend_of_many_runs(run: dict[str, t.Any], history: list[dict[str, t.Any]]) -> None:
    runs = []
    for n in range(20):
        doc = copy.deepcopy(history[0])
        doc["run_id"] = f"202610{n + 1:02d}T020000Z"
        runs.append(doc)
    tags = assert_self_contained(drill_html(run, runs))
    assert tags.seen.count("circle") == 2 * 21
    assert tags.seen.count("polyline") == 2


# --- the HTML template ----------------------------------------------------------------------------------------------


def test_the_default_template_is_the_roles() -> None:
    assert HTML_TEMPLATE.resolve() == REPO / "roles" / "restore_drill" / "templates" / "report.html.j2"
    assert HTML_TEMPLATE.is_file()


def test_a_restyled_template_is_rendered_with_every_value_escaped(run: dict[str, t.Any], tmp_path: Path) -> None:
    evil = copy.deepcopy(run)
    evil["run_id"] = EVIL
    evil["results"][0]["reason"] = EVIL
    mine = tmp_path / "mine.html.j2"
    mine.write_text(
        '<!DOCTYPE html>\n<html><body><h1 class="{{ summary.status | status_class }}">{{ run_id }}</h1>\n'
        "{% for r in results %}<p>{{ r.host }}: {{ r.reason }}</p>\n{% endfor %}{{ charts.rto }}</body></html>\n"
    )
    page = drill_html(evil, [], str(mine))
    tags = assert_self_contained(page)
    assert "img" not in tags.seen
    assert f'<h1 class="fail">{EVIL.replace("<", "&lt;").replace(">", "&gt;")}</h1>' in page
    assert tags.seen.count("p") == 3
    assert tags.seen.count("svg") == 1  # the chart is markup, not escaped text
    assert "Restore drill" not in page  # none of the shipped template


def test_a_template_naming_a_field_the_run_lacks_fails(run: dict[str, t.Any], tmp_path: Path) -> None:
    mine = tmp_path / "typo.html.j2"
    mine.write_text("{{ run_id }} {{ sumary }}")
    with pytest.raises(AnsibleFilterError, match=rf"template {mine} could not be rendered: 'sumary' is undefined"):
        drill_html(run, [], str(mine))


def test_a_template_that_is_not_there_is_named_with_the_fix(run: dict[str, t.Any], tmp_path: Path) -> None:
    with pytest.raises(AnsibleFilterError, match=rf"template {tmp_path}/nope.html.j2 is not a file: set restore"):
        drill_html(run, [], str(tmp_path / "nope.html.j2"))


# --- provenance (schema version 2) ----------------------------------------------------------------------------------


def test_markdown_shows_the_provenance_of_a_v2_run(run_v2: dict[str, t.Any]) -> None:
    report = drill_markdown(run_v2)
    section = report.split("## Provenance\n", 1)[1].split("\n## ", 1)[0]
    assert "| launched by | scheduled |" in section
    assert "| AWX job | 4711 |" in section
    assert "| AWX job template | stackops restore drill |" in section
    assert "| AWX schedule | stackops weekly restore drill |" in section
    assert "| user | n/a |" in section and "| AWX workflow job | n/a |" in section
    assert "| git commit | 3f2a9c4e1b7d8a6f5e4d3c2b1a0f9e8d7c6b5a49 |" in section
    assert "| collection version | 0.1.0 |" in section


def test_reports_of_a_v1_run_say_it_has_no_provenance(run: dict[str, t.Any]) -> None:
    assert "## Provenance\n\nNot recorded: this run's document is schema version 1" in drill_markdown(run)
    assert "<h2>Provenance</h2>\n<p>Not recorded: this run&#39;s document is schema version 1" in drill_html(run)


def test_html_shows_the_provenance_of_a_v2_run(run_v2: dict[str, t.Any], run: dict[str, t.Any]) -> None:
    page = drill_html(run_v2, [run])
    tags = assert_self_contained(page)
    assert tags.seen.count("table") == drill_html(run).count("<table>") + 1
    assert "<tr><th>AWX job</th><td>4711</td></tr>" in page
    assert "<tr><th>launched by</th><td>scheduled</td></tr>" in page


def test_the_trend_reads_v1_and_v2_documents_alike(
    run_v2: dict[str, t.Any], run: dict[str, t.Any], history: list[dict[str, t.Any]]
) -> None:
    later = {**run_v2, "run_id": "20261130T140500Z"}
    trend = drill_markdown(later, [*history, run]).split("## Trend\n", 1)[1]
    rows = [line.split(" | ")[0] for line in trend.splitlines() if line.startswith("| 2026")]
    assert rows == [f"| {doc['run_id']}" for doc in [*history, run, later]]
    v1_row = drill_markdown(run, history).split("## Trend\n", 1)[1].splitlines()[-1]
    assert trend.splitlines()[-2] == v1_row, "the v1 run's trend point is the same in a v2 run's report"
    points = drill_html(later, [*history, run]).count("<circle ")
    assert points == drill_html(run, history).count("<circle ") + 2, "one more point in each of RTO and RPO"


def test_provenance_from_outside_is_escaped(run_v2: dict[str, t.Any]) -> None:
    run_v2["provenance"].update(user=EVIL, awx_job_template="a | b")
    assert "| user | &lt;img onerror=x> |" in drill_markdown(run_v2)
    assert "| AWX job template | a \\| b |" in drill_markdown(run_v2)
    page = drill_html(run_v2)
    assert "<img" not in page and "&lt;img onerror=x&gt;" in page
