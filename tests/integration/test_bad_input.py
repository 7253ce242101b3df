"""The bad-input suite: every module of the collection called on lab1 with wrong types, out-of-range numbers,
unknown services and databases, and injection attempts (SQL in identifiers, shell metacharacters in names, paths
and patterns, `../` paths, Redis glob tricks, nginx directives smuggled in through names and addresses).

Each case must be refused with a message that names the value or option and the fix (no traceback, no MODULE
FAILURE), and nothing may change: lab1 is read before and after by harness.snapshot, independently of the modules.
A few cases are harmless by design (a Redis pattern is binary-safe, so a newline in it only matches keys with one):
those must succeed and change nothing.

The cases are one table, CASES. They run as three playbooks side by side (one task per case, ignore_errors), each
task's result read from the run's events. docs/bad_input.md is generated from the same table
(tests/tools/gen_bad_input_doc.py; tests/unit/test_validation.py fails when it is stale)."""

from __future__ import annotations

import json
import re
import tempfile
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml

import lab
from harness import pg
from harness.paths import REPO, lab_credentials
from harness.playbook import PlaybookRun, run_playbook
from harness.snapshot import Snapshot, diff, snapshot

pytestmark = pytest.mark.lab_hosts("lab1")

HOST = "lab1"
CANARY = "/tmp/pwned-badinput"  # what every injected command would create (harness.snapshot looks for pwned*)
SQLI = 'x"; DROP TABLE users;--'
SHELL = f"$(touch {CANARY})"
BACKTICKS = f"`touch {CANARY}`"
SEMICOLON = f"app; touch {CANARY}"
NEWLINE = f"app\ntouch {CANARY}"
# Where a backup or snapshot of a case would be written: it must not come to exist.
SCRATCH = Path(lab.ROOT) / "scratch" / "badinput"


@dataclass(frozen=True)
class Case:
    module: str
    name: str  # what is wrong, in a few words: with the module, the task's name
    args: dict[str, t.Any]  # the bad options, over the module's working options on lab1 (BASE)
    words: tuple[str, ...] = ()  # each must be in the message
    refused: bool = True  # False: accepted by design, and then it must change nothing

    @property
    def task(self) -> str:
        return f"{self.module}: {self.name}"


def bad(module: str, name: str, args: dict[str, t.Any], *words: str) -> Case:
    return Case(module, name, args, words)


def harmless(module: str, name: str, args: dict[str, t.Any]) -> Case:
    return Case(module, name, args, refused=False)


# The working options of each module on lab1 (inventory variables, so no secret is in the playbook). Where a case
# were wrongly accepted, these keep it from harming anything: a label no object carries, a scratch Redis database, a
# target database that does not exist, a backup directory that must stay absent.
PG = {"login_host": "{{ stackops_pg_host }}", "login_password": "{{ stackops_pg_password }}", "login_db": "app"}
REDIS = {"login_host": "{{ stackops_redis_host }}", "login_password": "{{ stackops_redis_password }}"}
PROJECT = {"project_src": "{{ stackops_compose_project_src }}", "project_name": "{{ stackops_compose_project_name }}"}
IN_SERVICE = {
    "compose_project_src": "{{ stackops_compose_project_src }}",
    "compose_project_name": "{{ stackops_compose_project_name }}",
}
NGINX_DIR = "{{ stackops_compose_project_src }}/nginx"
BASE: dict[str, dict[str, t.Any]] = {
    "compose_env": {**PROJECT, "services": ["app"]},
    "compose_exec": {**PROJECT, "service": "app", "argv": ["true"], "read_only": True},
    "compose_images": {**PROJECT, "services": ["app"]},
    "compose_logs": {**PROJECT, "services": ["app"], "tail": "1"},
    "compose_reach": {**PROJECT, "services": ["app"]},
    "compose_service": {**PROJECT, "services": ["app"], "state": "started"},
    "docker_prune": {"labels": ["org.stackops.badinput=never"]},
    "http_health": {"endpoints": [{"url": "http://{{ ansible_host }}/health"}]},
    "nginx_config": {**IN_SERVICE, "compose_service": "nginx"},
    # A closed loopback port: a case wrongly accepted posts to nothing.
    "notify": {"url": "http://127.0.0.1:9/badinput", "host": "lab1", "check": "badinput", "status": "critical"},
    "pg_backup": {**PG, "db": "app", "dest": f"{SCRATCH}/backups", **IN_SERVICE, "compose_service": "postgres"},
    "pg_health": PG,
    "pg_maintenance": PG,
    "pg_restore": {**PG, "login_db": "postgres", "db": "badinput_target", "src": f"{SCRATCH}/backups"},
    "redis_health": REDIS,
    "redis_maintenance": {**REDIS, "db": 9},
    "stack_health": {**PROJECT, "services": ["app"]},
}
UPSTREAM = {"dest": f"{NGINX_DIR}/conf.d/app.conf", "upstream": "app"}
MAINTENANCE = {"maintenance": "on", "maintenance_exempt_paths": ["/health"]}

