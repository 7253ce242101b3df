"""`python -m stackops_cli drill`: run the restore drill through ansible-runner, with live progress and a verdict.

The exit code is what a scheduler (cron, CI) acts on: 0 only when every database passed, 2 when the drill ran and
some database failed or a host could not be reached, 3 when the run itself broke before it could judge.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import tempfile
import time
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml

PLAYBOOK = "stackops.runbooks.restore_drill"
ARTIFACT = "restore_drill"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_COLLECTIONS = REPO / ".build" / "collections"
BINDIR = str(Path(sys.executable).parent)

EXIT_PASS = 0
EXIT_FAIL = 2
EXIT_RUNNER_ERROR = 3
# Not 2, which argparse uses and which here means a failed drill.
EXIT_USAGE = 64

# How many failed or unreachable databases the summary lists before it only counts them: it fits one screen.
SUMMARY_ROWS = 15
OUTPUT_TAIL = 20
# Where each run's ansible-runner artifacts stay, as evidence (job events, stdout, status, rc, command), when
# --artifacts-dir is not given: relative to the working directory.
DEFAULT_ARTIFACTS = Path("stackops-runs")
# The environment variables whose values the kept `command` artifact shows. ansible-runner writes its whole
# environment there, and an operator's may hold tokens and passwords: every other value is masked.
SHOWN_ENV = re.compile(
    r"(PATH|HOME|USER|LOGNAME|LANG|LC_[A-Z]+|PWD|SHELL|TERM|VIRTUAL_ENV|ANSIBLE_(?!\w*(PASS|TOKEN|SECRET|KEY))\w+)"
)
MASK = "********"


class UsageError(ValueError):
    """A command-line value the drill cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class DrillOptions:
    inventory: Path | None = None
    limit: str | None = None
    extravars: dict[str, t.Any] = field(default_factory=dict)
    report_dir: Path | None = None
    vault_password_files: tuple[Path, ...] = ()
    vault_ids: tuple[str, ...] = ()
    user: str | None = None
    private_key: Path | None = None
    verbosity: int = 0
    artifacts_dir: Path = DEFAULT_ARTIFACTS

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DrillOptions:
        for path in args.vault_password_files or []:
            if not Path(path).is_file():
                raise UsageError(f"--vault-password-file {path}: no such file; give the file that holds the password")
        if args.private_key and not Path(args.private_key).is_file():
            raise UsageError(f"--private-key {args.private_key}: no such file; give the SSH private key's path")
        return cls(
            inventory=Path(args.inventory) if args.inventory else None,
            limit=args.limit or None,
            extravars=parse_extra_vars(args.extra_vars or []),
            report_dir=Path(args.report_dir) if args.report_dir else None,
            vault_password_files=tuple(Path(path) for path in args.vault_password_files or []),
            vault_ids=tuple(args.vault_ids or []),
            user=args.user or None,
            private_key=Path(args.private_key) if args.private_key else None,
            verbosity=args.verbose,
            artifacts_dir=Path(args.artifacts_dir) if args.artifacts_dir else DEFAULT_ARTIFACTS,
        )


