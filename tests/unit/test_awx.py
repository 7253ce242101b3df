"""AWX / Automation Platform pieces: awx/config.yml, the wrapper playbooks, the schedules and the EE definition.

Nothing here talks to an AWX: the checks are the ones AWX and ansible-builder would make when the configuration is
applied or the image built, done on the files.
"""

from __future__ import annotations

import re
import subprocess
import sys
import typing as t
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from dateutil.rrule import rrulestr

from harness.paths import REPO

AWX = REPO / "awx"
# Every collection playbook has an AWX wrapper.
WRAPPERS = tuple(sorted(p.stem for p in (REPO / "playbooks").glob("*.yml")))
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|private_key|api_key", re.IGNORECASE)


class Unsafe(str):
    """A value tagged !unsafe: Ansible passes it on untemplated."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))  # type: ignore[arg-type]


def load(path: Path) -> t.Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader plus !unsafe


CONFIG: dict[str, t.Any] = load(AWX / "config.yml")
TEMPLATES: list[dict[str, t.Any]] = CONFIG["stackops_awx_job_templates"]
SCHEDULES: list[dict[str, t.Any]] = CONFIG["stackops_awx_schedules"]
WORKFLOWS: list[dict[str, t.Any]] = CONFIG["stackops_awx_workflow_job_templates"]
NOTIFIERS: list[dict[str, t.Any]] = CONFIG["stackops_awx_notification_templates"]
TEAMS: list[dict[str, t.Any]] = CONFIG["stackops_awx_teams"]
ROLES: list[dict[str, t.Any]] = CONFIG["stackops_awx_roles"]


def template_id(template: dict[str, t.Any]) -> str:
    return str(template["name"])


def imported_playbook(wrapper: Path) -> str:
    """The collection playbook a wrapper imports: its one play must be only a name and an import_playbook."""
    plays = load(wrapper)
    assert isinstance(plays, list) and len(plays) == 1, f"{wrapper.name}: one import_playbook entry expected"
    play = plays[0]
    assert set(play) == {"name", "ansible.builtin.import_playbook"}, f"{wrapper.name}: only name and import_playbook"
    target = play["ansible.builtin.import_playbook"]
    assert target.startswith("stackops.runbooks."), f"{wrapper.name} imports {target}, not a collection playbook"
    return str(target.removeprefix("stackops.runbooks."))


def collection_playbook(template: dict[str, t.Any]) -> Path:
    wrapper = REPO / template["playbook"]
    assert wrapper.parent == AWX / "playbooks", f"{template['name']}: playbook {template['playbook']} not a wrapper"
    assert wrapper.is_file(), f"{template['name']}: {template['playbook']} does not exist"
    return REPO / "playbooks" / f"{imported_playbook(wrapper)}.yml"


def _roles(node: t.Any) -> set[str]:
    """The collection roles a playbook runs: roles: entries, import_role and include_role tasks."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _roles(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("ansible.builtin.import_role", "ansible.builtin.include_role") and isinstance(value, dict):
                found.add(str(value["name"]))
            elif key == "roles":
                found |= {str(r["role"] if isinstance(r, dict) else r) for r in value}
            else:
                found |= _roles(value)
    return {name.removeprefix("stackops.runbooks.") for name in found}


def declared_variables(playbook: Path) -> set[str]:
    """What a template may set: the options of the playbook's roles' argument specs (every entry point) and the
    play-level variables its plays read in hosts/serial (`restore_drill_hosts | default(...)`)."""
    plays = load(playbook)
    names: set[str] = set()
    for role in _roles(plays):
        spec_file = REPO / "roles" / role / "meta" / "argument_specs.yml"
        assert spec_file.is_file(), f"{playbook.name} runs role {role}, which has no {spec_file.relative_to(REPO)}"
        for entry in load(spec_file)["argument_specs"].values():
            names |= set(entry.get("options") or {})
    for play in plays:
        for key in ("hosts", "serial"):
            names |= set(re.findall(r"([A-Za-z_]\w*)\s*\|\s*default", str(play.get(key, ""))))
    return names


