"""Every example task of every module's EXAMPLES (the examples of docs/modules/*.md) runs on lab1.

All examples of all modules run in one playbook run: an example that changes state runs in check mode, one that
only reads runs for real and must report no change. The production values of the examples become lab1's through
the table in tests/harness/examples.py (LAB_VALUES, LAB_SERVICES, LAB_VARS, LAB_DEFAULTS); nothing else is
changed in a task. Before the examples, the playbook takes one real backup into the test's scratch directory for
the examples that check or restore one. An example fails its test when it errors: arguments refused by the
module's argument spec, a variable or register that is not defined (tests/unit/test_examples.py also checks that
statically, for the examples whose `when:` would hide it), a failed check. Run for real, it fails when it reports a
change. An example marked `# Not run on the lab: <reason>` is skipped with that reason, so pytest's summary lists
and counts them. Independently of what the modules report, lab1's containers (ID, state, start time), its project's
files (nginx's included), the host's /etc/nginx, the settings of its PostgreSQL and Redis, its databases and the
scratch directory must be the same after the run as before.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

import lab
from harness.examples import LAB_VARS, Example, module_examples
from harness.paths import lab_credentials, lab_hosts
from harness.pg import query
from harness.playbook import PlaybookRun, run_playbook
from harness.snapshot import project_containers

pytestmark = pytest.mark.lab_hosts("lab1")

HOST = "lab1"
EXAMPLES = module_examples()
RUN = [e for e in EXAMPLES if not e.not_run]
# Databases an example in check mode would create, replace or drop if check mode failed.
WATCHED_DATABASES = ("app", "app_drill", "db1_app")
ENDED = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
SETUP = "setup: the backup the examples check, restore and drill"


def snapshot(scratch: Path) -> dict[str, t.Any]:
    """What the examples must leave as it was on lab1, read with other tools than the modules."""
    host = lab_hosts()[HOST]
    started = [
        f"{c['Name']} {c['Id']} {c['State']['Status']} {c['State']['StartedAt']}"
        for c in project_containers(host.project)
    ]
    files = {}
    data = host.dir / "data"
    kept = {data / "postgres" / "postgresql.auto.conf", data / "redis" / "redis.conf"}
    # The setup's backup is the one thing the run adds: test_the_run_ended_with_one_backup_taken counts it.
    skipped = (data, scratch / "backups")
    for root in (host.dir, scratch, Path("/etc/nginx")):
        for path in sorted(root.rglob("*")):
            if path in kept or not any(path.is_relative_to(s) for s in skipped):
                content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
                files[str(path)] = (path.stat().st_mode, content)
    password = lab_credentials(HOST)
    client = redis.Redis(host=host.addr, password=password["stackops_redis_password"])
    settings = query(
        host,
        "postgres",
        "SELECT name, setting, pending_restart FROM pg_settings WHERE source = 'configuration file' ORDER BY name",
    )
    databases = query(
        host, "postgres", "SELECT datname, oid FROM pg_database WHERE datname = ANY(%s)", (list(WATCHED_DATABASES),)
    )
    return {
        "containers": sorted(started),
        "files": files,
        "redis": {
            **client.config_get("maxmemory*"),
            "keys in db 3": redis.Redis(host=host.addr, password=password["stackops_redis_password"], db=3).dbsize(),
        },
        "postgres settings": settings,
        "databases": sorted(databases),
    }


def task_result(run: PlaybookRun, task: str) -> dict[str, t.Any]:
    """A task's result on HOST; a skipped task's event carries none, so it is {"skipped": True}."""
    for event in run.events:
        data = event.get("event_data", {})
        if data.get("host") == HOST and data.get("task") == task and event["event"] in ENDED:
            return dict(data.get("res", {"skipped": event["event"] == "runner_on_skipped"}))
    raise AssertionError(f"no result for {task!r} on {HOST}:\n{run.stdout[-3000:]}")


def examples_playbook(scratch: Path) -> list[dict[str, t.Any]]:
    setup = {
        "name": SETUP,
        "stackops.runbooks.pg_backup": {
            "db": "app",
            "dest": "{{ examples_dir }}/backups",
            "login_host": "{{ ansible_host }}",
            "login_password": "{{ stackops_pg_password }}",
            "compose_project_src": "{{ stackops_compose_project_src }}",
        },
        "register": "examples_backup",
    }
    return [
        {
            "name": "Every example of every module's documentation, on the lab",
            "hosts": HOST,
            "gather_facts": False,
            "vars": {**LAB_VARS, "examples_dir": str(scratch)},
            "tasks": [setup, *(example.lab_task() for example in RUN)],
        }
    ]


@pytest.fixture(scope="module")
def outcome() -> Iterator[tuple[PlaybookRun, dict[str, t.Any], dict[str, t.Any]]]:
    """The one run of every example on lab1, and lab1's snapshot before and after it."""
    scratch = Path(tempfile.mkdtemp(prefix="examples-", dir=lab.ROOT / "scratch"))
    playbook_dir = Path(tempfile.mkdtemp(prefix="examples-playbook-"))
    try:
        (scratch / "legacy").mkdir()
        # The legacy-dump examples' file: app dumped by hand, as the runbooks do.
        dumped = lab.compose(lab_hosts()[HOST], "exec", "-T", "-u", "postgres", "postgres", "pg_dump", "app").stdout
        (scratch / "legacy" / "backup_20240115.sql.gz").write_bytes(gzip.compress(dumped.encode()))
        (scratch / "nginx").mkdir()
        # The host nginx example's site: a file as an operator would keep in sites-available.
        (scratch / "nginx" / "app.conf").write_text(
            "server {\n    listen 127.0.2.1:18081;\n    location / { return 200 'ok'; }\n}\n"
        )
        (playbook_dir / "templates").mkdir()
        # nginx_config's example renders the site from app.conf.j2: lab1's live site is that template here.
        shutil.copy(lab_hosts()[HOST].dir / "nginx" / "conf.d" / "app.conf", playbook_dir / "templates" / "app.conf.j2")
        (playbook_dir / "examples.yml").write_text(yaml.safe_dump(examples_playbook(scratch), sort_keys=False))
        before = snapshot(scratch)
        run = run_playbook(str(playbook_dir / "examples.yml"), limit=HOST, timeout=900)
        after = snapshot(scratch)
        after["backups"] = sorted(p.name for p in (scratch / "backups").glob("app-*"))
        yield run, before, after
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(playbook_dir, ignore_errors=True)