CASES: list[Case] = [
    # --- compose_env: each container's environment against compose and .env, secrets never shown -------------------
    bad("compose_env", "unknown service", {"services": ["nosuch"]}, "nosuch", "not defined", "fix `services`"),
    bad("compose_env", "services not a list of names", {"services": {"app": 1}}, "services", "list"),
    # --- compose_reach: a TCP probe from inside each service, hosts and ports only ever as arguments --------------
    bad(
        "compose_reach",
        "a host that would be an option to nc",
        {"edges": [{"from": "app", "to": "-e/bin/sh:5432"}]},
        "'-e/bin/sh' is not a host name or IP address",
    ),
    bad(
        "compose_reach",
        "a command in a host",
        {"edges": [{"from": "app", "to": "$(touch /tmp/pwned-badinput):1"}]},
        "is not a host name or IP address",
    ),
    bad("compose_reach", "port 0", {"edges": [{"from": "app", "to": "127.0.0.1:0"}]}, "TCP port from 1 to 65535"),
    bad("compose_reach", "unknown source service", {"edges": [{"from": "web", "to": "app"}]}, "'web'", "not a service"),
    # --- notify: a webhook alert, the URL a secret -------------------------------------------------------------------
    bad("notify", "url without a scheme", {"url": "hooks.example.com/x"}, "not an http:// or https:// URL"),
    bad("notify", "a path in the check name", {"check": "../etc"}, "check '../etc' is not a name"),
    bad("notify", "after 0", {"after": 0}, "after must be at least 1, not 0"),
    bad("notify", "after 3 with nowhere to count", {"after": 3}, "needs a state_dir"),
    bad("notify", "an unknown priority", {"priorities": [{"priority": "P9"}]}, "'P9'"),
    # --- compose_exec: a command in a service, as an argv list (no shell) ---------------------------------------
    bad("compose_exec", "index not a number", {"index": "first"}, "index", "int"),
    bad("compose_exec", "index 0", {"index": 0}, "index must be 1 or more", "not 0"),
    bad("compose_exec", "unknown service", {"service": "nosuch"}, "nosuch", "not defined", "fix `services`"),
    bad("compose_exec", "shell in the service name", {"service": SEMICOLON}, SEMICOLON, "not defined"),
    bad("compose_exec", "an env name that carries a value", {"env": {"X=1 Y": "secret-value"}}, "'X=1 Y'", "env"),
    bad("compose_exec", "shell in the workdir", {"workdir": SHELL}, SHELL),
    # --- compose_logs -----------------------------------------------------------------------------------------
    bad("compose_logs", "tail with a shell command", {"tail": "1; rm -rf /"}, "tail must be", "'1; rm -rf /'"),
    bad("compose_logs", "since with a shell command", {"since": SHELL}, "since", SHELL),
    bad("compose_logs", "invalid pattern", {"pattern": "(unclosed"}, "'(unclosed'", "not a valid regular expression"),
    bad("compose_logs", "newline in a service name", {"services": [NEWLINE]}, "not defined"),
    bad("compose_logs", "return_lines below -1", {"return_lines": -5}, "return_lines", "-5"),
    bad("compose_logs", "relative ../ dest", {"dest": "../../tmp/pwned-badinput.log"}, "dest", "absolute"),
    bad("compose_logs", "timestamps not a boolean", {"timestamps": "maybe"}, "timestamps", "bool"),
    # --- compose_service --------------------------------------------------------------------------------------
    bad("compose_service", "unknown state", {"state": "rebooted"}, "state", "rebooted", "started"),
    bad("compose_service", "../ as a service name", {"services": ["../app"]}, "../app", "not defined"),
    bad("compose_service", "scale not a number", {"scale": {"app": "two"}}, "scale['app']", "'two'", "whole number"),
    bad("compose_service", "scale of an unknown service", {"scale": {"nosuch": 1}}, "nosuch", "not defined"),
    bad("compose_service", "negative stop timeout", {"timeout": -5}, "timeout must be 0 or more", "-5"),
    bad("compose_service", "shell in the project name", {"project_name": SEMICOLON}, "project name"),
    # --- compose_images ---------------------------------------------------------------------------------------
    bad("compose_images", "registry_timeout 0", {"registry_timeout": 0}, "registry_timeout", "not 0"),
    bad("compose_images", "shell in a service name", {"services": [SHELL]}, SHELL, "not defined"),
    # --- docker_prune -----------------------------------------------------------------------------------------
    bad("docker_prune", "older_than in words", {"older_than": "7 days"}, "'7 days'", "168h"),
    bad("docker_prune", "shell in older_than", {"older_than": "1h; docker system prune -af"}, "not a duration"),
    bad("docker_prune", "a label without a name", {"labels": ["=x"]}, "'=x'", "labels"),
    bad("docker_prune", "an empty keep_labels name", {"keep_labels": [""]}, "keep_labels", "''"),
    # --- http_health ------------------------------------------------------------------------------------------
    bad(
        "http_health", "file:// URL", {"endpoints": [{"url": "file:///etc/passwd"}]}, "'file:///etc/passwd'", "http://"
    ),
    bad("http_health", "port out of range", {"endpoints": [{"url": "http://127.0.2.1:99999/"}]}, "99999", "port"),
    bad(
        "http_health",
        "CRLF in the URL",
        {"endpoints": [{"url": "http://127.0.2.1/health\r\nX-Injected: 1"}]},
        "Endpoint URL",
        "control character",
    ),
    bad(
        "http_health",
        "CRLF in the method",
        {"endpoints": [{"url": "http://127.0.2.1/", "method": "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET"}]},
        "method",
        "not an HTTP method",
    ),
    bad(
        "http_health",
        "CRLF in a header value",
        {"endpoints": [{"url": "http://127.0.2.1/", "headers": {"X-A": "v\r\nX-Injected: 1"}}]},
        "header X-A",
        "control character",
    ),
    bad("http_health", "status 999", {"endpoints": [{"url": "http://127.0.2.1/", "status": [999]}]}, "999", "100"),
    bad("http_health", "negative timeout", {"timeout": -1}, "timeout must be more than 0", "-1"),
    # --- stack_health -----------------------------------------------------------------------------------------
    bad(
        "stack_health",
        "nginx_test that is not nginx -t",
        {"nginx_service": "nginx", "nginx_test": ["sh", "-c", f"touch {CANARY}"]},
        "nginx_test",
        "'sh'",
    ),
    bad("stack_health", "backticks in a service name", {"services": [BACKTICKS]}, BACKTICKS, "not defined"),
    bad("stack_health", "postgres.top 0", {"postgres": {**PG, "top": 0}}, "postgres.top must be at least 1"),
    bad("stack_health", "redis.big_keys_sample 0", {"redis": {**REDIS, "big_keys_sample": 0}}, "big_keys_sample"),
    bad(
        "stack_health", "ftp:// endpoint", {"http": {"endpoints": [{"url": "ftp://127.0.2.1/"}]}}, "'ftp://127.0.2.1/'"
    ),
    bad("stack_health", "threshold not a number", {"thresholds": {"restarts_warning": "many"}}, "'many'", "number"),
    # --- nginx_config: names and addresses end up in nginx's configuration -----------------------------------
    bad(
        "nginx_config",
        "a server block smuggled in through upstream_servers",
        {**UPSTREAM, "upstream_servers": ["127.0.2.1:8000; } server { listen 127.0.2.1:8081; } upstream x {"]},
        "upstream_servers",
        "127.0.2.1:8000; }",
    ),
    bad(
        "nginx_config",
        "an unknown upstream",
        {**UPSTREAM, "upstream": "app {", "upstream_servers": ["127.0.2.1:8000"]},
        "app {",
    ),
    bad(
        "nginx_config",
        "a directive smuggled in through maintenance_allow",
        {**MAINTENANCE, "maintenance_allow": ["127.0.0.1 1; default 1"]},
        "'127.0.0.1 1; default 1'",
        "address",
    ),
    bad(
        "nginx_config",
        "a quote in an exempt path",
        {**MAINTENANCE, "maintenance_exempt_paths": ['/health") { return 200; } if ("']},
        "maintenance_exempt_paths",
    ),
    bad(
        "nginx_config",
        "a directive smuggled in through the flag path",
        {**MAINTENANCE, "maintenance_flag": f"{NGINX_DIR}/on) {{ return 200; }} if (-f /x"},
        "maintenance_flag",
    ),
    bad(
        "nginx_config",
        "../ out of the config directory",
        {"dest": f"{NGINX_DIR}/conf.d/{'../' * 12}tmp/pwned-badinput.conf", "content": "# x\n"},
        "outside the directory of nginx's main config",
    ),
    bad(
        "nginx_config",
        "reload_timeout 0",
        {**UPSTREAM, "upstream_servers": ["127.0.2.1:8001"], "reload_timeout": 0},
        "reload_timeout",
    ),
    bad(
        "nginx_config",
        "websocket timeout 0",
        {"websocket": True, "websocket_read_timeout": 0},
        "websocket_read_timeout",
    ),
    bad("nginx_config", "negative retry_after", {**MAINTENANCE, "retry_after": -1}, "retry_after must be 0 or more"),
    bad(
        "nginx_config",
        "mode beyond 07777",
        {**UPSTREAM, "upstream_servers": ["127.0.2.1:8000"], "mode": "77777"},
        "mode",
        "'77777'",
    ),
    bad("nginx_config", "unknown service", {"compose_service": "nosuch", "tls_report": True}, "nosuch", "not defined"),
    bad(
        "nginx_config", "maintenance neither on nor off", {"maintenance": "sometimes"}, "maintenance must be on or off"
    ),
    # --- pg_backup --------------------------------------------------------------------------------------------
    bad("pg_backup", "SQL in the database name", {"db": SQLI}, SQLI, "does not exist"),
    bad("pg_backup", "a connection string as db", {"db": "dbname=app host=127.0.2.2"}, "connection string", "db"),
    bad("pg_backup", "a connection string as login_db", {"login_db": "host=127.0.2.2 dbname=postgres"}, "login_db"),
    bad("pg_backup", "relative ../ dest", {"dest": "backups/../../tmp"}, "not an absolute path"),
    bad("pg_backup", "jobs 0", {"jobs": 0}, "jobs must be 1 or more"),
    bad("pg_backup", "retention_count 0", {"retention_count": 0}, "retention_count must be more than 0"),
    bad("pg_backup", "port out of range", {"login_port": 70000}, "login_port", "70000"),
    bad("pg_backup", "unknown service", {"compose_service": "nosuch"}, "nosuch", "not defined"),
    bad("pg_backup", "adopt without src", {"operation": "adopt"}, "operation=adopt needs src", "None"),
    bad(
        "pg_backup",
        "adopt of a relative src",
        {"operation": "adopt", "src": "old/app.sql"},
        "'old/app.sql'",
        "full path",
    ),
    bad("pg_backup", "src without adopt", {"src": "/tmp/app.sql"}, "src is for operation=adopt only"),
    bad(
        "pg_backup",
        "adopt with a sentinel",
        {"operation": "adopt", "src": "/tmp/app.sql", "sentinel": True},
        "sentinel",
    ),
    bad("pg_backup", "retention_days in words", {"retention_days": "a week"}, "retention_days", "float"),
    # --- pg_restore -------------------------------------------------------------------------------------------
    bad("pg_restore", "SQL in the target name", {"db": SQLI}, "db", "'x\"; DROP TABLE users;--'"),
    bad("pg_restore", "a connection string as db", {"db": "host=127.0.2.2 dbname=app"}, "connection string"),
    bad("pg_restore", "a name over 63 bytes", {"db": "d" * 60}, "too long", "63"),
    bad("pg_restore", "negative keep_previous", {"keep_previous": -1}, "keep_previous must be 0 or more"),
    bad("pg_restore", "a src that does not exist", {"src": "/nonexistent/../etc/backups"}, "does not exist"),
    bad("pg_restore", "login_db is the target", {"login_db": "badinput_target"}, "login_db is badinput_target"),
    bad(
        "pg_restore",
        "a smoke query without its SQL",
        {"smoke_queries": [{"name": "x"}]},
        "smoke_queries[0] lacks query",
    ),
    bad(
        "pg_restore",
        "a smoke query with a misspelt expect",
        {"smoke_queries": [{"name": "x", "query": "SELECT 1", "expected": [[1]]}]},
        "smoke_queries[0] (x) has expected",
        "takes name, query and expect",
    ),
    bad(
        "pg_restore",
        "two smoke queries of one name",
        {"smoke_queries": [{"name": "x", "query": "SELECT 1"}, {"name": "x", "query": "SELECT 2"}]},
        "smoke_queries[1] is named x",
        "a name of its own",
    ),
    # --- pg_health --------------------------------------------------------------------------------------------
    bad("pg_health", "top 0", {"top": 0}, "top must be at least 1"),
    bad("pg_health", "threshold not a number", {"thresholds": {"connections_warning_pct": "half"}}, "'half'", "number"),
    bad("pg_health", "port 0", {"login_port": 0}, "login_port", "not 0"),
    bad("pg_health", "connect_timeout 0", {"connect_timeout": 0}, "connect_timeout must be at least 1"),
    # --- pg_maintenance ---------------------------------------------------------------------------------------
    bad("pg_maintenance", "SQL in a table name", {"vacuum": [SQLI]}, "vacuum", 'x"; DROP TABLE users;--'),
    bad(
        "pg_maintenance",
        "SQL in a setting's value",
        {"settings": {"work_mem": "4MB'; DROP TABLE users;--"}},
        "work_mem",
    ),
    bad(
        "pg_maintenance",
        "SQL in a setting's name",
        {"settings": {"work_mem; DROP TABLE users": "4MB"}},
        "work_mem; DROP",
    ),
    bad(
        "pg_maintenance", "SQL in a new database's name", {"ensure_database": {"name": SQLI}}, "ensure_database", "name"
    ),
    bad("pg_maintenance", "a new database name over 63 bytes", {"ensure_database": {"name": "n" * 70}}, "63"),
    bad(
        "pg_maintenance",
        "SQL in the template",
        {"ensure_database": {"name": "badinput_never", "template": SQLI}},
        'template database x"; DROP',
        "does not exist",
    ),
    bad("pg_maintenance", "min_dead_pct over 100", {"vacuum": True, "min_dead_pct": 150}, "min_dead_pct", "150"),
    # --- redis_health -----------------------------------------------------------------------------------------
    bad("redis_health", "big_keys_sample 0", {"big_keys_sample": 0}, "big_keys_sample must be at least 1"),
    bad("redis_health", "a database the server does not have", {"db": 99}, "db 99", "databases"),
    bad("redis_health", "port out of range", {"login_port": 70000}, "login_port", "70000"),
    # --- redis_maintenance: patterns are globs over the whole keyspace ---------------------------------------
    bad("redis_maintenance", "?* matches every key", {"delete_pattern": ["?*"]}, "'?*'", "every key", "confirm"),
    bad("redis_maintenance", "[a-z]* matches by wildcards only", {"delete_pattern": ["[a-z]*"]}, "'[a-z]*'", "confirm"),
    bad("redis_maintenance", "* without confirm", {"delete_pattern": ["*"]}, "'*'", "confirm: true"),
    harmless(
        "redis_maintenance", "a newline in a pattern is a literal", {"delete_pattern": ["badinput:*\r\nFLUSHALL"]}
    ),
    bad("redis_maintenance", "a command after a value", {"config": {"maxmemory": "64mb\r\nFLUSHALL"}}, "maxmemory"),
    bad(
        "redis_maintenance",
        "dir set to write elsewhere",
        {"config": {"dir": "/tmp/pwned-badinput"}},
        "dir",
        "protected",
    ),
    bad("redis_maintenance", "a command in a setting's name", {"config": {"save\nFLUSHALL": ""}}, "not a setting name"),
    bad(
        "redis_maintenance",
        "relative ../ snapshot_dest",
        {"snapshot": True, "snapshot_dest": "../x"},
        "not an absolute",
    ),
    bad(
        "redis_maintenance",
        "a database the server does not have",
        {"db": 99, "delete_pattern": ["badinput:*"]},
        "db 99",
    ),
]
MODULES = sorted(path.stem for path in (REPO / "plugins" / "modules").glob("*.py"))
GROUPS = 3  # playbooks run side by side