def survey_questions(template: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    if not template.get("survey_enabled"):
        return []
    return list(template["survey_spec"]["spec"])


TEMPLATE_NAMES = {str(t["name"]): t for t in TEMPLATES}
WORKFLOW_NAMES = {str(w["name"]): w for w in WORKFLOWS}
NODE_TYPES = {"job_template", "workflow_job_template", "workflow_approval"}
EDGES = ("success_nodes", "failure_nodes", "always_nodes")


def template_running(playbook: str) -> dict[str, t.Any]:
    (template,) = [t for t in TEMPLATES if t["playbook"] == f"awx/playbooks/{playbook}.yml"]
    return template


def node_template(node: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """The job template a workflow node runs, or None for an approval or a workflow."""
    ujt = node["unified_job_template"]
    return TEMPLATE_NAMES.get(ujt["name"]) if ujt["type"] == "job_template" else None


def job_nodes(workflow: dict[str, t.Any]) -> list[tuple[dict[str, t.Any], dict[str, t.Any]]]:
    return [(n, tpl) for n in workflow["workflow_nodes"] if (tpl := node_template(n)) is not None]


def playbooks_of(workflow: dict[str, t.Any]) -> set[str]:
    return {Path(tpl["playbook"]).stem for node, tpl in job_nodes(workflow)}


def workflow_variables(workflow: dict[str, t.Any]) -> set[str]:
    """What a workflow gives every job in it: AWX passes its extra vars and survey answers to each job, whatever
    the job's template prompts for (awx/main/models/workflow.py, WorkflowJobNode.get_job_kwargs)."""
    return set(workflow.get("extra_vars") or {}) | {q["variable"] for q in survey_questions(workflow)}


def followers(node: dict[str, t.Any]) -> list[tuple[str, str]]:
    """(edge, identifier) of each node that follows `node`."""
    related = node.get("related") or {}
    return [(edge, str(child["identifier"])) for edge in EDGES for child in related.get(edge) or []]


def children(node: dict[str, t.Any]) -> list[str]:
    return [child for edge, child in followers(node)]


def node_of(workflow: dict[str, t.Any], identifier: str) -> dict[str, t.Any]:
    (node,) = [n for n in workflow["workflow_nodes"] if n["identifier"] == identifier]
    return node


# Wrappers and the playbooks they import


@pytest.mark.parametrize("name", WRAPPERS)
def test_wrapper_imports_an_existing_collection_playbook(name: str) -> None:
    wrapper = AWX / "playbooks" / f"{name}.yml"
    assert wrapper.is_file(), f"awx/playbooks/{name}.yml is missing"
    target = imported_playbook(wrapper)
    assert target == name, f"awx/playbooks/{name}.yml imports stackops.runbooks.{target}"
    assert (REPO / "playbooks" / f"{name}.yml").is_file(), f"playbooks/{name}.yml does not exist (yet)"


def test_every_wrapper_is_listed() -> None:
    assert {p.stem for p in (AWX / "playbooks").glob("*.yml")} == set(WRAPPERS)


@pytest.mark.parametrize("template", TEMPLATES, ids=template_id)
def test_template_runs_an_existing_playbook(template: dict[str, t.Any]) -> None:
    playbook = collection_playbook(template)
    assert playbook.is_file(), f"{template['name']}: {playbook.relative_to(REPO)} does not exist (yet)"


@pytest.mark.parametrize("template", TEMPLATES, ids=template_id)
def test_template_sets_only_variables_the_playbook_declares(template: dict[str, t.Any]) -> None:
    declared = declared_variables(collection_playbook(template))
    given = {q["variable"] for q in survey_questions(template)} | set(template.get("extra_vars") or {})
    unknown = given - declared
    assert not unknown, f"{template['name']} sets {sorted(unknown)}, which its playbook's roles do not declare"


def test_template_names_are_unique() -> None:
    names = [template["name"] for template in TEMPLATES]
    assert len(names) == len(set(names))


# Surveys, in AWX's survey_spec format


@pytest.mark.parametrize("template", [t for t in [*TEMPLATES, *WORKFLOWS] if t.get("survey_enabled")], ids=template_id)
def test_survey_spec_is_valid(template: dict[str, t.Any]) -> None:
    spec = template["survey_spec"]
    assert isinstance(spec.get("name"), str) and isinstance(spec.get("description"), str)
    variables = [q["variable"] for q in spec["spec"]]
    assert len(variables) == len(set(variables)), f"{template['name']}: a variable is asked twice"
    for question in spec["spec"]:
        label = f"{template['name']}: {question.get('variable')}"
        assert {"question_name", "variable", "type", "required"} <= set(question), label
        assert question["type"] in SURVEY_TYPES, label
        assert isinstance(question["required"], bool), label
        assert question["type"] != "password", f"{label}: secrets come from credentials, not surveys"
        assert not SECRET_KEY.search(question["variable"]), f"{label}: secrets come from credentials, not surveys"
        default = question.get("default")
        if question["type"] == "multiplechoice":
            assert default in question["choices"], f"{label}: default {default!r} is not a choice"
        elif question["type"] == "multiselect":
            assert all(d in question["choices"] for d in str(default or "").splitlines()), label
        elif question["type"] == "integer":
            assert isinstance(default, int) and question["min"] <= default <= question["max"], label
        elif question["type"] in ("text", "textarea") and default not in ("", None):
            assert question.get("min", 0) <= len(default) <= question.get("max", 1024), label


def test_restore_asks_for_its_host_and_confirmation() -> None:
    restore = next(t for t in TEMPLATES if t["playbook"] == "awx/playbooks/restore.yml")
    questions = {q["variable"]: q for q in survey_questions(restore)}
    assert restore["ask_limit_on_launch"] is True
    assert questions["restore_hosts"]["required"] and not questions["restore_hosts"].get("default")
    confirm = questions["restore_confirm"]
    assert confirm["required"] and confirm["default"] == "no", "a restore must never be confirmed by default"
    assert {"restore_src", "restore_pick"} <= set(questions)


def test_drill_survey_asks_what_the_brief_names() -> None:
    drill = next(t for t in TEMPLATES if t["playbook"] == "awx/playbooks/restore_drill.yml")
    assert {q["variable"] for q in survey_questions(drill)} == {
        "restore_drill_fresh_backup",
        "restore_drill_negative_control",
        "restore_drill_max_rto_s",
        "restore_drill_max_rpo_hours",
    }
    assert drill.get("job_slice_count", 1) >= 1


# The templates that run over the whole fleet, with forks and slices from bench/fleet.py (docs/awx.md).
FLEET_TEMPLATES = ("stackops health check", "stackops backup", "stackops restore drill")


@pytest.mark.parametrize("name", FLEET_TEMPLATES)
def test_fleet_templates_set_forks_and_one_slice(name: str) -> None:
    template = TEMPLATE_NAMES[name]
    forks = template.get("forks")
    assert isinstance(forks, int) and not isinstance(forks, bool) and 1 <= forks <= 50, f"{name}: forks {forks!r}"
    assert template.get("job_slice_count") == 1, f"{name}: one job covers 100 hosts well within its timeout"
    task = next(task for task, module in AWX_TASKS if module == "job_template")
    assert task["awx.awx.job_template"]["forks"] == "{{ item.forks | default(omit) }}", "configure.yml passes forks"


def test_drill_forks_never_cut_a_batch_of_its_serial() -> None:
    serial = re.search(r"restore_drill_serial \| default\((\d+)\)", (REPO / "playbooks/restore_drill.yml").read_text())
    assert serial
    drill = TEMPLATE_NAMES["stackops restore drill"]
    assert drill["forks"] >= int(drill["extra_vars"].get("restore_drill_serial", serial.group(1)))


# Schedules


def awx_rrule_errors(rrule: str) -> list[str]:
    """The checks AWX's schedule serializer makes before it parses a rule (awx/api/serializers.py)."""
    errors = []
    starts = re.findall(r"DTSTART(;[^:]+)?:([0-9]{8}T[0-9]{6}Z?)", rrule)
    if len(starts) != 1:
        errors.append("exactly one DTSTART:YYYYMMDDTHHMMSSZ is needed")
    elif not starts[0][0] and not starts[0][1].endswith("Z"):
        errors.append("DTSTART needs a time zone (a Z or ;TZID=)")
    elif starts[0][0] and starts[0][1].endswith("Z"):
        errors.append("DTSTART has both a TZID and a Z")
    rules = re.findall(r"RRULE:(\S+)", rrule)
    if not rules:
        errors.append("no RRULE")
    for rule in rules:
        parts = dict(part.split("=", 1) for part in rule.split(";"))
        if "INTERVAL" not in parts:
            errors.append(f"{rule}: INTERVAL is required")
        if parts.get("FREQ") not in {"MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"}:
            errors.append(f"{rule}: FREQ {parts.get('FREQ')} is not supported")
        if re.search(r"(^|,)[-+]?[0-9]+[A-Z]{2}", parts.get("BYDAY", "")):
            errors.append(f"{rule}: BYDAY with a numeric prefix is refused (use BYSETPOS)")
        if "," in parts.get("BYMONTHDAY", "") or "," in parts.get("BYMONTH", ""):
            errors.append(f"{rule}: several BYMONTHDAYs or BYMONTHs are refused")
        if {"BYYEARDAY", "BYWEEKNO"} & set(parts) or {"COUNT", "UNTIL"} <= set(parts):
            errors.append(f"{rule}: BYYEARDAY, BYWEEKNO and COUNT with UNTIL are refused")
    return errors


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: str(s["name"]))
def test_schedule_rrule_is_accepted_and_fires(schedule: dict[str, t.Any]) -> None:
    rrule = schedule["rrule"]
    assert not awx_rrule_errors(rrule), f"{schedule['name']}: {awx_rrule_errors(rrule)}"
    # AWX separates DTSTART and RRULE with a space; dateutil wants lines.
    occurrences = rrulestr(rrule.replace(" ", "\n"))
    assert occurrences[0] is not None and occurrences[1] > occurrences[0], schedule["name"]


def test_the_schedules_the_runbooks_need() -> None:
    by_template = {s["unified_job_template"]: s["rrule"] for s in SCHEDULES}
    names = {t["name"] for t in [*TEMPLATES, *WORKFLOWS]}
    assert set(by_template) <= names, f"schedules of unknown templates: {set(by_template) - names}"
    health = template_running("health_check")["name"]
    window = template_running("maintenance_window")["name"]
    # One backup every night at 02:00: the backup template's six nights, and Sunday's in the workflow that drills it,
    # so the fleet-wide drill runs weekly. The drill has no schedule of its own: it always follows a fresh backup.
    drilled = next(w for w in WORKFLOWS if playbooks_of(w) == {"backup", "restore_drill"})
    backups = [by_template[template_running("backup")["name"]], by_template[drilled["name"]]]
    march = (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 8, tzinfo=UTC))
    week = [when for rule in backups for when in rrulestr(rule.replace(" ", "\n")).between(*march, inc=True)]
    nights = sorted((when.date(), when.hour, when.minute) for when in week)
    assert nights == [(date(2027, 3, day), 2, 0) for day in range(1, 8)], f"not one backup each night: {week}"
    assert [w.weekday() for w in rrulestr(backups[1].replace(" ", "\n"))[:2]] == [6, 6], "the drill runs on Sundays"
    assert template_running("restore_drill")["name"] not in by_template
    assert re.search(r"FREQ=(HOURLY|DAILY)", by_template[health])
    assert "FREQ=MONTHLY" in by_template[window] and "BYDAY=SU;BYSETPOS=1" in by_template[window]