def add_parser(commands: t.Any) -> argparse.ArgumentParser:
    """Add `drill` to the subcommands of `python -m stackops_cli` (the argparse subparsers action)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "drill",
        help=f"run {PLAYBOOK} with live progress and a summary",
        description=f"Run {PLAYBOOK} through ansible-runner. Exit 0 when every database passed, "
        f"{EXIT_FAIL} when the drill failed, {EXIT_RUNNER_ERROR} when the run broke.",
    )
    parser.add_argument("-i", "--inventory", metavar="INVENTORY", help="inventory file or directory")
    parser.add_argument(
        "-l",
        "--limit",
        metavar="LIMIT",
        help="host pattern of the production hosts to drill (the controller's plays run whatever it says)",
    )
    parser.add_argument(
        "-e",
        "--extra-vars",
        metavar="KEY=VALUE",
        action="append",
        dest="extra_vars",
        help="a variable (a value that parses as JSON is typed: true, 900, [...]); @FILE (YAML or JSON); "
        "or a JSON object. May be repeated.",
    )
    parser.add_argument("--report-dir", metavar="DIR", help="where the reports are written (restore_drill_report_dir)")
    parser.add_argument(
        "--artifacts-dir",
        metavar="DIR",
        help=f"where each run's ansible-runner artifacts are kept as evidence, one folder per run (default: "
        f"./{DEFAULT_ARTIFACTS})",
    )
    parser.add_argument(
        "--vault-password-file",
        metavar="FILE",
        action="append",
        dest="vault_password_files",
        help="a vault password file or script, as ansible-playbook takes it. May be repeated.",
    )
    parser.add_argument(
        "--vault-id",
        metavar="ID",
        action="append",
        dest="vault_ids",
        help="a vault identity (label@source), as ansible-playbook takes it. May be repeated.",
    )
    parser.add_argument("-u", "--user", metavar="USER", help="connect as this user (the inventory's ansible_user wins)")
    parser.add_argument(
        "--private-key",
        metavar="FILE",
        help="the SSH private key file (the inventory's ansible_ssh_private_key_file wins)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output; -vvv for connection debug")
    return parser


def _typed(value: str) -> t.Any:
    # `-e flag=true` must reach the roles as a boolean: ansible-core 2.19 refuses a string in a conditional.
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_extra_vars(values: Sequence[str]) -> dict[str, t.Any]:
    """KEY=VALUE, @FILE and JSON-object arguments of -e, merged in order (a later one wins)."""
    merged: dict[str, t.Any] = {}
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise UsageError(f"-e {value}: cannot read {path}: {exc}") from exc
            if not isinstance(loaded, dict):
                raise UsageError(f"-e {value}: {path} must hold a mapping of variables")
            merged.update(loaded)
        elif value.lstrip().startswith("{"):
            try:
                loaded = json.loads(value)
            except ValueError as exc:
                raise UsageError(f"-e {value!r}: not a JSON object: {exc}") from exc
            merged.update(loaded)
        else:
            key, sep, raw = value.partition("=")
            if not sep or not key.isidentifier():
                raise UsageError(f"-e {value!r}: expected KEY=VALUE with a variable name, @FILE or a JSON object")
            merged[key] = _typed(raw)
    return merged


def cmdline(options: DrillOptions, cwd: Path) -> str | None:
    """ansible-playbook's own options that ansible-runner has no argument for: vault and SSH. Paths, never secrets:
    the command line is kept in the artifacts and seen by `ps`."""
    args: list[str] = []
    for path in options.vault_password_files:
        args += ["--vault-password-file", str(cwd / path)]
    for vault_id in options.vault_ids:
        args += ["--vault-id", vault_id]
    if options.user:
        args += ["--user", options.user]
    if options.private_key:
        args += ["--private-key", str(cwd / options.private_key)]
    return shlex.join(args) or None


def run_ident(clock: t.Callable[[], float] = time.time) -> str:
    """The folder of one run's artifacts: when it started (UTC), then the process, so two runs never share one."""
    return f"drill-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(clock()))}-{os.getpid()}"