def playbook(cases: list[Case]) -> list[dict[str, t.Any]]:
    tasks = [
        {
            "name": case.task,
            f"stackops.runbooks.{case.module}": {**BASE[case.module], **case.args},
            "ignore_errors": True,
            "register": f"case_{index}",
        }
        for index, case in enumerate(cases)
    ]
    return [{"name": "Bad input", "hosts": HOST, "gather_facts": False, "tasks": tasks}]


@dataclass
class Outcome:
    runs: list[PlaybookRun]
    before: Snapshot
    after: Snapshot

    def result(self, case: Case) -> dict[str, t.Any]:
        """The task's result, with `failed` as the run saw it (an ignored failure's result may not say)."""
        for run in self.runs:
            for event in reversed(run.events):
                data = event.get("event_data", {})
                if event.get("event", "").startswith("runner_on_") and data.get("task") == case.task:
                    return {**data["res"], "failed": event["event"] == "runner_on_failed"}
        raise AssertionError(f"no result for {case.task!r}:\n" + "\n".join(r.stdout[-2000:] for r in self.runs))


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    before = snapshot(HOST, files=[SCRATCH])
    with tempfile.TemporaryDirectory(prefix="bad-input-") as folder:
        paths = []
        for index in range(GROUPS):
            path = Path(folder) / f"bad_input_{index}.yml"
            path.write_text(yaml.safe_dump(playbook(CASES[index::GROUPS]), sort_keys=False, width=1000))
            paths.append(path)
        with ThreadPoolExecutor(max_workers=GROUPS) as pool:
            runs = list(pool.map(lambda path: run_playbook(str(path), limit=HOST), paths))
    return Outcome(runs, before, snapshot(HOST, files=[SCRATCH]))