def test_the_run_ended_with_one_backup_taken(outcome: tuple[PlaybookRun, dict, dict]) -> None:
    """The setup's backup, and no other: the nightly backup example ran in check mode."""
    run, after = outcome[0], outcome[2]
    run.assert_ok()
    assert not task_result(run, SETUP).get("failed"), run.stdout[-4000:]
    assert len(after["backups"]) == 1, after["backups"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example_runs_on_the_lab(example: Example, outcome: tuple[PlaybookRun, dict, dict]) -> None:
    if example.not_run:
        pytest.skip(f"{example.id} is marked `Not run on the lab`: {example.not_run}")
    result = task_result(outcome[0], example.task_name)
    mode = "in check mode" if example.check_mode else "for real"
    assert not result.get("failed"), (
        f"{example.id} ({mode}) failed: {result.get('msg')}\n{yaml.safe_dump(result)[:3000]}"
    )
    assert not result.get("skipped") or "when" in example.task, f"{example.id} was skipped: {result}"
    if not example.check_mode:
        assert not result.get("changed"), f"{example.id} only reads, but reported a change: {result}"


def test_examples_changed_nothing_on_lab1(outcome: tuple[PlaybookRun, dict, dict]) -> None:
    before, after = outcome[1:]
    for key in before:
        assert after[key] == before[key], f"the examples changed lab1's {key}"