def runner_args(
    options: DrillOptions,
    environ: Mapping[str, str],
    cwd: Path,
    collections: Path = DEFAULT_COLLECTIONS,
    bindir: str = BINDIR,
) -> dict[str, t.Any]:
    """The keyword arguments of ansible_runner.run, less private_data_dir, event_handler and ident."""
    path = environ.get("PATH", os.defpath)
    # ansible-playbook is installed beside the Python that runs ansible-runner, which may not be on PATH
    # (`.venv/bin/python -m stackops_cli`).
    if bindir not in path.split(os.pathsep):
        path = os.pathsep.join([bindir, path])
    # The run's provenance says it was launched from here (stackops.runbooks.run_provenance's launcher).
    envvars = {"ANSIBLE_NOCOLOR": "1", "PATH": path, "STACKOPS_LAUNCHER": "cli"}
    if environ.get("ANSIBLE_COLLECTIONS_PATH"):
        envvars["ANSIBLE_COLLECTIONS_PATH"] = environ["ANSIBLE_COLLECTIONS_PATH"]
    elif collections.is_dir():
        envvars["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    # ansible-runner starts ansible-playbook in its own directory, where the caller's ansible.cfg is not found.
    if environ.get("ANSIBLE_CONFIG"):
        envvars["ANSIBLE_CONFIG"] = environ["ANSIBLE_CONFIG"]
    elif (cwd / "ansible.cfg").is_file():
        envvars["ANSIBLE_CONFIG"] = str(cwd / "ansible.cfg")
    extravars = dict(options.extravars)
    if options.report_dir is not None:
        extravars["restore_drill_report_dir"] = str(cwd / options.report_dir)
    args: dict[str, t.Any] = {
        "playbook": PLAYBOOK,
        "extravars": extravars,
        "envvars": envvars,
        "quiet": True,
        "artifact_dir": str(cwd / options.artifacts_dir),
        # Keep every run: the folder is the run's evidence, removed by its owner, not by the next run.
        "rotate_artifacts": 0,
    }
    if options.verbosity:
        args["verbosity"] = options.verbosity
    if (line := cmdline(options, cwd)) is not None:
        args["cmdline"] = line
    if options.inventory is not None:
        args["inventory"] = str(cwd / options.inventory)
    if (limit := options.limit or None) is not None:
        args["limit"] = limit
    return args


_HOST_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "FAILED",
    "runner_on_unreachable": "UNREACHABLE",
}


