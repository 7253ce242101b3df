# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the restore drill: each host's result (the verdict of module_utils/_drill.py), and the run document
(docs/restore_drill_report.md) turned into its summary and its Markdown and HTML reports. They never raise on missing
or malformed optional fields: a report must still be written for the run that went wrong."""

from __future__ import annotations

import html
import math
import re
import typing as t
from pathlib import Path

import jinja2
from ansible.errors import AnsibleFilterError
from markupsafe import Markup

from ansible_collections.stackops.runbooks.plugins.module_utils._drill import drill_result

STATUSES = ("pass", "fail", "unreachable")
MARKS = {True: "✓", False: "✗", None: "○"}
MARKUP_START = re.compile(r"<(?=[A-Za-z/!?])")
RUN_ID = re.compile(r"^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$")
# The provenance fields (schema version 2) in the order the reports show them, with their labels.
PROVENANCE = (
    ("launch_type", "launched by"),
    ("user", "user"),
    ("awx_job_id", "AWX job"),
    ("awx_job_template", "AWX job template"),
    ("awx_schedule", "AWX schedule"),
    ("awx_workflow_job_id", "AWX workflow job"),
    ("awx_execution_node", "AWX execution node"),
    ("collection_version", "collection version"),
    ("git_commit", "git commit"),
)
NO_PROVENANCE = "Not recorded: this run's document is schema version 1, which has no provenance."
# The HTML report's template, shipped in the role; restore_drill_html_template names another to restyle it.
HTML_TEMPLATE = Path(__file__).parent.parent.parent / "roles" / "restore_drill" / "templates" / "report.html.j2"


# --- reading the run document ---------------------------------------------------------------------------------------


def _dict(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: t.Any) -> list[dict[str, t.Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, (list, tuple)) else []


def _num(value: t.Any) -> float | None:
    """A number from a field that may be missing, null or text; None when it is not one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _status(result: dict[str, t.Any]) -> str:
    # An unknown status is not a pass: counting it as a failure keeps passed + failed + unreachable == databases.
    status = result.get("status")
    return status if status in STATUSES else "fail"


def _name(value: t.Any) -> str:
    return "?" if value is None or value == "" else str(value)


def _passed(check: dict[str, t.Any]) -> bool | None:
    """True, False, or None for skipped (and for anything else, which proves nothing)."""
    passed = check.get("passed")
    return passed if isinstance(passed, bool) else None


def _failed_checks(result: dict[str, t.Any]) -> list[str]:
    return [_name(c.get("name")) for c in _dicts(result.get("checks")) if _passed(c) is False]


def _limits(run: dict[str, t.Any]) -> tuple[float | None, float | None]:
    thresholds = _dict(run.get("thresholds"))
    return _num(thresholds.get("max_rto_s")), _num(thresholds.get("max_rpo_hours"))


def drill_summary(results: t.Any) -> dict[str, t.Any]:
    """The summary of a run's per-database results; its status is pass only when there are results and all passed."""
    rows = _dicts(results)
    counts = {status: sum(1 for r in rows if _status(r) == status) for status in STATUSES}
    return {
        "databases": len(rows),
        "passed": counts["pass"],
        "failed": counts["fail"],
        "unreachable": counts["unreachable"],
        "status": "pass" if rows and counts["pass"] == len(rows) else "fail",
        "failed_hosts": sorted({_name(r.get("host")) for r in rows if _status(r) != "pass"}),
    }


def _summary(run: dict[str, t.Any]) -> dict[str, t.Any]:
    # The document's own summary wins (it is what was judged); the computed one fills what it lacks.
    return {**drill_summary(run.get("results")), **_dict(run.get("summary"))}


def _trend(run: dict[str, t.Any], history: t.Any) -> list[dict[str, t.Any]]:
    """One point per run, oldest first, ending with this run (once, whether or not history already holds it)."""
    runs = _dicts(history)
    if runs and run.get("run_id") is not None and runs[-1].get("run_id") == run.get("run_id"):
        runs = runs[:-1]
    points = []
    for doc in [*runs, run]:
        results, summary = _dicts(doc.get("results")), _summary(doc)
        points.append(
            {
                "run_id": _name(doc.get("run_id")),
                "status": summary.get("status") if summary.get("status") in STATUSES else "fail",
                "passed": summary.get("passed", 0),
                "total": summary.get("databases", 0),
                "max_rto": max((v for r in results if (v := _num(r.get("rto_s"))) is not None), default=None),
                "max_rpo": max((v for r in results if (v := _num(r.get("rpo_hours"))) is not None), default=None),
            }
        )
    return points


