"""The examples the docs show, made runnable on the lab: every task of every module's EXAMPLES (rendered on
docs/modules/*.md), and the command lines of docs/playbooks/*.md.

The examples are written for production (`/srv/app`, `127.0.0.1`, `db.internal`, `{{ pg_password }}`). The lab
differs in a few known ways, and this file maps them, in one table each, and nothing else:

- LAB_VALUES: production paths, hosts and URLs -> lab1's (its compose project, its loopback address, its TLS URL),
  and the files the examples write -> a scratch directory of the test.
- LAB_SERVICES: service names of a production stack that the lab's (postgres, redis, app, nginx) lacks -> app.
- LAB_VARS: the variables an example expects from its playbook (`pg_password`, ...) -> the lab inventory's.
- LAB_DEFAULTS: options an example leaves at their default where the lab needs another value: the servers listen
  on the lab host's address, not localhost, and its TLS certificate is self-signed.

An example that cannot run on the lab at all carries the comment `# Not run on the lab: <reason>` in its task; the
page shows it, and the test reports it as skipped with that reason.
"""

from __future__ import annotations

import ast
import copy
import re
import shlex
import typing as t
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.meta
import yaml

from harness.paths import REPO

NAMESPACE = "stackops.runbooks"
NOT_RUN = re.compile(r"^\s*# Not run on the lab: (?P<reason>\S.*)$", re.M)
TASK_KEYWORDS = {"name", "register", "when", "check_mode", "diff", "ignore_errors", "tags", "vars", "no_log"}

# Production value (a regex over every string of an example's arguments, dict keys included) -> lab value.
LAB_VALUES: list[tuple[str, str]] = [
    (r"^/srv/app(?=/|$)", "{{ stackops_compose_project_src }}"),
    (r"(?<![\w.])127\.0\.0\.1(?![\w.])", "{{ ansible_host }}"),
    (r"^(db|drill)\.internal$", "{{ ansible_host }}"),
    # The app's origin, allowed by the lab app's CORS policy, and its URLs behind the lab's nginx (TLS).
    (r"^https://app\.example\.com$", "https://app.stackops.test"),
    (r"^https://(app|api)\.example\.com(?=/)", "{{ stackops_tls_url }}"),
    # What examples write or read besides the stack goes to the test's scratch directory on lab1.
    (r"^/var/backups/postgres$", "{{ examples_dir }}/backups"),
    (r"^/var/backups/postgres/legacy/backup_\d{8}\.sql\.gz$", "{{ examples_dir }}/legacy/backup_20240115.sql.gz"),
    (r"^/srv/drill/copies/db1$", "{{ examples_dir }}/backups"),
    (r"^/srv/drill/app-\d{8}T\d{6}Z$", "{{ examples_backup.path }}"),
    (r"^/var/backups/redis$", "{{ examples_dir }}/redis"),
    (r"^/var/tmp/incident-42(?=/)", "{{ examples_dir }}/incident"),
    (r"^/etc/nginx/sites-available/app\.conf$", "{{ examples_dir }}/nginx/app.conf"),
    # The notify examples' state, and their webhook: a closed port (they run in check mode, which sends nothing).
    (r"^/var/lib/stackops-alerts$", "{{ examples_dir }}/alerts"),
    (r"^https://hooks\.example\.com(?=/)", "http://{{ ansible_host }}:9"),
]
LAB_SERVICES = {"backend": "app", "worker": "app"}
LAB_VARS = {
    "pg_password": "{{ stackops_pg_password }}",
    "drill_pg_password": "{{ stackops_pg_password }}",
    "redis_password": "{{ stackops_redis_password }}",
    "grafana_token": "no-grafana-on-the-lab",
    # A closed loopback port: the notify examples run in check mode, which sends nothing.
    "slack_webhook_url": "http://127.0.0.1:9/services/T0/B0/lab",
}
_PG = {"login_host": "{{ ansible_host }}"}
_TLS = {"ca_path": "{{ stackops_tls_ca }}"}
_SERVER_MODULES = ("pg_health", "pg_backup", "pg_restore", "pg_maintenance", "redis_health", "redis_maintenance")
LAB_DEFAULTS: dict[str, dict[str, t.Any]] = {
    **dict.fromkeys(_SERVER_MODULES, _PG),
    "http_health": _TLS,
    "stack_health": {"http": _TLS, "postgres": _PG, "redis": _PG},
}