def launch_problems(template: dict[str, t.Any], given: set[str], label: str) -> list[str]:
    """What keeps a job of `template` from starting unattended with the variables `given` besides its own."""
    problems = []
    for question in survey_questions(template):
        answered = question["variable"] in given or question.get("default") not in (None, "")
        if question["required"] and not answered:
            problems.append(f"{label}: required question {question['variable']} has no answer for unattended runs")
    return problems


def accepted_variables(template: dict[str, t.Any]) -> set[str]:
    """The variables AWX takes from a schedule's extra_data or a workflow node's extra_data (others are refused or
    dropped): the survey's, or any the playbook declares when the template asks for variables."""
    allowed = {q["variable"] for q in survey_questions(template)}
    if template.get("ask_variables_on_launch"):
        allowed |= declared_variables(collection_playbook(template))
    return allowed


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: str(s["name"]))
def test_scheduled_jobs_never_wait_for_an_answer(schedule: dict[str, t.Any]) -> None:
    name = schedule["unified_job_template"]
    extra = set(schedule.get("extra_data") or {})
    if name in WORKFLOW_NAMES:
        workflow = WORKFLOW_NAMES[name]
        assert not survey_questions(workflow) or not launch_problems(workflow, extra, schedule["name"])
        assert (
            not extra
            or workflow.get("ask_variables_on_launch")
            or extra <= {q["variable"] for q in survey_questions(workflow)}
        ), f"{schedule['name']}: AWX refuses extra_data {sorted(extra)} without a prompt"
        for node, template in job_nodes(workflow):
            given = extra | workflow_variables(workflow) | set(node.get("extra_data") or {})
            problems = launch_problems(template, given, f"{schedule['name']} -> {node['identifier']}")
            assert not problems, problems
        return
    template = TEMPLATE_NAMES[name]
    problems = launch_problems(template, set(), schedule["name"])
    assert not problems, problems
    allowed = accepted_variables(template)
    assert extra <= allowed, f"{schedule['name']}: AWX refuses extra_data {sorted(extra - allowed)} without a prompt"


