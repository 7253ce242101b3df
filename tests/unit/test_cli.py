"""`python -m stackops_cli drill`: argument parsing, the runner's arguments, progress lines, summary and exit code.

No drill runs here: ansible-runner's events and the drill's set_stats artifact are faked in their real shapes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import tomllib
import yaml

from harness.paths import REPO

# The package lives at the repository root, which pytest's importlib mode does not put on sys.path.
sys.path.insert(0, str(REPO))
from stackops_cli import __main__ as cli
from stackops_cli import drill


def fake_artifact(status: str = "pass", bad: int = 0, passed: int = 2) -> dict[str, t.Any]:
    results: list[dict[str, t.Any]] = [
        {"host": f"app{i}", "database": "app", "drill_host": "drill1", "status": "pass", "rto_s": 12.2, "rpo_hours": 3}
        for i in range(passed)
    ]
    results += [
        {
            "host": f"bad{i}",
            "database": "app",
            "drill_host": "drill1" if i % 2 else None,
            "status": "failed" if i % 2 else "unreachable",
            "rto_s": None,
            "rpo_hours": None,
            "reason": f"reason {i}",
        }
        for i in range(bad)
    ]
    failed_hosts = sorted(str(r["host"]) for r in results if r["status"] != "pass")
    return {
        "run_id": "20261123T020000Z",
        "summary": {
            "databases": len(results),
            "passed": passed,
            "failed": sum(r["status"] == "failed" for r in results),
            "unreachable": sum(r["status"] == "unreachable" for r in results),
            "status": status,
            "failed_hosts": failed_hosts,
        },
        "results": results,
        "report_json": "/var/reports/restore-drill-20261123T020000Z.json",
        "report_md": "/var/reports/restore-drill-20261123T020000Z.md",
        "report_html": "/var/reports/restore-drill-20261123T020000Z.html",
    }


def parse(*argv: str) -> drill.DrillOptions:
    args = cli.build_parser().parse_args(["drill", *argv])
    return drill.DrillOptions.from_args(args)


# Arguments


def test_no_argument_runs_the_whole_drill() -> None:
    assert parse() == drill.DrillOptions()


def test_every_option(tmp_path: Path) -> None:
    vars_file = tmp_path / "drill.yml"
    vars_file.write_text("restore_drill_smoke_queries:\n  - {name: customers, query: SELECT 1, expect: 1}\n")
    vault_file, key_file = tmp_path / "vault-pass", tmp_path / "id_ed25519"
    vault_file.write_text("not used here\n")
    key_file.write_text("not used here\n")
    options = parse(
        "-i",
        "inventories/production",
        "-l",
        "app-eu-1.example.com",
        "-e",
        "restore_drill_fresh_backup=true",
        "-e",
        "restore_drill_max_rto_s=600",
        "-e",
        "note=weekly drill",
        "--extra-vars",
        f"@{vars_file}",
        "-e",
        '{"restore_drill_max_rpo_hours": 2.5}',
        "--report-dir",
        "reports",
        "--artifacts-dir",
        "evidence",
        "--vault-password-file",
        str(vault_file),
        "--vault-password-file",
        str(vault_file),
        "--vault-id",
        "prod@prompt",
        "-u",
        "deploy",
        "--private-key",
        str(key_file),
        "-vv",
    )
    assert options.artifacts_dir == Path("evidence")
    assert options.vault_password_files == (vault_file, vault_file) and options.vault_ids == ("prod@prompt",)
    assert (options.user, options.private_key, options.verbosity) == ("deploy", key_file, 2)
    assert options.inventory == Path("inventories/production")
    assert options.limit == "app-eu-1.example.com"
    assert options.report_dir == Path("reports")
    assert options.extravars == {
        "restore_drill_fresh_backup": True,
        "restore_drill_max_rto_s": 600,
        "note": "weekly drill",
        "restore_drill_smoke_queries": [{"name": "customers", "query": "SELECT 1", "expect": 1}],
        "restore_drill_max_rpo_hours": 2.5,
    }


def test_a_later_extra_var_wins() -> None:
    assert drill.parse_extra_vars(["a=1", '{"a": 2}', "a=x"]) == {"a": "x"}


def test_an_empty_value_is_an_empty_string() -> None:
    assert drill.parse_extra_vars(["a="]) == {"a": ""}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["drill", "-e", "not a pair"], "expected KEY=VALUE"),
        (["drill", "-e", "1x=2"], "expected KEY=VALUE"),
        (["drill", "-e", "@/nonexistent/drill.yml"], "cannot read"),
        (["drill", "-e", "{not json"], "not a JSON object"),
        (["drill", "--bogus"], "unrecognized arguments"),
        (["drill", "--vault-password-file", "/nonexistent/pass"], "--vault-password-file /nonexistent/pass: no such"),
        (["drill", "--private-key", "/nonexistent/key"], "--private-key /nonexistent/key: no such file"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_with_the_usage_code(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == drill.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_vars_file_must_hold_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(drill.UsageError, match="must hold a mapping"):
        drill.parse_extra_vars([f"@{tmp_path / 'list.yml'}"])


def test_module_entry_point_answers_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stackops_cli", "drill", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--report-dir" in proc.stdout and "KEY=VALUE" in proc.stdout


def test_pip_installs_the_stackops_command(tmp_path: Path) -> None:
    """pyproject.toml builds the package and its console script (built from a copy: a build in the checkout would
    leave build/ and egg-info there)."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "stackops_cli", source / "stackops_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)]
    subprocess.run(pip, check=True, capture_output=True)
    command = [str(target / "bin" / "stackops"), "drill"]
    env = {**os.environ, "PYTHONPATH": str(target)}
    shown = subprocess.run([*command, "--help"], env=env, capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: stackops drill") and "--vault-password-file" in shown.stdout
    refused = subprocess.run(
        [*command, "--private-key", str(tmp_path / "none")], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == drill.EXIT_USAGE and "--private-key" in refused.stderr


def test_the_package_has_the_collections_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


# What ansible-runner is given


def test_runner_args(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    options = drill.DrillOptions(
        inventory=Path("inv"), limit="lab1", extravars={"restore_drill_amcheck": False}, report_dir=Path("out")
    )
    args = drill.runner_args(
        options, {"PATH": "/usr/bin"}, tmp_path, collections=tmp_path / "missing", bindir="/venv/bin"
    )
    assert args == {
        "playbook": "stackops.runbooks.restore_drill",
        "inventory": str(tmp_path / "inv"),
        "limit": "lab1",
        "extravars": {"restore_drill_amcheck": False, "restore_drill_report_dir": str(tmp_path / "out")},
        "envvars": {
            "ANSIBLE_NOCOLOR": "1",
            "PATH": "/venv/bin:/usr/bin",
            "STACKOPS_LAUNCHER": "cli",
            "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        },
        "quiet": True,
        "artifact_dir": str(tmp_path / "stackops-runs"),
        "rotate_artifacts": 0,
    }
    assert options.extravars == {"restore_drill_amcheck": False}, "the caller's options are not changed"


def test_vault_and_ssh_options_reach_ansible_playbook_as_paths(tmp_path: Path) -> None:
    options = drill.DrillOptions(
        vault_password_files=(Path("pass one"), Path("/etc/two")),
        vault_ids=("prod@/etc/prod-pass",),
        user="deploy",
        private_key=Path("keys/id"),
        verbosity=3,
        artifacts_dir=Path("/var/evidence"),
    )
    args = drill.runner_args(options, {"PATH": "/bin"}, tmp_path, bindir="/bin")
    assert args["cmdline"] == (
        f"--vault-password-file '{tmp_path}/pass one' --vault-password-file /etc/two --vault-id prod@/etc/prod-pass "
        f"--user deploy --private-key {tmp_path}/keys/id"
    )
    assert (args["verbosity"], args["artifact_dir"]) == (3, "/var/evidence")
    assert "cmdline" not in drill.runner_args(drill.DrillOptions(), {"PATH": "/bin"}, tmp_path, bindir="/bin")


def test_a_run_is_named_by_its_start_and_process() -> None:
    assert drill.run_ident(lambda: 1796608800.0) == f"drill-20261207T020000Z-{os.getpid()}"


def test_the_kept_command_masks_every_value_but_the_plain_settings(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_CONFIG": "/srv/ansible.cfg",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault-pass",
        "ANSIBLE_BECOME_PASS": "hunter2",
        "CONTROLLER_OAUTH_TOKEN": "tok-123",
        "STACKOPS_PG_PASSWORD": "pw-456",
    }
    command = tmp_path / "command"
    command.write_text(json.dumps({"command": ["ansible-playbook"], "cwd": "/srv", "env": env}))
    command.chmod(0o600)
    drill.scrub_command(tmp_path)
    kept = json.loads(command.read_text())
    assert kept["command"] == ["ansible-playbook"] and kept["cwd"] == "/srv"
    assert kept["env"] == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_CONFIG": "/srv/ansible.cfg",
        "ANSIBLE_VAULT_PASSWORD_FILE": drill.MASK,
        "ANSIBLE_BECOME_PASS": drill.MASK,
        "CONTROLLER_OAUTH_TOKEN": drill.MASK,
        "STACKOPS_PG_PASSWORD": drill.MASK,
    }
    assert command.stat().st_mode & 0o777 == 0o600
    drill.scrub_command(tmp_path / "missing")  # a run that never started leaves no command file


def test_runner_env_prefers_the_callers_settings(tmp_path: Path) -> None:
    collections = tmp_path / "collections"
    collections.mkdir()
    env = {"PATH": "/bin", "ANSIBLE_COLLECTIONS_PATH": "/opt/collections", "ANSIBLE_CONFIG": "/etc/ansible.cfg"}
    args = drill.runner_args(drill.DrillOptions(), env, tmp_path, collections=collections, bindir="/bin")
    assert args["envvars"]["PATH"] == "/bin", "the interpreter's directory is added once"
    assert args["envvars"]["ANSIBLE_COLLECTIONS_PATH"] == "/opt/collections"
    assert args["envvars"]["ANSIBLE_CONFIG"] == "/etc/ansible.cfg"
    assert "inventory" not in args and "limit" not in args
    args = drill.runner_args(drill.DrillOptions(), {"PATH": "/bin"}, tmp_path, collections=collections)
    assert args["envvars"]["ANSIBLE_COLLECTIONS_PATH"] == str(collections)
    assert "ANSIBLE_CONFIG" not in args["envvars"]


def test_default_collections_path_is_the_repositorys_build() -> None:
    assert drill.DEFAULT_COLLECTIONS == REPO / ".build" / "collections"


# Progress


def test_progress_lines_and_artifact() -> None:
    out = io.StringIO()
    ticks = iter(range(100))
    progress = drill.Progress(out, clock=lambda: float(next(ticks)))
    artifact = fake_artifact()
    events: list[dict[str, t.Any]] = [
        {"event": "playbook_on_start", "event_data": {}},
        {"event": "playbook_on_play_start", "event_data": {"play": "Drill each production database"}},
        {"event": "playbook_on_task_start", "event_data": {"task": "Find the backup"}},
        {"event": "runner_on_ok", "event_data": {"host": "lab1", "task": "Find the backup", "res": {"changed": False}}},
        {"event": "runner_on_ok", "event_data": {"host": "lab2", "task": "Find the backup", "res": {"changed": True}}},
        {"event": "runner_on_skipped", "event_data": {"host": "lab2", "res": {}}},
        {
            "event": "runner_on_failed",
            "event_data": {"host": "lab2", "ignore_errors": None, "res": {"msg": "checksum mismatch\nsecond line"}},
        },
        {"event": "runner_on_failed", "event_data": {"host": "lab1", "ignore_errors": True, "res": {"msg": "x"}}},
        {"event": "runner_on_unreachable", "event_data": {"host": "lab3", "res": {"msg": "ssh: connect refused"}}},
        {"event": "playbook_on_no_hosts_matched", "event_data": {}},
        {"event": "playbook_on_stats", "event_data": {"artifact_data": {"restore_drill": artifact}}},
    ]
    assert all(progress(event) is True for event in events), "every event is kept in the runner's artifacts"
    lines = out.getvalue().splitlines()
    assert lines == [
        "[    1.0s] PLAY Drill each production database",
        "[    2.0s]   TASK Find the backup",
        "[    3.0s]     ok               lab1",
        "[    4.0s]     changed          lab2",
        "[    5.0s]     FAILED           lab2: checksum mismatch",
        "[    6.0s]     failed (ignored) lab1: x",
        "[    7.0s]     UNREACHABLE      lab3: ssh: connect refused",
        "[    8.0s]     no hosts matched",
    ]
    assert progress.artifact == artifact


def test_artifact_is_found_in_the_events_too() -> None:
    artifact = fake_artifact()
    events = [{"event": "playbook_on_stats", "event_data": {"artifact_data": {"restore_drill": artifact}}}]
    assert drill._artifact_from_events(events) == artifact
    assert drill._artifact_from_events([{"event": "playbook_on_stats", "event_data": {}}]) is None


# Verdict


@pytest.mark.parametrize(
    ("runner_status", "artifact", "code"),
    [
        ("successful", fake_artifact("pass"), drill.EXIT_PASS),
        ("failed", fake_artifact("fail", bad=1), drill.EXIT_FAIL),
        ("successful", fake_artifact("fail", bad=1), drill.EXIT_FAIL),
        ("failed", fake_artifact("pass"), drill.EXIT_RUNNER_ERROR),
        ("failed", None, drill.EXIT_RUNNER_ERROR),
        ("timeout", None, drill.EXIT_RUNNER_ERROR),
        ("successful", {"report_json": "x"}, drill.EXIT_RUNNER_ERROR),
    ],
)
def test_exit_code(runner_status: str, artifact: dict[str, t.Any] | None, code: int) -> None:
    assert drill.exit_code(runner_status, artifact) == code


def test_summary_of_a_passed_drill() -> None:
    lines = drill.render_summary("successful", fake_artifact("pass"))
    assert lines[0] == "Restore drill 20261123T020000Z: PASS - 2/2 databases passed, 0 failed, 0 unreachable"
    assert "  JSON     /var/reports/restore-drill-20261123T020000Z.json" in lines
    assert "  Markdown /var/reports/restore-drill-20261123T020000Z.md" in lines
    assert "  HTML     /var/reports/restore-drill-20261123T020000Z.html" in lines
    assert not any("host" in line and "reason" in line for line in lines), "passing databases are not listed"


def test_summary_of_a_failed_drill_lists_what_did_not_pass() -> None:
    lines = drill.render_summary("failed", fake_artifact("fail", bad=2))
    text = "\n".join(lines)
    assert lines[0].startswith("Restore drill 20261123T020000Z: FAIL - 2/4 databases passed, 1 failed, 1 unreachable")
    assert "bad0" in text and "UNREACHABLE" in text and "reason 0" in text
    assert "bad1" in text and "FAILED" in text and "drill1" in text
    assert "Failed hosts: bad0, bad1" in lines
    assert "app0" not in text


def test_summary_fits_one_screen() -> None:
    lines = drill.render_summary("failed", fake_artifact("fail", bad=200, passed=800))
    assert len(lines) <= 24
    assert f"  ... and {200 - drill.SUMMARY_ROWS} more in the report" in lines


def test_summary_without_a_verdict() -> None:
    lines = drill.render_summary("failed", None)
    assert lines[0].startswith("Restore drill: NO VERDICT (ansible-runner status failed)")


def test_main_prints_the_summary_and_returns_the_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    evidence = Path("stackops-runs/drill-20261207T020000Z-1")
    run = drill.DrillRun("failed", fake_artifact("fail", bad=1), [], evidence)
    monkeypatch.setattr(drill, "run", lambda options, out: run)
    out = io.StringIO()
    assert drill.main(drill.DrillOptions(), out) == drill.EXIT_FAIL
    assert "FAIL - 2/3 databases passed" in out.getvalue()
    assert out.getvalue().splitlines()[-1].startswith(f"Evidence: {evidence} (ansible-runner's job events")


def test_main_shows_why_a_run_gave_no_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    tail = ["ERROR! the playbook: stackops.runbooks.restore_drill could not be found"]
    monkeypatch.setattr(drill, "run", lambda options, out: drill.DrillRun("failed", None, tail))
    out = io.StringIO()
    assert drill.main(drill.DrillOptions(), out) == drill.EXIT_RUNNER_ERROR
    assert out.getvalue().splitlines()[0] == tail[0]
    assert "NO VERDICT" in out.getvalue()


def test_main_reports_a_runner_that_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(options: drill.DrillOptions, out: t.TextIO) -> t.NoReturn:
        raise RuntimeError("private_data_dir is not writable")

    monkeypatch.setattr(drill, "run", broken)
    out = io.StringIO()
    assert drill.main(drill.DrillOptions(), out) == drill.EXIT_RUNNER_ERROR
    assert "private_data_dir is not writable" in out.getvalue()


def test_run_hands_the_events_to_the_progress_display(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    artifact = fake_artifact()
    seen: dict[str, t.Any] = {}

    class FakeRunner:
        status = "successful"
        events: t.ClassVar[list[dict[str, t.Any]]] = []

    def fake_run(**kwargs: t.Any) -> FakeRunner:
        seen.update(kwargs)
        kwargs["event_handler"]({"event": "playbook_on_task_start", "event_data": {"task": "Name the run"}})
        kwargs["event_handler"](
            {"event": "playbook_on_stats", "event_data": {"artifact_data": {"restore_drill": artifact}}}
        )
        return FakeRunner()

    monkeypatch.setattr(drill.ansible_runner, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    result = drill.run(drill.DrillOptions(limit="lab1"), out)
    assert result == drill.DrillRun("successful", artifact, [], tmp_path / "stackops-runs" / seen["ident"])
    assert (tmp_path / "stackops-runs").stat().st_mode & 0o777 == 0o700
    assert seen["playbook"] == "stackops.runbooks.restore_drill" and seen["limit"] == "lab1"
    assert Path(seen["private_data_dir"]).name.startswith("stackops-drill-")
    assert "TASK Name the run" in out.getvalue()
    json.dumps(seen["extravars"])  # what ansible-runner writes to env/extravars must be JSON