# Examples that only read run for real (and must report no change); the others run in check mode.
ALWAYS_READ: set[str] = {"pg_health", "redis_health", "http_health", "stack_health", "ansible.builtin.debug"}
READS_WHEN: dict[str, t.Callable[[dict[str, t.Any]], bool]] = {
    "compose_exec": lambda args: bool(args.get("read_only")),
    "compose_logs": lambda args: not args.get("dest"),
    "compose_images": lambda args: not args.get("pull"),
    "pg_backup": lambda args: args.get("operation") == "check",
}


@dataclass
class Example:
    """One task of a module's EXAMPLES."""

    module: str
    index: int
    task: dict[str, t.Any]
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.module}-{self.index}"

    @property
    def action(self) -> str:
        return next(key for key in self.task if key not in TASK_KEYWORDS)

    @property
    def args(self) -> dict[str, t.Any]:
        return self.task[self.action] or {}

    @property
    def short_action(self) -> str:
        return self.action.removeprefix(f"{NAMESPACE}.")

    @property
    def check_mode(self) -> bool:
        """The example's own check_mode, else check mode unless the example only reads."""
        if "check_mode" in self.task:
            return bool(self.task["check_mode"])
        action = self.short_action
        return not (action in ALWAYS_READ or (action in READS_WHEN and READS_WHEN[action](self.args)))

    @property
    def task_name(self) -> str:
        return f"{self.id}: {self.task.get('name', self.action)}"

    def lab_task(self) -> dict[str, t.Any]:
        """The task as it runs on the lab: lab values, its result kept whatever happens, in check mode unless it
        only reads."""
        task = copy.deepcopy(self.task)
        args = lab_values(task[self.action] or {})
        fill_defaults(args, LAB_DEFAULTS.get(self.short_action, {}))
        task[self.action] = args
        task.update(name=self.task_name, check_mode=self.check_mode, ignore_errors=True)
        return task


def _module_examples_text(path: Path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(tg, "id", "") == "EXAMPLES" for tg in node.targets):
            return str(ast.literal_eval(node.value))
    raise AssertionError(f"{path} has no EXAMPLES")


def module_examples() -> list[Example]:
    """Every example task of every module, in page order; each task split out with its own comments."""
    paths = sorted((REPO / "plugins" / "modules").glob("*.py"))
    return [e for path in paths for e in examples_of(path.stem, _module_examples_text(path))]


def examples_of(module: str, text: str) -> list[Example]:
    """The tasks of one EXAMPLES text, each with the reason of its `# Not run on the lab:` comment, if any."""
    chunks = [chunk for chunk in re.split(r"^(?=- )", text, flags=re.M) if chunk.startswith("- ")]
    examples = []
    for index, chunk in enumerate(chunks, 1):
        (task,) = yaml.safe_load(chunk)
        reason = NOT_RUN.search(chunk)
        examples.append(Example(module, index, task, reason["reason"] if reason else None))
    return examples


def _lab_string(value: str) -> str:
    if value in LAB_SERVICES:
        return LAB_SERVICES[value]
    for pattern, repl in LAB_VALUES:
        value = re.sub(pattern, repl, value)
    return value


def lab_values(value: t.Any) -> t.Any:
    """An example's arguments with the lab's values for production ones (LAB_VALUES, LAB_SERVICES)."""
    if isinstance(value, str):
        return _lab_string(value)
    if isinstance(value, list):
        return [lab_values(item) for item in value]
    if isinstance(value, dict):
        return {_lab_string(k) if isinstance(k, str) else k: lab_values(v) for k, v in value.items()}
    return value


def fill_defaults(args: dict[str, t.Any], defaults: dict[str, t.Any]) -> None:
    """Options the example leaves out get the lab's value; a nested one only where the example has its parent."""
    for key, value in defaults.items():
        if isinstance(value, dict):
            if isinstance(args.get(key), dict):
                fill_defaults(args[key], value)
        else:
            args.setdefault(key, value)