# Credentials


def _walk(node: t.Any, path: str = "") -> t.Iterator[tuple[str, str, t.Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, str(key), value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]")


ENV_NAME = re.compile(r"STACKOPS_AWX_[A-Z0-9_]+")


def test_no_credential_value_is_written_in_the_config() -> None:
    field_ids = {f["id"] for ct in CONFIG["stackops_awx_credential_types"] for f in ct["inputs"]["fields"]}
    for path, key, value in _walk(CONFIG):
        if not SECRET_KEY.search(key) or isinstance(value, bool) or value in ("", None):
            continue
        # A notification's secret is named by the environment variable configure.yml reads it from.
        if path.endswith(".from_environment"):
            assert isinstance(value, str) and ENV_NAME.fullmatch(value), f"{path}.{key}: not an environment variable"
            continue
        # The only secret-named values allowed are injector templates naming one of the type's input fields.
        assert isinstance(value, Unsafe), f"{path}.{key}: a secret value in awx/config.yml"
        assert re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", value) and value.strip("{} ") in field_ids, f"{path}.{key}"
    assert all(isinstance(name, str) for name in CONFIG["stackops_awx_credentials"])


def test_secrets_credential_type_injects_the_stack_passwords() -> None:
    (secrets,) = [ct for ct in CONFIG["stackops_awx_credential_types"] if ct["name"] == "stackops secrets"]
    assert set(secrets["injectors"]["extra_vars"]) == {"stackops_pg_password", "stackops_redis_password"}
    for field in secrets["inputs"]["fields"]:
        assert field["secret"] is True and "default" not in field, field["id"]
    assert "stackops secrets" in CONFIG["stackops_awx_credentials"]


# Unattended runs


def _prompts(node: t.Any) -> list[str]:
    found = []
    if isinstance(node, list):
        for item in node:
            found += _prompts(item)
    elif isinstance(node, dict):
        if "vars_prompt" in node:
            found.append("vars_prompt")
        found += [key for key in node if key in ("pause", "ansible.builtin.pause", "ansible.legacy.pause")]
        for value in node.values():
            found += _prompts(value)
    return found


@pytest.mark.parametrize(
    "path",
    sorted([*(REPO / "playbooks").glob("*.yml"), *AWX.rglob("*.yml")]),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_playbooks_never_prompt(path: Path) -> None:
    assert not _prompts(load(path)), f"{path.relative_to(REPO)} would wait for an answer in an unattended job"


# Execution environment and project sync


EE_FILE = REPO / "execution-environment.yml"


def test_execution_environment_is_v3_and_its_files_exist() -> None:
    ee = load(EE_FILE)
    assert ee["version"] == 3
    deps = ee["dependencies"]
    for kind in ("galaxy", "python", "system"):
        assert isinstance(deps[kind], str), f"dependencies.{kind} should name a file"
        assert (EE_FILE.parent / deps[kind]).is_file(), f"dependencies.{kind}: {deps[kind]} does not exist"
    assert deps["ansible_core"]["package_pip"].startswith("ansible-core")
    for extra in ee.get("additional_build_files") or []:
        assert list(EE_FILE.parent.glob(extra["src"])), f"additional_build_files: {extra['src']} does not exist"
    meta = load(REPO / "meta" / "execution-environment.yml")["dependencies"]
    assert (deps["python"], deps["system"]) == (meta["python"], meta["system"]), "the EE and meta/ name other files"


def test_collection_requirements_install_this_collection() -> None:
    requirements = load(REPO / "collections" / "requirements.yml")["collections"]
    repository = load(REPO / "galaxy.yml")["repository"]
    (ours,) = [c for c in requirements if repository.rstrip("/") in c["name"]]
    assert ours["type"] == "git" and ours["version"], ours
    assert load(EE_FILE)["dependencies"]["galaxy"] == "collections/requirements.yml"


def test_collection_versions_are_pinned_exactly() -> None:
    requirements = {c["name"]: c for c in load(REPO / "collections" / "requirements.yml")["collections"]}
    for name, entry in requirements.items():
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", str(entry.get("version", ""))), (
            f"{name}: version {entry.get('version')!r} is not one exact release (a range or a branch moves)"
        )
    # The option lists below were written from this release's module documentation.
    assert requirements["awx.awx"]["version"] == AWX_COLLECTION_VERSION
    galaxy = load(REPO / "galaxy.yml")
    (ours,) = [c for name, c in requirements.items() if galaxy["repository"].rstrip("/") in name]
    assert str(ours["version"]) == galaxy["version"], "the EE and the project sync install another release"
    image = CONFIG["stackops_awx_execution_environment"]["image"]
    assert image.rsplit(":", 1)[1] == galaxy["version"], f"{image} is not tagged with the collection's release"


def test_ansible_builder_creates_the_build_context(tmp_path: Path) -> None:
    context = tmp_path / "context"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ansible_builder",
            "create",
            "-f",
            str(EE_FILE),
            "--context",
            str(context),
            "--output-filename",
            "Containerfile",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text()
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    for name, source in (
        ("requirements.txt", "requirements.txt"),
        ("bindep.txt", "bindep.txt"),
        ("requirements.yml", "collections/requirements.yml"),
    ):
        assert (context / "_build" / name).read_text() == (REPO / source).read_text(), name


# Timeouts


@pytest.mark.parametrize("template", TEMPLATES, ids=template_id)
def test_every_job_template_has_a_timeout(template: dict[str, t.Any]) -> None:
    timeout = template.get("timeout")
    assert isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0, (
        f"{template['name']}: timeout {timeout!r}; 0 or none lets a hung job hold its hosts for ever"
    )


def longest_run(name: str) -> int:
    """The longest a job template or workflow may run: its timeout, or a workflow's longest chain of node timeouts
    (approvals count their own timeout)."""
    if name in TEMPLATE_NAMES:
        return int(TEMPLATE_NAMES[name]["timeout"])
    nodes = {n["identifier"]: n for n in WORKFLOW_NAMES[name]["workflow_nodes"]}

    def from_node(identifier: str) -> int:
        ujt = nodes[identifier]["unified_job_template"]
        own = int(ujt["timeout"]) if ujt["type"] == "workflow_approval" else longest_run(ujt["name"])
        return own + max((from_node(child) for child in children(nodes[identifier])), default=0)

    return max(from_node(identifier) for identifier in nodes)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: str(s["name"]))