# --- formatting -----------------------------------------------------------------------------------------------------


def _fmt(value: t.Any, digits: int = 1) -> str:
    number = _num(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def _with_unit(value: t.Any, unit: str, digits: int = 1) -> str:
    text = _fmt(value, digits)
    return text if text == "n/a" else f"{text} {unit}"


def _count(value: t.Any) -> str:
    number = _num(value)
    return "n/a" if number is None else f"{int(number):,}"


def _size(value: t.Any) -> str:
    number = _num(value)
    if number is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(number) < 1024:
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} TiB"


def _provenance(run: dict[str, t.Any]) -> list[tuple[str, str]]:
    """The provenance of a version 2 document as (label, value) rows; none for version 1, which did not record it."""
    if not isinstance(run.get("provenance"), dict):
        return []
    provenance = run["provenance"]
    return [(label, "n/a" if provenance.get(key) in (None, "") else str(provenance[key])) for key, label in PROVENANCE]


def _options(run: dict[str, t.Any]) -> str:
    options = _dict(run.get("options"))
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items()) or "n/a"


def _md(value: t.Any) -> str:
    """Text from outside made safe for a Markdown table cell or list item: no raw HTML, no cell breaks. Only a `<`
    that could open a tag is escaped, so that details such as "41 s <= 900 s" stay readable as plain text."""
    text = MARKUP_START.sub("&lt;", str(value))
    return " ".join(text.replace("|", "\\|").split())


# --- Markdown -------------------------------------------------------------------------------------------------------


