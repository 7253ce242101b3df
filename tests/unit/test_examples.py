"""The examples the docs show, checked without the lab (tests/integration/test_examples.py and
test_playbook_pages.py run them on it).

Module examples (docs/modules/*.md, from each module's EXAMPLES): each refers only to variables its playbook is
expected to define (LAB_VARS) and to registers of earlier examples of the same module, and the lab's values
replace every production one. Playbook pages (docs/playbooks/*.md): every `ansible-playbook` line names a
playbook of the collection, options the test understands, variables that the playbook or its roles' argument
specs (meta/argument_specs.yml) declare, with values those specs accept (Ansible's own ArgumentSpecValidator, as
a role's argument validation uses), tags that the playbook or its roles have, and every such playbook passes
`ansible-playbook --syntax-check`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from harness.examples import (
    LAB_VARS,
    NAMESPACE,
    CommandLine,
    Example,
    examples_of,
    module_examples,
    page_commands,
    playbook_roles,
    referenced_names,
    role_options,
)
from harness.paths import LAB_INVENTORY, REPO

EXAMPLES = module_examples()
COMMANDS = page_commands()
# Names the examples may use besides LAB_VARS and earlier registers: Jinja's and Ansible's own.
BUILTIN_NAMES = {"lookup", "query", "q", "omit", "inventory_hostname"}
# What a production value looks like; none may be left once the lab's values are in (nginx on the host's own
# /etc/nginx/sites-enabled stays: that example writes there in check mode only).
PRODUCTION = ("/srv/", "example.com", ".internal", "127.0.0.1", "/var/backups", "/var/tmp")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example_refers_only_to_defined_names(example: Example) -> None:
    earlier = [e for e in EXAMPLES if e.module == example.module and e.index < example.index]
    registers = {e.task["register"] for e in earlier if "register" in e.task}
    unknown = referenced_names(example.task) - registers - set(LAB_VARS) - BUILTIN_NAMES
    assert not unknown, (
        f"{example.id} refers to {sorted(unknown)}, which no earlier example of {example.module} registers "
        f"and the examples' playbook does not define (LAB_VARS: {sorted(LAB_VARS)})"
    )


def test_an_undefined_name_is_found() -> None:
    task = {"name": "x", "ansible.builtin.debug": {"msg": "{{ result.rows | default(other) }}"}, "when": "ok_now"}
    assert referenced_names(task) == {"result", "other", "ok_now"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example_runs_on_lab_values(example: Example) -> None:
    text = yaml.safe_dump(example.lab_task())
    left = [value for value in PRODUCTION if value in text]
    assert not left, f"{example.id} still names {left} on the lab: add the lab's value to LAB_VALUES\n{text}"


def test_an_example_marked_not_run_carries_its_reason() -> None:
    text = """
- name: Runs
  ansible.builtin.debug:

- name: Needs what the lab has not
  # Not run on the lab: the lab has no second data centre.
  ansible.builtin.debug:
"""
    runs, marked = examples_of("demo", text)
    assert (runs.not_run, marked.not_run) == (None, "the lab has no second data centre.")
    assert marked.task["name"] == "Needs what the lab has not"


def test_lab_task_keeps_the_example_and_adds_the_lab() -> None:
    (example,) = [e for e in EXAMPLES if e.id == "pg_maintenance-2"]
    task = example.lab_task()
    args = task["stackops.runbooks.pg_maintenance"]
    assert args == {**example.args, "login_host": "{{ ansible_host }}"}
    assert task["check_mode"] is True and task["ignore_errors"] is True


def test_examples_that_only_read_run_for_real() -> None:
    modes = {e.id: e.check_mode for e in EXAMPLES}
    assert not modes["pg_health-1"] and not modes["compose_exec-1"] and not modes["pg_backup-3"]
    assert modes["compose_exec-2"] and modes["pg_backup-1"] and modes["compose_logs-2"]
    assert modes["compose_images-4"], "the example's own check_mode: true is kept"


def check_command(command: CommandLine) -> list[str]:
    """What is wrong with a page's command line: unknown playbook, variables, values or tags."""
    path = REPO / "playbooks" / f"{command.playbook.removeprefix(NAMESPACE + '.')}.yml"
    if not command.playbook.startswith(f"{NAMESPACE}.") or not path.exists():
        return [f"{command.playbook} is not a playbook of the collection"]
    roles = playbook_roles(command.playbook)
    options = {name: spec for role in roles for name, spec in role_options(role).items()}
    texts = [path.read_text(), *(p.read_text() for r in roles for p in (REPO / "roles" / r).glob("tasks/*.yml"))]
    errors = []
    for name, value in command.extravars.items():
        if name in options:
            result = ArgumentSpecValidator({name: {**options[name], "required": False}}).validate({name: value})
            errors += result.error_messages
        elif name not in playbook_variables(path):
            errors.append(f"{name} is neither a variable of the roles {sorted(roles)} nor of the playbook")
    known = {tag for text in texts for tag in _tags(yaml.safe_load(text))}
    wanted = [tag for tag in (command.tags or "").split(",") if tag]
    return errors + [f"tag {tag} is not in the playbook or its roles" for tag in wanted if tag not in known]