def test_a_scheduled_run_ends_before_the_next_starts(schedule: dict[str, t.Any]) -> None:
    occurrences = rrulestr(schedule["rrule"].replace(" ", "\n"))
    period = (occurrences[1] - occurrences[0]).total_seconds()
    longest = longest_run(schedule["unified_job_template"])
    assert longest < period, f"{schedule['name']}: may run {longest} s, every {period:.0f} s: runs would pile up"


# The async limits docs/awx.md suggests for multi-hour runs ("Multi-hour dumps and restores"), and how many limited
# steps one job may run one after the other on a host: the restore verifies, then restores; a drill host may take a
# fresh backup, then restore.
ASYNC_STEPS = {"backup": 1, "restore": 2, "restore drill": 2}
ASYNC_ROW = re.compile(r"^\| (?P<template>[a-z ]+) \| `(?P<option>\w+_async): (?P<limit>\d+)` \| (?P<timeout>\d+) ")


def documented_async_limits(text: str) -> dict[str, tuple[str, int, int]]:
    """The suggested-limit table's rows: template -> (option, limit, the timeout the row quotes)."""
    return {
        m["template"]: (m["option"], int(m["limit"]), int(m["timeout"]))
        for m in (ASYNC_ROW.match(line) for line in text.splitlines())
        if m
    }


def test_the_documented_async_limits_fit_in_the_job_timeouts() -> None:
    """AWX cancels a job at its timeout: an async step must be killed (and reported) by its own limit first, and the
    page must quote the template's real timeout."""
    rows = documented_async_limits((REPO / "docs" / "awx.md").read_text(encoding="utf-8"))
    assert set(rows) == set(ASYNC_STEPS), rows
    for name, (option, limit, quoted) in rows.items():
        timeout = int(TEMPLATE_NAMES[f"stackops {name}"]["timeout"])
        assert quoted == timeout, f"docs/awx.md quotes {quoted} s for {name}; awx/config.yml has {timeout}"
        assert limit * ASYNC_STEPS[name] < timeout, f"{name}: {ASYNC_STEPS[name]} x {option} {limit} >= {timeout}"


@pytest.mark.parametrize("template", TEMPLATES, ids=template_id)
def test_a_job_template_outlives_the_async_limits_it_sets(template: dict[str, t.Any]) -> None:
    name = str(template["name"]).removeprefix("stackops ")
    limits = {k: int(v) for k, v in (template.get("extra_vars") or {}).items() if k.endswith("_async")}
    for option, limit in limits.items():
        assert limit * ASYNC_STEPS.get(name, 1) < int(template["timeout"]), (
            f"{template['name']}: {option} {limit} does not fit in its timeout {template['timeout']}"
        )


# Notifications


NOTIFICATION_FIELDS = {
    # The fields of AWX's notification backends (awx/main/notifications/*_backend.py, init_parameters, 24.6.1),
    # and which of them AWX keeps encrypted.
    "webhook": {"url", "http_method", "disable_ssl_verification", "username", "password", "headers"},
    "email": {"host", "port", "username", "password", "use_tls", "use_ssl", "sender", "recipients", "timeout"},
}
NOTIFICATION_SECRETS = {"password"}


@pytest.mark.parametrize("notifier", NOTIFIERS, ids=lambda n: str(n["name"]))
def test_notification_template_is_valid(notifier: dict[str, t.Any]) -> None:
    kind = notifier["notification_type"]
    assert kind in NOTIFICATION_FIELDS, f"{notifier['name']}: type {kind}"
    given = set(notifier["notification_configuration"])
    from_env = set(notifier.get("from_environment") or {})
    assert given <= NOTIFICATION_FIELDS[kind], f"{notifier['name']}: unknown fields {given - NOTIFICATION_FIELDS[kind]}"
    assert not given & NOTIFICATION_SECRETS, f"{notifier['name']}: a secret field is written in the file"
    assert from_env <= NOTIFICATION_FIELDS[kind] & NOTIFICATION_SECRETS, f"{notifier['name']}: {from_env}"
    assert not from_env & given, f"{notifier['name']}: a field both written and read from the environment"
    if kind == "webhook":
        assert notifier["notification_configuration"]["url"].startswith("https://"), "the password goes over TLS"
    if kind == "email":
        config = notifier["notification_configuration"]
        assert config["recipients"] and config["sender"] and (config["use_tls"] or config["use_ssl"])


def test_notification_names_are_unique_and_both_kinds_exist() -> None:
    names = [n["name"] for n in NOTIFIERS]
    assert len(names) == len(set(names))
    assert {n["notification_type"] for n in NOTIFIERS} == {"webhook", "email"}


NOTIFY_KEYS = ("notification_templates_error", "notification_templates_started", "notification_templates_success")


@pytest.mark.parametrize("owner", [*TEMPLATES, *WORKFLOWS], ids=template_id)
def test_named_notification_templates_exist(owner: dict[str, t.Any]) -> None:
    known = {n["name"] for n in NOTIFIERS}
    for key in (*NOTIFY_KEYS, "notification_templates_approvals"):
        unknown = set(owner.get(key) or []) - known
        assert not unknown, f"{owner['name']}.{key} names unknown notification templates {sorted(unknown)}"


@pytest.mark.parametrize(
    "playbook", ["backup", "restore_drill", "health_check", "routine_daily", "routine_weekly", "routine_monthly"]
)
def test_failures_of_unattended_jobs_notify(playbook: str) -> None:
    assert template_running(playbook).get("notification_templates_error"), f"a failed {playbook} tells nobody"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=template_id)