def _md_results(results: list[dict[str, t.Any]]) -> list[str]:
    lines = [
        "| host | database | drill host | status | RTO s | RPO h | rows | size | failed checks |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        cells = [_md(_name(r.get(k))) for k in ("host", "database", "drill_host")]
        cells += [_status(r), _fmt(r.get("rto_s")), _fmt(r.get("rpo_hours"), 2), _count(r.get("rows"))]
        cells += [_size(_dict(r.get("backup")).get("size")), _md(", ".join(_failed_checks(r)))]
        lines.append(f"| {' | '.join(cells)} |")
    return lines


def _md_checks(results: list[dict[str, t.Any]]) -> list[str]:
    lines: list[str] = []
    for r in results:
        lines += ["", f"### {_md(_name(r.get('host')))} / {_md(_name(r.get('database')))}", ""]
        checks = _dicts(r.get("checks"))
        lines += [
            f"- {MARKS[_passed(c)]} {_md(_name(c.get('name')))}: {_md(c.get('detail') or '')}" for c in checks
        ] or ["- no checks ran"]
    return lines


def _md_failures(results: list[dict[str, t.Any]]) -> list[str]:
    failed = [r for r in results if _status(r) != "pass"]
    if not results:
        return ["No database was drilled."]
    if not failed:
        return ["None: every database passed."]
    return [
        f"- **{_md(_name(r.get('host')))}** / {_md(_name(r.get('database')))} ({_md(_status(r))}): "
        f"{_md(r.get('reason') or 'no reason given')}"
        for r in failed
    ]


def _md_provenance(rows: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return [NO_PROVENANCE]
    return ["| field | value |", "| --- | --- |", *(f"| {label} | {_md(value)} |" for label, value in rows)]


def drill_markdown(run: t.Any, history: t.Any = None) -> str:
    """The Markdown report of one run, with the trend over history (earlier run documents, oldest first)."""
    run = _dict(run)
    results, summary = _dicts(run.get("results")), _summary(run)
    max_rto, max_rpo = _limits(run)
    lines = [
        f"# Restore drill {_md(_name(run.get('run_id')))}: {_md(str(summary['status']).upper())}",
        "",
        f"- Started {_md(_name(run.get('started_at')))}, finished {_md(_name(run.get('finished_at')))}, "
        f"controller {_md(_name(run.get('controller')))}",
        f"- Databases: {_md(summary.get('databases'))}, passed {_md(summary.get('passed'))}, "
        f"failed {_md(summary.get('failed'))}, unreachable {_md(summary.get('unreachable'))}",
        f"- Options: {_md(_options(run))}",
        "",
        "## Provenance",
        "",
        *_md_provenance(_provenance(run)),
        "",
        "## Thresholds",
        "",
        "| threshold | value |",
        "| --- | ---: |",
        f"| max RTO (restore time) | {_with_unit(max_rto, 's')} |",
        f"| max RPO (backup age) | {_with_unit(max_rpo, 'h', 2)} |",
        "",
        "## Results",
        "",
        *(_md_results(results) if results else ["No database was drilled."]),
        "",
        "## Checks",
        "",
        f"{MARKS[True]} passed, {MARKS[False]} failed, {MARKS[None]} skipped",
        *(_md_checks(results) or ["", "No checks ran."]),
        "",
        "## Failures",
        "",
        *_md_failures(results),
        "",
        "## Trend",
        "",
        "| run | status | passed/total | max RTO s | max RPO h |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {_md(p['run_id'])} | {p['status']} | {_md(p['passed'])}/{_md(p['total'])} | "
        f"{_fmt(p['max_rto'])} | {_fmt(p['max_rpo'], 2)} |"
        for p in _trend(run, history)
    ]
    return "\n".join(lines) + "\n"


# --- HTML -----------------------------------------------------------------------------------------------------------


def _h(value: t.Any) -> str:
    return html.escape(str(value))


def _css(status: t.Any) -> str:
    # Classes come from a fixed list: a status from outside never reaches an attribute.
    return status if status in STATUSES else "fail"


def _nice_top(values: list[float | None]) -> float:
    """The axis end: the first 1, 2, 2.5 or 5 times a power of ten at or above every value."""
    top = max((v for v in values if v is not None), default=0.0)
    if top <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= top)


def _short(text: str, width: int = 30) -> str:
    return text if len(text) <= width else f"{text[: width - 1]}…"


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{_h(title)}">',
            f"<title>{_h(title)}</title>",
            f'<text class="title" x="8" y="16">{_h(title)}</text>',
            *body,
            "</svg>",
        ]
    )


def _text(x: float, y: float, text: str, css: str = "", anchor: str = "start", tip: str = "") -> str:
    """An SVG text of already escaped content, with an optional tooltip (for labels that were shortened)."""
    title = f"<title>{_h(tip)}</title>" if tip else ""
    return f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{title}{text}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, css: str) -> str:
    return f'<line class="{css}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'


def _bar_chart(title: str, unit: str, bars: list[tuple[str, float | None]], limit: float | None) -> str:
    """Horizontal bars, one per database, so that long names fit; a bar past the limit is red, a missing number
    (an unreachable host) reads n/a."""
    width, left, top, row = 560, 190, 44, 22
    end = _nice_top([value for _label, value in bars] + [limit])
    scale = (width - left - 60) / end
    bottom = top + row * max(len(bars), 1)
    body = []
    for tick in (0.0, end / 2, end):
        body.append(_line(left + tick * scale, top - 4, left + tick * scale, bottom, "grid"))
        body.append(_text(left + tick * scale, bottom + 16, f"{tick:g}", "axis-label", "middle"))
    body.append(_line(left, top - 4, left, bottom, "axis"))
    body.append(_text(width - 8, bottom + 16, _h(unit), "axis-label", "end"))
    if not bars:
        body.append(_text(left + 8, top + 15, "no databases in this run", "na"))
    for i, (label, value) in enumerate(bars):
        y = top + row * i
        body.append(_text(left - 6, y + 15, _h(_short(label)), anchor="end", tip=label))
        if value is None:
            body.append(_text(left + 6, y + 15, "n/a", "na"))
            continue
        css = "bad" if limit is not None and value > limit else "ok"
        body.append(
            f'<rect class="{css}" x="{left}" y="{y + 3}" width="{value * scale:.1f}" height="{row - 6}">'
            f"<title>{_h(label)}: {value:g} {_h(unit)}</title></rect>"
        )
        body.append(_text(left + value * scale + 4, y + 15, f"{value:g}"))
    if limit is not None:
        body.append(_line(left + limit * scale, top - 10, left + limit * scale, bottom, "limit"))
        body.append(_text(left + limit * scale, top - 14, f"max {limit:g} {_h(unit)}", "bad", "middle"))
    return _svg(width, bottom + 28, title, body)