def test_the_table_covers_every_module() -> None:
    assert sorted({case.module for case in CASES}) == MODULES
    assert len({case.task for case in CASES}) == len(CASES), "two cases share a name"
    for case in CASES:
        # The playbook is templated: a case carries no Jinja but the lab's paths.
        text = re.sub(r"\{\{ (stackops_\w+|ansible_host) \}\}", "", json.dumps(case.args))
        assert "{{" not in text and "{%" not in text, case.task


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.task)
def test_bad_input_is_refused_clearly(outcome: Outcome, case: Case) -> None:
    result = outcome.result(case)
    shown = json.dumps(result, default=str)[:3000]
    assert "Traceback" not in shown and "MODULE FAILURE" not in shown, shown
    assert "module_stderr" not in result, shown
    if not case.refused:
        assert not result.get("failed") and result.get("changed") is False, shown
        return
    assert result.get("failed") is True, f"{case.task} was accepted: {shown}"
    for word in case.words:
        assert word in result["msg"], f"{word!r} is not in the message: {result['msg']}"


def test_nothing_changed(outcome: Outcome) -> None:
    assert diff(outcome.before, outcome.after) == []
    assert outcome.after["canaries"] == [] and outcome.after["files"][str(SCRATCH)] is None


def test_the_snapshot_sees_a_real_change(hosts: dict[str, lab.Host]) -> None:
    """A key in a scratch Redis database, a row in a scratch table, a file among nginx's and a canary: each is
    reported, and nothing is once they are gone."""
    host = hosts[HOST]
    r = redis.Redis(host=host.addr, password=lab_credentials(HOST)["stackops_redis_password"], db=15)
    probe = host.dir / "nginx" / ".badinput-probe"
    canary = Path(f"{CANARY}-probe")
    before = snapshot(host)
    try:
        r.set("badinput:probe", "1")
        pg.query(
            host,
            "postgres",
            "CREATE TABLE public.badinput_probe (id int); INSERT INTO public.badinput_probe VALUES (1)",
        )
        probe.write_text("probe\n")
        canary.write_text("probe\n")
        during = diff(before, snapshot(host))
    finally:
        r.delete("badinput:probe")
        r.close()
        pg.query(host, "postgres", "DROP TABLE IF EXISTS public.badinput_probe")
        probe.unlink(missing_ok=True)
        canary.unlink(missing_ok=True)
    assert any(line.startswith("redis/databases/db15/keys: added 1") for line in during), during
    assert any(
        line.startswith("postgres/databases/postgres/content/rows/public.badinput_probe: added 1") for line in during
    ), during
    assert any(line.startswith("nginx/files/.badinput-probe: added") for line in during), during
    assert any(line.startswith("canaries: ") and "pwned-badinput-probe" in line for line in during), during
    assert diff(before, snapshot(host)) == []