def test_workflows_notify_on_failure_and_on_approval(workflow: dict[str, t.Any]) -> None:
    assert workflow.get("notification_templates_error"), f"{workflow['name']}: a failed workflow tells nobody"
    if any(n["unified_job_template"]["type"] == "workflow_approval" for n in workflow["workflow_nodes"]):
        assert workflow.get("notification_templates_approvals"), f"{workflow['name']}: nobody hears of its approval"


# Workflows


def test_template_and_workflow_names_are_unique() -> None:
    # Schedules and workflow nodes find both kinds by name among AWX's unified job templates.
    names = [str(x["name"]) for x in [*TEMPLATES, *WORKFLOWS]]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=template_id)
def test_workflow_nodes_resolve(workflow: dict[str, t.Any]) -> None:
    identifiers = [str(n["identifier"]) for n in workflow["workflow_nodes"]]
    assert len(identifiers) == len(set(identifiers)), f"{workflow['name']}: an identifier is used twice"
    earlier = [w["name"] for w in WORKFLOWS[: WORKFLOWS.index(workflow)]]
    for node in workflow["workflow_nodes"]:
        label = f"{workflow['name']} -> {node['identifier']}"
        ujt = node["unified_job_template"]
        assert ujt["type"] in NODE_TYPES, f"{label}: type {ujt['type']}"
        if ujt["type"] == "job_template":
            assert ujt["name"] in TEMPLATE_NAMES, f"{label}: no job template {ujt['name']}"
        elif ujt["type"] == "workflow_job_template":
            # configure.yml creates the workflows in list order: a workflow must exist before one runs it.
            assert ujt["name"] in earlier, f"{label}: workflow {ujt['name']} is not defined before {workflow['name']}"
        else:
            assert ujt["name"] and isinstance(ujt.get("timeout"), int) and ujt["timeout"] > 0, (
                f"{label}: an approval needs a name and a timeout, or it waits for ever"
            )
        if ujt["type"] != "workflow_approval":
            assert ujt["organization"]["name"] == CONFIG["stackops_awx_organization"]["name"], label
        assert set(node.get("related") or {}) <= set(EDGES), f"{label}: {set(node.get('related') or {})}"
        for edge, child in followers(node):
            assert child in identifiers, f"{label}: {edge} names no node {child}"
            assert child != node["identifier"], f"{label}: follows itself"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=template_id)
def test_workflow_has_no_cycle(workflow: dict[str, t.Any]) -> None:
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    done: set[str] = set()

    def visit(identifier: str, path: tuple[str, ...]) -> None:
        assert identifier not in path, f"{workflow['name']}: cycle {' -> '.join((*path, identifier))}"
        if identifier in done:
            return
        for child in children(nodes[identifier]):
            visit(child, (*path, identifier))
        done.add(identifier)

    for identifier in nodes:
        visit(identifier, ())


def reached_without_approval(workflow: dict[str, t.Any]) -> set[str]:
    """The nodes some path from a start node reaches without passing an approval node."""
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    followed = {child for n in nodes.values() for child in children(n)}
    reached: set[str] = set()
    stack = [i for i in nodes if i not in followed]
    while stack:
        identifier = stack.pop()
        if identifier in reached or nodes[identifier]["unified_job_template"]["type"] == "workflow_approval":
            continue
        reached.add(identifier)
        stack += children(nodes[identifier])
    return reached


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=template_id)
def test_an_approval_precedes_every_restore_and_rollback(workflow: dict[str, t.Any]) -> None:
    gated = {"restore", "rollback"}
    unguarded = {
        node["identifier"]
        for node, template in job_nodes(workflow)
        if Path(template["playbook"]).stem in gated and node["identifier"] in reached_without_approval(workflow)
    }
    assert not unguarded, f"{workflow['name']}: {sorted(unguarded)} can run with nobody approving"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=template_id)
def test_workflow_jobs_can_start(workflow: dict[str, t.Any]) -> None:
    for node, template in job_nodes(workflow):
        label = f"{workflow['name']} -> {node['identifier']}"
        extra = set(node.get("extra_data") or {})
        assert extra <= accepted_variables(template), (
            f"{label}: AWX drops extra_data {extra - accepted_variables(template)}"
        )
        problems = launch_problems(template, extra | workflow_variables(workflow), label)
        assert not problems, problems


def test_a_workflow_that_rolls_back_gives_no_variables() -> None:
    # A workflow's variables reach every job in it over the job's own. The rollback's image step deploys the
    # release's previous image through the deploy role: a deploy_image from the workflow would override it, and the
    # failing image would be deployed again. A workflow with no survey and no variables drops its caller's.
    rollback = template_running("rollback")["name"]
    for workflow in WORKFLOWS:
        if any(node_template(n) is TEMPLATE_NAMES[rollback] for n in workflow["workflow_nodes"]):
            assert not workflow_variables(workflow) and not workflow.get("ask_variables_on_launch"), workflow["name"]


def edges_between(workflow: dict[str, t.Any], parent: str, child: str) -> set[str]:
    return {edge for edge, follower in followers(node_of(workflow, parent)) if follower == child}


def node_running(workflow: dict[str, t.Any], name: str) -> str:
    (identifier,) = [n["identifier"] for n in workflow["workflow_nodes"] if n["unified_job_template"]["name"] == name]
    return str(identifier)