def playbook_variables(path: Path) -> set[str]:
    """The variables a playbook refers to in its templates (`{{ backup_hosts | default('stack') }}`)."""
    return referenced_names({"plays": yaml.safe_load(path.read_text())})


def _tags(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _tags(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "tags":
                yield from [item] if isinstance(item, str) else item
            else:
                yield from _tags(item)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.id)
def test_page_command_names_documented_variables_and_tags(command: CommandLine) -> None:
    errors = check_command(command)
    assert not errors, f"docs/playbooks/{command.page}.md: `{command.text}`: {'; '.join(errors)}"


def test_a_wrong_page_command_is_refused() -> None:
    (shown,) = [c for c in COMMANDS if c.id == "recover_service-3"]
    wrong_vars = {"recover_service_mode": "reboot", "recover_service_confirm": "yes please", "recover": "x"}
    command = dataclasses.replace(shown, extravars=wrong_vars, tags="verify,nonsense")
    errors = " ".join(check_command(command))
    for wrong in ("reboot", "recover_service_confirm", "recover is neither", "tag nonsense"):
        assert wrong in errors
    assert "tag verify" in errors  # recover_service has no verify tag


def test_every_playbook_page_shows_a_command() -> None:
    shown = {c.page for c in COMMANDS}
    assert shown == {p.stem for p in (REPO / "docs" / "playbooks").glob("*.md")}


def test_page_playbooks_pass_syntax_check(tmp_path: Path) -> None:
    playbooks = sorted({c.playbook for c in COMMANDS})
    (tmp_path / "pages.yml").write_text(json.dumps([{"ansible.builtin.import_playbook": p} for p in playbooks]))
    proc = subprocess.run(
        ["ansible-playbook", "--syntax-check", "-i", str(LAB_INVENTORY), str(tmp_path / "pages.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


CONDITIONS = ("when", "failed_when", "changed_when", "until")


def _expressions(value: t.Any, key: str = "") -> t.Iterator[tuple[str, bool]]:
    """The Jinja expressions of a playbook or task file, each with whether it is a condition (`when:`)."""
    if isinstance(value, list):
        for item in value:
            yield from _expressions(item, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _expressions(item, str(name))
    elif isinstance(value, str) and key in CONDITIONS:
        yield value, True
    elif isinstance(value, str):
        for expression in re.findall(r"\{\{(.*?)\}\}|\{%(.*?)%\}", value, flags=re.S):
            yield "".join(expression), False


def bool_variables_read_raw() -> list[str]:
    """Where a role's bool variable is used as a truth value (a condition, `if`, `not`, `and`, `or`) without
    `| bool`. From `-e name=false`, as the pages write it, it is the string "false": true in Jinja, and a `when:` on a
    string fails in ansible-core 2.19. Passed on to a module (`"{{ name }}"`), the module's argument spec converts
    it."""
    specs = (REPO / "roles").glob("*/meta/argument_specs.yml")
    names = {n for path in specs for n, s in role_options(path.parts[-3]).items() if s.get("type") == "bool"}
    found = []
    for path in [*(REPO / "roles").glob("*/tasks/*.yml"), *(REPO / "playbooks").glob("*.yml")]:
        for expression, condition in _expressions(yaml.safe_load(path.read_text())):
            code = re.sub(r"'[^']*'|\"[^\"]*\"", "''", expression).strip()
            raw = [
                name
                for name in names
                if (condition and code == name)
                or re.search(rf"\b(if|not|and|or)\s+{name}\b(?!\s*\|\s*bool\b)|\b{name}\s+(and|or)\b", code)
            ]
            if raw:
                found.append(f"{path.relative_to(REPO)}: {sorted(raw)} in `{expression.strip()}`")
    return found


def test_bool_variables_are_read_with_the_bool_filter() -> None:
    assert not bool_variables_read_raw(), "\n".join(bool_variables_read_raw())