def _run_label(x: float, y: float, run_id: str) -> str:
    """A run's date over its time, narrower than the run_id itself; an unexpected run_id is shown shortened."""
    match = RUN_ID.match(run_id)
    lines = [f"{'-'.join(match.groups()[:3])}", f"{':'.join(match.groups()[3:])}Z"] if match else [_short(run_id, 12)]
    spans = "".join(f'<tspan x="{x:.1f}" dy="{0 if n == 0 else 13}">{_h(text)}</tspan>' for n, text in enumerate(lines))
    return _text(x, y, spans, "axis-label", "middle", tip=run_id)


def _line_chart(title: str, unit: str, points: list[tuple[str, str, float | None]], limit: float | None) -> str:
    """One point per run (run_id, status, value) from left to right, a line through them, the limit dashed."""
    width, left, right, top, plot_h = 560, 56, 16, 46, 170
    height, end = top + plot_h + 40, _nice_top([point[2] for point in points] + [limit])
    slot = (width - left - right) / max(len(points), 1)

    def x_at(i: int) -> float:
        return left + slot * (i + 0.5)

    def y_at(value: float) -> float:
        return top + plot_h * (1 - value / end)

    body = []
    for tick in (0.0, end / 2, end):
        body.append(_line(left, y_at(tick), width - right, y_at(tick), "grid"))
        body.append(_text(left - 6, y_at(tick) + 4, f"{tick:g}", "axis-label", "end"))
    body.append(_line(left, top + plot_h, width - right, top + plot_h, "axis"))
    body.append(_text(left - 6, top - 14, _h(unit), "axis-label", "end"))
    if limit is not None:
        body.append(_line(left, y_at(limit), width - right, y_at(limit), "limit"))
        body.append(_text(width - right, y_at(limit) - 4, f"max {limit:g} {_h(unit)}", "bad", "end"))
    # A run without a number (every host unreachable) breaks the line rather than dropping it to zero.
    segment: list[str] = []
    for i, value in enumerate([*(point[2] for point in points), None]):
        if value is not None:
            segment.append(f"{x_at(i):.1f},{y_at(value):.1f}")
        else:
            if len(segment) > 1:
                body.append(f'<polyline class="line" points="{" ".join(segment)}"/>')
            segment = []
    # A run label is about 80 px wide: label every step-th run, and always the last, never two overlapping.
    step, last = math.ceil(85 / slot), len(points) - 1
    for i, (run_id, status, value) in enumerate(points):
        if value is None:
            body.append(_text(x_at(i), top + plot_h - 4, "n/a", "na", "middle"))
        else:
            css = "ok" if status == "pass" else "bad"
            body.append(
                f'<circle class="{css}" cx="{x_at(i):.1f}" cy="{y_at(value):.1f}" r="4">'
                f"<title>{_h(run_id)}: {value:g} {_h(unit)}</title></circle>"
            )
        if i == last or (i % step == 0 and last - i >= step):
            body.append(_run_label(x_at(i), height - 22, run_id))
    return _svg(width, height, title, body)


def _cells(result: dict[str, t.Any]) -> dict[str, t.Any]:
    """A result as the template shows it: every field present, names and numbers in their report form."""
    backup = _dict(result.get("backup"))
    return {
        "host": _name(result.get("host")),
        "database": _name(result.get("database")),
        "drill_host": _name(result.get("drill_host")),
        "status": _status(result),
        "reason": result.get("reason") or "no reason given",
        "rto_s": _fmt(result.get("rto_s")),
        "rpo_hours": _fmt(result.get("rpo_hours"), 2),
        "rows": _count(result.get("rows")),
        "tables": _count(result.get("tables")),
        "size": _size(backup.get("size")),
        "backup": backup.get("name") or "n/a",
        "failed_checks": ", ".join(_failed_checks(result)),
        "checks": [
            {"name": _name(c.get("name")), "passed": _passed(c), "detail": c.get("detail") or ""}
            for c in _dicts(result.get("checks"))
        ],
    }