def test_the_workflows_the_runbooks_need() -> None:
    # Nightly: the drill only after a backup that succeeded.
    nightly = next(w for w in WORKFLOWS if playbooks_of(w) == {"backup", "restore_drill"})
    backup = node_running(nightly, template_running("backup")["name"])
    drill = node_running(nightly, template_running("restore_drill")["name"])
    assert edges_between(nightly, backup, drill) == {"success_nodes"}
    assert all(drill not in children(n) for n in nightly["workflow_nodes"] if n["identifier"] != backup)
    # Deploy: the health check after a deploy that succeeded; a failed check goes to the approved rollback. A failed
    # deploy undoes itself (roles/deploy/tasks/rescue.yml) and marks its release failed, so nothing follows it: a
    # rollback would go back past the last good release.
    deploy_flow = next(w for w in WORKFLOWS if "deploy" in playbooks_of(w))
    deploy = node_running(deploy_flow, template_running("deploy")["name"])
    health = node_running(deploy_flow, template_running("health_check")["name"])
    assert followers(node_of(deploy_flow, deploy)) == [("success_nodes", health)]
    (edge, after_health), *rest = followers(node_of(deploy_flow, health))
    assert edge == "failure_nodes" and not rest
    nested = node_of(deploy_flow, after_health)["unified_job_template"]
    assert nested["type"] == "workflow_job_template"
    assert "rollback" in playbooks_of(WORKFLOW_NAMES[nested["name"]])


# Teams and roles


ROLE_TARGETS = {
    # awx.awx.role's object options used here, and the roles that make sense on each (awx.awx 24.6.1 role choices).
    "job_templates": {"execute", "read", "admin"},
    "workflows": {"execute", "read", "approval", "admin"},
    "organizations": {"auditor", "read", "member", "execute", "approval"},
}


