"""AWX / Automation Platform pieces: awx/config.yml, the wrapper playbooks, the schedules and the EE definition.

Nothing here talks to an AWX: the checks are the ones AWX and ansible-builder would make when the configuration is
applied or the image built, done on the files.
"""

from __future__ import annotations

import re
import subprocess
import sys
import typing as t
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


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t.get("survey_enabled")], ids=template_id)
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
    names = {t["name"] for t in TEMPLATES}
    assert set(by_template) <= names, f"schedules of unknown templates: {set(by_template) - names}"
    backup = next(t["name"] for t in TEMPLATES if t["playbook"].endswith("/backup.yml"))
    drill = next(t["name"] for t in TEMPLATES if t["playbook"].endswith("/restore_drill.yml"))
    health = next(t["name"] for t in TEMPLATES if t["playbook"].endswith("/health_check.yml"))
    window = next(t["name"] for t in TEMPLATES if t["playbook"].endswith("/maintenance_window.yml"))
    assert "FREQ=DAILY" in by_template[backup] and "BYHOUR=2;BYMINUTE=0" in by_template[backup]
    assert "FREQ=WEEKLY" in by_template[drill] and "BYDAY=SU" in by_template[drill]
    assert re.search(r"FREQ=(HOURLY|DAILY)", by_template[health])
    assert "FREQ=MONTHLY" in by_template[window] and "BYDAY=SU;BYSETPOS=1" in by_template[window]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: str(s["name"]))
def test_scheduled_jobs_never_wait_for_an_answer(schedule: dict[str, t.Any]) -> None:
    template = next(t for t in TEMPLATES if t["name"] == schedule["unified_job_template"])
    for question in survey_questions(template):
        assert not question["required"] or question.get("default") not in (None, ""), (
            f"{schedule['name']}: required question {question['variable']} has no default for unattended runs"
        )
    allowed = {q["variable"] for q in survey_questions(template)}
    if template.get("ask_variables_on_launch"):
        allowed |= declared_variables(collection_playbook(template))
    extra = set(schedule.get("extra_data") or {})
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


def test_no_credential_value_is_written_in_the_config() -> None:
    field_ids = {f["id"] for ct in CONFIG["stackops_awx_credential_types"] for f in ct["inputs"]["fields"]}
    for path, key, value in _walk(CONFIG):
        if not SECRET_KEY.search(key) or isinstance(value, bool) or value in ("", None):
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