def _strings(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


class _AnyFunction(dict):  # type: ignore[type-arg]
    """Ansible's filters and tests (`zip`, `version`, ...) for Jinja's compiler, which only looks them up."""

    def get(self, key: t.Any, default: t.Any = None) -> t.Any:
        return super().get(key, len)


def referenced_names(task: dict[str, t.Any]) -> set[str]:
    """The variables a task's templates and `when` refer to (Jinja's undeclared names)."""
    env = jinja2.Environment()  # noqa: S701 (parsed for names, never rendered to HTML)
    env.filters, env.tests = _AnyFunction(env.filters), _AnyFunction(env.tests)
    sources = [s for s in _strings({k: v for k, v in task.items() if k != "when"}) if "{{" in s or "{%" in s]
    whens = task.get("when", [])
    sources += [f"{{{{ {w} }}}}" for w in (whens if isinstance(whens, list) else [whens])]
    names: set[str] = set()
    for source in sources:
        names |= jinja2.meta.find_undeclared_variables(env.parse(source))
    return names


# The command lines of the playbook pages.


@dataclass
class CommandLine:
    """One `ansible-playbook ... stackops.runbooks.X ...` line of a playbook page, continuation lines joined."""

    page: str
    index: int
    text: str
    playbook: str
    extravars: dict[str, t.Any]
    extravar_files: list[str]
    tags: str | None
    limit: str | None
    check: bool

    @property
    def id(self) -> str:
        return f"{self.page}-{self.index}"


def _parse_command(page: str, index: int, text: str) -> CommandLine:
    words = shlex.split(text, comments=True)
    extravars: dict[str, t.Any] = {}
    files, tags, limit, check, playbook = [], None, None, False, None
    it = iter(words[1:])
    for word in it:
        if word in ("-e", "--extra-vars"):
            value = next(it)
            if value.startswith("@"):
                files.append(value[1:])
            elif value.lstrip().startswith("{"):
                extravars.update(yaml.safe_load(value))
            else:
                key, raw = value.split("=", 1)
                extravars[key] = raw
        elif word in ("-i", "--inventory"):
            next(it)
        elif word in ("-l", "--limit"):
            limit = next(it)
        elif word in ("-t", "--tags"):
            tags = next(it)
        elif word in ("-C", "--check"):
            check = True
        elif word in ("-D", "--diff"):
            pass  # shows more, changes nothing the test checks
        elif word.startswith(f"{NAMESPACE}."):
            playbook = word
        elif word != "...":
            raise AssertionError(f"docs/playbooks/{page}.md: `{word}` in `{text}` is not understood by the test")
    assert playbook, f"docs/playbooks/{page}.md: no playbook in `{text}`"
    return CommandLine(page, index, text, playbook, extravars, files, tags, limit, check)


def page_commands() -> list[CommandLine]:
    """Every ansible-playbook command line in the bash blocks of docs/playbooks/*.md."""
    commands = []
    for path in sorted((REPO / "docs" / "playbooks").glob("*.md")):
        blocks = re.findall(r"^```bash\n(.*?)^```", path.read_text(), flags=re.M | re.S)
        found = [c for c in _shell_commands("\n".join(blocks)) if c.startswith("ansible-playbook ")]
        commands += [_parse_command(path.stem, i, command) for i, command in enumerate(found, 1)]
    return commands


def _shell_commands(script: str) -> t.Iterator[str]:
    """The commands of a shell script: continuation lines and quoted newlines joined."""
    command = ""
    for line in script.splitlines():
        command = f"{command} {line.strip()}" if command else line.strip()
        if command.endswith("\\"):
            command = command[:-1].rstrip()
            continue
        try:
            shlex.split(command, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        if command:
            yield command
        command = ""


def _role_names(text: str) -> set[str]:
    roles = {p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists()}
    return {name for name in re.findall(rf"\b{re.escape(NAMESPACE)}\.(\w+)", text) if name in roles}


def playbook_roles(playbook: str) -> set[str]:
    """The collection's roles a playbook runs, directly or through the roles it runs."""
    found: set[str] = set()
    todo = _role_names((REPO / "playbooks" / f"{playbook.rsplit('.', 1)[1]}.yml").read_text())
    while todo:
        role = todo.pop()
        found.add(role)
        text = "\n".join(p.read_text() for p in (REPO / "roles" / role).glob("*/*.yml"))
        todo |= _role_names(text) - found
    return found


def role_options(role: str) -> dict[str, dict[str, t.Any]]:
    """The variables of a role's entry points, as its meta/argument_specs.yml declares them."""
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return {name: spec for entry in specs.values() for name, spec in (entry.get("options") or {}).items()}