def test_team_names_are_unique() -> None:
    names = [team["name"] for team in TEAMS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("grant", ROLES, ids=lambda r: f"{'+'.join(r['teams'])}:{r['role']}")
def test_role_names_existing_teams_and_objects(grant: dict[str, t.Any]) -> None:
    teams = {team["name"] for team in TEAMS}
    assert grant["teams"] and set(grant["teams"]) <= teams, f"unknown teams {set(grant['teams']) - teams}"
    objects = {"job_templates": set(TEMPLATE_NAMES), "workflows": set(WORKFLOW_NAMES)}
    objects["organizations"] = {CONFIG["stackops_awx_organization"]["name"]}
    targets = [key for key in ROLE_TARGETS if key in grant]
    assert targets, f"{grant}: on nothing"
    for key in targets:
        assert grant["role"] in ROLE_TARGETS[key], f"role {grant['role']} on {key}"
        unknown = set(grant[key]) - objects[key]
        assert not unknown, f"{grant['teams']}: {grant['role']} on unknown {key} {sorted(unknown)}"
    if grant["role"] == "approval":
        for name in grant["workflows"]:
            assert any(
                n["unified_job_template"]["type"] == "workflow_approval" for n in WORKFLOW_NAMES[name]["workflow_nodes"]
            ), f"approval on {name}, which has no approval node"


def granted(role: str, key: str) -> dict[str, set[str]]:
    """Object name -> the teams that have `role` on it."""
    found: dict[str, set[str]] = {}
    for grant in ROLES:
        if grant["role"] == role:
            for name in grant.get(key) or []:
                found.setdefault(name, set()).update(grant["teams"])
    return found


def test_roles_follow_least_privilege() -> None:
    assert not [g for g in ROLES if g["role"] == "admin"], "nobody administers through config.yml"
    execute = granted("execute", "job_templates")
    # restore and rollback run only through the workflows that hold an approval.
    for playbook in ("restore", "rollback"):
        assert template_running(playbook)["name"] not in execute, f"a team may {playbook} with nobody approving"
    # Every approval has approvers, and none approves what it alone launched.
    approvers = granted("approval", "workflows")
    launchers = granted("execute", "workflows")
    for workflow in WORKFLOWS:
        if any(n["unified_job_template"]["type"] == "workflow_approval" for n in workflow["workflow_nodes"]):
            assert approvers.get(workflow["name"]), f"{workflow['name']}: nobody may approve it"
            assert not approvers[workflow["name"]] & launchers.get(workflow["name"], set()), (
                f"{workflow['name']}: the team that launches it approves it"
            )
    # Auditors read: an organization auditor and nothing else.
    for grant in ROLES:
        if "stackops auditors" in grant["teams"]:
            assert grant["role"] == "auditor" and set(grant) == {"teams", "role", "organizations"}, grant


# Inventory source


def test_inventory_source_reads_the_projects_inventory() -> None:
    source = CONFIG["stackops_awx_inventory_source"]
    assert source["inventory"] == CONFIG["stackops_awx_inventory"]
    assert source["source"] == "scm" and source["source_project"] == CONFIG["stackops_awx_project"]["name"]
    assert source["update_on_launch"] is True and source["timeout"] > 0
    hosts = REPO / source["source_path"]
    assert hosts.is_file(), f"{source['source_path']} is not in the project"
    groups = load(hosts)["all"]["children"]
    assert {"stack", "drill"} <= set(groups), "the templates' plays target groups stack and drill"


# configure.yml against the awx.awx modules


def options(names: str) -> set[str]:
    return set(names.split())


AWX_COLLECTION_VERSION = "24.6.1"
# The options of each module configure.yml calls, from the DOCUMENTATION of awx.awx 24.6.1
# (awx_collection/plugins/modules/<module>.py at tag 24.6.1), without the connection options of awx.awx.auth.
MODULE_OPTIONS: dict[str, set[str]] = {
    "organization": options(
        "custom_virtualenv default_environment description galaxy_credentials instance_groups max_hosts name new_name "
        "notification_templates_approvals notification_templates_error notification_templates_started "
        "notification_templates_success state"
    ),
    "execution_environment": options("credential description image name new_name organization pull state"),
    "credential_type": options("description injectors inputs kind name new_name state"),
    "project": options(
        "allow_override copy_from credential custom_virtualenv default_environment description interval local_path "
        "name new_name notification_templates_error notification_templates_started notification_templates_success "
        "organization scm_branch scm_clean scm_delete_on_update scm_refspec scm_track_submodules scm_type "
        "scm_update_cache_timeout scm_update_on_launch scm_url signature_validation_credential state timeout "
        "update_project wait"
    ),
    "inventory": options(
        "copy_from description host_filter input_inventories instance_groups kind name new_name organization "
        "prevent_instance_group_fallback state variables"
    ),
    "inventory_source": options(
        "credential custom_virtualenv description enabled_value enabled_var execution_environment host_filter "
        "inventory limit name new_name notification_templates_error notification_templates_started "
        "notification_templates_success organization overwrite overwrite_vars scm_branch source source_path "
        "source_project source_vars state timeout update_cache_timeout update_on_launch verbosity"
    ),
    "notification_template": options(
        "copy_from description messages name new_name notification_configuration notification_type organization state"
    ),
    "job_template": options(
        "allow_simultaneous ask_credential_on_launch ask_diff_mode_on_launch ask_execution_environment_on_launch "
        "ask_forks_on_launch ask_instance_groups_on_launch ask_inventory_on_launch ask_job_slice_count_on_launch "
        "ask_job_type_on_launch ask_labels_on_launch ask_limit_on_launch ask_scm_branch_on_launch "
        "ask_skip_tags_on_launch ask_tags_on_launch ask_timeout_on_launch ask_variables_on_launch "
        "ask_verbosity_on_launch become_enabled copy_from credential credentials custom_virtualenv description "
        "diff_mode execution_environment extra_vars force_handlers forks host_config_key instance_groups inventory "
        "job_slice_count job_tags job_type labels limit name new_name notification_templates_error "
        "notification_templates_started notification_templates_success organization playbook "
        "prevent_instance_group_fallback project scm_branch skip_tags start_at_task state survey_enabled survey_spec "
        "timeout use_fact_cache vault_credential verbosity webhook_credential webhook_service"
    ),
    "workflow_job_template": options(
        "allow_simultaneous ask_inventory_on_launch ask_labels_on_launch ask_limit_on_launch ask_scm_branch_on_launch "
        "ask_skip_tags_on_launch ask_tags_on_launch ask_variables_on_launch copy_from description "
        "destroy_current_nodes extra_vars inventory job_tags labels limit name new_name "
        "notification_templates_approvals notification_templates_error notification_templates_started "
        "notification_templates_success organization scm_branch skip_tags state survey_enabled survey_spec "
        "webhook_credential webhook_service workflow_nodes"
    ),
    "team": options("description name new_name organization state"),
    "role": options(
        "credential credentials instance_groups inventories inventory job_template job_templates lookup_organization "
        "organization organizations project projects role state target_team target_teams team teams user users "
        "workflow workflows"
    ),
    "schedule": options(
        "credentials description diff_mode enabled execution_environment extra_data forks instance_groups inventory "
        "job_slice_count job_tags job_type labels limit name new_name organization rrule scm_branch skip_tags state "
        "timeout unified_job_template verbosity"
    ),
}
# workflow_job_template's workflow_nodes suboptions, in the same release.
NODE_OPTIONS = options(
    "all_parents_must_converge diff_mode execution_environment extra_data forks identifier inventory job_slice_count "
    "job_tags job_type limit related scm_branch skip_tags state timeout unified_job_template verbosity"
)
NODE_TEMPLATE_OPTIONS = {"name", "description", "type", "organization", "inventory", "timeout"}
RELATED_OPTIONS = {*EDGES, "credentials", "labels", "instance_groups"}

CONFIGURE: list[dict[str, t.Any]] = load(AWX / "configure.yml")[0]["tasks"]
AWX_TASKS = [(task, key.removeprefix("awx.awx.")) for task in CONFIGURE for key in task if key.startswith("awx.awx.")]
AWX_MODULES = [module for task, module in AWX_TASKS]


@pytest.mark.parametrize("task", [task for task, module in AWX_TASKS], ids=lambda task: str(task["name"]))
def test_configure_uses_only_the_modules_options(task: dict[str, t.Any]) -> None:
    (module,) = [key.removeprefix("awx.awx.") for key in task if key.startswith("awx.awx.")]
    assert module in MODULE_OPTIONS, f"{task['name']}: awx.awx.{module} has no option list here: write it first"
    unknown = set(task[f"awx.awx.{module}"]) - MODULE_OPTIONS[module]
    assert not unknown, f"{task['name']}: awx.awx.{module} {AWX_COLLECTION_VERSION} has no option {sorted(unknown)}"
    assert task[f"awx.awx.{module}"]["state"] == "present", f"{task['name']}: states what should exist"
    assert task.get("tags"), f"{task['name']}: no tag"


def test_workflow_nodes_use_only_the_modules_suboptions() -> None:
    for workflow in WORKFLOWS:
        for node in workflow["workflow_nodes"]:
            label = f"{workflow['name']} -> {node['identifier']}"
            assert set(node) <= NODE_OPTIONS, f"{label}: {set(node) - NODE_OPTIONS}"
            assert set(node["unified_job_template"]) <= NODE_TEMPLATE_OPTIONS, label
            assert set(node.get("related") or {}) <= RELATED_OPTIONS, label


def test_configure_applies_objects_after_what_they_name() -> None:
    first = {module: AWX_MODULES.index(module) for module in AWX_MODULES}
    for before, after in [
        ("organization", "team"),
        ("project", "inventory_source"),
        ("inventory", "inventory_source"),
        ("execution_environment", "job_template"),
        ("notification_template", "job_template"),
        ("inventory", "job_template"),
        ("job_template", "workflow_job_template"),
        ("notification_template", "workflow_job_template"),
        ("workflow_job_template", "role"),
        ("team", "role"),
        ("workflow_job_template", "schedule"),
    ]:
        assert first[before] < first[after], f"{after} is applied before {before}, which it names"


def test_every_module_configure_uses_is_mocked_for_lint() -> None:
    mocked = set(load(REPO / ".ansible-lint")["mock_modules"])
    assert {f"awx.awx.{module}" for module in AWX_MODULES} <= mocked