def _charts(
    results: list[dict[str, t.Any]], trend: list[dict[str, t.Any]], limits: tuple[float | None, float | None]
) -> dict[str, Markup]:
    max_rto, max_rpo = limits
    labels = [f"{_name(r.get('host'))}/{_name(r.get('database'))}" for r in results]
    rto = [(label, _num(r.get("rto_s"))) for label, r in zip(labels, results)]
    rpo = [(label, _num(r.get("rpo_hours"))) for label, r in zip(labels, results)]
    charts = {
        "rto": _bar_chart("Restore time (RTO)", "s", rto, max_rto),
        "rpo": _bar_chart("Backup age (RPO)", "h", rpo, max_rpo),
        "rto_trend": _line_chart(
            "Max restore time (RTO) per run", "s", [(p["run_id"], p["status"], p["max_rto"]) for p in trend], max_rto
        ),
        "rpo_trend": _line_chart(
            "Max backup age (RPO) per run", "h", [(p["run_id"], p["status"], p["max_rpo"]) for p in trend], max_rpo
        ),
    }
    # Markup, so the template's autoescape leaves the SVG alone: _svg and its parts escaped every string as they drew.
    return {name: Markup(svg) for name, svg in charts.items()}  # noqa: S704


def drill_html_context(run: t.Any, history: t.Any = None) -> dict[str, t.Any]:
    """What the HTML template is given: the run's fields in their report form, and its charts as SVG."""
    run = _dict(run)
    results, summary = _dicts(run.get("results")), _summary(run)
    max_rto, max_rpo = _limits(run)
    trend = _trend(run, history)
    cells = [_cells(r) for r in results]
    return {
        "title": f"Restore drill {_name(run.get('run_id'))}: {str(summary.get('status')).upper()}",
        "run_id": _name(run.get("run_id")),
        "started_at": _name(run.get("started_at")),
        "finished_at": _name(run.get("finished_at")),
        "controller": _name(run.get("controller")),
        "summary": summary,
        "max_rto": _with_unit(max_rto, "s"),
        "max_rpo": _with_unit(max_rpo, "h", 2),
        "options": _options(run),
        "provenance": _provenance(run),
        "no_provenance": NO_PROVENANCE,
        "results": cells,
        "hosts": [(host, [c for c in cells if c["host"] == host]) for host in sorted({c["host"] for c in cells})],
        "failures": [c for c in cells if c["status"] != "pass"],
        "trend": [{**p, "max_rto": _fmt(p["max_rto"]), "max_rpo": _fmt(p["max_rpo"], 2)} for p in trend],
        "charts": _charts(results, trend, (max_rto, max_rpo)),
    }


def _environment(directory: Path) -> jinja2.Environment:
    # Autoescape whatever the template's name: a value from the run must never become markup in a restyled page.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["status_class"] = _css
    env.globals["MARKS"] = MARKS
    return env


def drill_html(run: t.Any, history: t.Any = None, template: str | None = None) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts, no links) with the content of drill_markdown,
    bar charts of this run's RTO and RPO per database and line charts of their trend over history, rendered from
    template (a Jinja2 file on the controller; the role's report.html.j2 when not given) with every value escaped."""
    path = Path(template) if template else HTML_TEMPLATE
    try:
        return _environment(path.parent).get_template(path.name).render(drill_html_context(run, history))
    except jinja2.TemplateNotFound:
        raise AnsibleFilterError(
            f"The HTML report's template {path} is not a file: set restore_drill_html_template to a copy of the "
            "role's templates/report.html.j2, or leave it empty for the role's."
        ) from None
    except jinja2.TemplateError as error:
        raise AnsibleFilterError(
            f"The HTML report's template {path} could not be rendered: {error} (line "
            f"{getattr(error, 'lineno', None) or '?'}). The role's templates/report.html.j2 lists what it is given."
        ) from None


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "drill_result": drill_result,
            "drill_summary": drill_summary,
            "drill_markdown": drill_markdown,
            "drill_html": drill_html,
        }