class Progress:
    """ansible-runner's event_handler: a line per play, task and host result, and the drill's set_stats."""

    def __init__(self, out: t.TextIO, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.started = clock()
        self.artifact: dict[str, t.Any] | None = None

    def _line(self, text: str) -> None:
        self.out.write(f"[{self.clock() - self.started:7.1f}s] {text}\n")
        self.out.flush()

    def __call__(self, event: Mapping[str, t.Any]) -> bool:
        kind = event.get("event", "")
        data: Mapping[str, t.Any] = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._line(f"PLAY {data.get('play', '')}")
        elif kind == "playbook_on_task_start":
            self._line(f"  TASK {data.get('task', '')}")
        elif kind in _HOST_EVENTS:
            res: Mapping[str, t.Any] = data.get("res") or {}
            status = _HOST_EVENTS[kind]
            if kind == "runner_on_ok" and res.get("changed"):
                status = "changed"
            elif kind == "runner_on_failed" and data.get("ignore_errors"):
                status = "failed (ignored)"
            detail = f": {str(res['msg']).splitlines()[0][:160]}" if kind != "runner_on_ok" and res.get("msg") else ""
            self._line(f"    {status:<16} {data.get('host', '?')}{detail}")
        elif kind == "playbook_on_no_hosts_matched":
            self._line("    no hosts matched")
        elif kind == "playbook_on_stats":
            artifact = (data.get("artifact_data") or {}).get(ARTIFACT)
            if isinstance(artifact, dict):
                self.artifact = artifact
        # True keeps the event in the runner's artifacts.
        return True


def exit_code(runner_status: str, artifact: Mapping[str, t.Any] | None) -> int:
    summary = (artifact or {}).get("summary")
    if not isinstance(summary, Mapping) or "status" not in summary:
        return EXIT_RUNNER_ERROR
    if summary["status"] != "pass":
        return EXIT_FAIL
    # A verdict of pass in a run that did not succeed means something broke after the verdict was written.
    return EXIT_PASS if runner_status == "successful" else EXIT_RUNNER_ERROR


def _cell(value: t.Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _row(host: str, database: str, drill_host: str, status: str, rto: str, rpo: str, reason: str) -> str:
    return f"  {host:<24} {database:<16} {drill_host:<16} {status:<12} {rto:>8} {rpo:>8}  {reason}"


def render_summary(runner_status: str, artifact: Mapping[str, t.Any] | None) -> list[str]:
    """The closing screen: the verdict, the databases that did not pass, and where the reports are."""
    artifact = artifact or {}
    summary = artifact.get("summary")
    if not isinstance(summary, Mapping):
        return [
            f"Restore drill: NO VERDICT (ansible-runner status {runner_status}): the run stopped before its report;",
            "see the output above.",
        ]
    lines = [
        f"Restore drill {artifact.get('run_id', '')}: {str(summary.get('status', '?')).upper()} - "
        f"{summary.get('passed', 0)}/{summary.get('databases', 0)} databases passed, "
        f"{summary.get('failed', 0)} failed, {summary.get('unreachable', 0)} unreachable",
    ]
    results = [r for r in artifact.get("results") or [] if isinstance(r, Mapping)]
    bad = [r for r in results if r.get("status") != "pass"]
    if bad:
        lines.append(_row("host", "database", "drill host", "status", "RTO s", "RPO h", "reason"))
        lines.extend(
            _row(
                _cell(r.get("host")),
                _cell(r.get("database")),
                _cell(r.get("drill_host")),
                _cell(r.get("status")).upper(),
                _cell(r.get("rto_s")),
                _cell(r.get("rpo_hours")),
                _cell(r.get("reason")),
            )
            for r in bad[:SUMMARY_ROWS]
        )
        if len(bad) > SUMMARY_ROWS:
            lines.append(f"  ... and {len(bad) - SUMMARY_ROWS} more in the report")
    if summary.get("failed_hosts"):
        lines.append(f"Failed hosts: {', '.join(map(str, summary['failed_hosts']))}")
    lines.append("Reports:")
    for label, key in (("JSON", "report_json"), ("Markdown", "report_md"), ("HTML", "report_html")):
        lines.append(f"  {label:<9}{_cell(artifact.get(key))}")
    if summary.get("status") == "pass" and runner_status != "successful":
        lines.append(f"ansible-runner ended {runner_status} after the verdict: see the task output above.")
    return lines


def _artifact_from_events(events: t.Iterable[Mapping[str, t.Any]]) -> dict[str, t.Any] | None:
    for event in events:
        if event.get("event") == "playbook_on_stats":
            artifact = ((event.get("event_data") or {}).get("artifact_data") or {}).get(ARTIFACT)
            if isinstance(artifact, dict):
                return artifact
    return None


@dataclass(frozen=True)
class DrillRun:
    status: str
    artifact: dict[str, t.Any] | None
    # The end of ansible-playbook's own output, shown when the run stopped before its verdict.
    output_tail: list[str] = field(default_factory=list)
    # The run's ansible-runner artifacts, kept.
    evidence: Path | None = None


def private_folder(path: Path) -> Path:
    """The artifacts folder, made 0700: the runs' output is the operators', not every local user's."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def scrub_command(evidence: Path) -> None:
    """Mask the environment values in the run's `command` artifact that SHOWN_ENV does not name."""
    path = evidence / "command"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    env = data.get("env")
    if isinstance(env, dict):
        data["env"] = {name: value if SHOWN_ENV.fullmatch(name) else MASK for name, value in env.items()}
        # Written in place: the file keeps the 0600 that ansible-runner gave it.
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def run(options: DrillOptions, out: t.TextIO = sys.stdout) -> DrillRun:
    """Run the drill: its ansible-runner status, its set_stats artifact (None when it never reported) and where
    ansible-runner's artifacts of the run are kept."""
    progress = Progress(out)
    args = runner_args(options, os.environ, Path.cwd())
    ident = run_ident()
    evidence = private_folder(Path(args["artifact_dir"])) / ident
    with tempfile.TemporaryDirectory(prefix="stackops-drill-") as private_data_dir:
        runner = ansible_runner.run(private_data_dir=private_data_dir, event_handler=progress, ident=ident, **args)
        artifact = progress.artifact or _artifact_from_events(runner.events)
        tail = [] if artifact else runner.stdout.read().splitlines()[-OUTPUT_TAIL:]
    scrub_command(evidence)
    return DrillRun(str(runner.status), artifact, tail, evidence)


def main(options: DrillOptions, out: t.TextIO = sys.stdout) -> int:
    try:
        result = run(options, out)
    except Exception as exc:
        out.write(f"Restore drill: ansible-runner could not run {PLAYBOOK}: {exc}\n")
        return EXIT_RUNNER_ERROR
    out.write("".join(f"{line}\n" for line in result.output_tail))
    out.write("\n".join(render_summary(result.status, result.artifact)) + "\n")
    if result.evidence is not None:
        out.write(f"Evidence: {result.evidence} (ansible-runner's job events, stdout, status and command)\n")
    return exit_code(result.status, result.artifact)
