"""Looking for the lab's secrets where they must not be: in a run's output and events, in ansible-runner's files,
in the process table, in files others can read. Values stay in memory: every report names a secret, never shows it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import threading
import time
import typing as t
import urllib.parse
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

import lab
from harness.paths import LAB_INVENTORY
from harness.playbook import PlaybookRun, _run

SECRET_NAME = re.compile(r"pass|secret|token|key", re.IGNORECASE)
# A PEM body line is 64 base64 characters: one such line of a private key is as secret as the key.
PEM_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$")
MIN_LENGTH = 8
READ_LIMIT = 8 * 1024 * 1024


class Secrets:
    """Named secret values. repr() and every message show names only, so a failing assertion cannot print one."""

    def __init__(self, values: Mapping[str, str]) -> None:
        short = [name for name, value in values.items() if len(value) < MIN_LENGTH]
        if short:
            raise ValueError(f"secrets shorter than {MIN_LENGTH} characters would match by chance: {short}")
        self._values = dict(values)
        # The forms a value takes in JSON (events, artifacts), in URLs (DSNs), and as it is.
        self._forms = sorted(
            {
                (form, name)
                for name, value in self._values.items()
                for form in (value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""))
            }
        )

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._values)})"

    def names(self) -> list[str]:
        return sorted(self._values)

    def value(self, name: str) -> str:
        return self._values[name]

    def plus(self, values: Mapping[str, str]) -> Secrets:
        return Secrets({**self._values, **values})

    def of(self, *prefixes: str) -> Secrets:
        """The secrets whose names start with one of the prefixes (a host's: "drill1 ")."""
        return Secrets({name: value for name, value in self._values.items() if name.startswith(prefixes)})

    def find(self, text: str | bytes) -> list[str]:
        """The names of the secrets that occur in text, in any of their forms."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return sorted({name for form, name in self._forms if form in text})

    def mask(self, text: str) -> str:
        for form, name in sorted(self._forms, key=lambda pair: -len(pair[0])):
            text = text.replace(form, f"<{name}>")
        return text

    def scan_tree(self, root: Path) -> dict[str, list[str]]:
        """Relative path -> secrets found, for every file under root (its first READ_LIMIT bytes)."""
        found = {}
        for path in files_under(root):
            try:
                names = self.find(b"\n".join(readable_contents(path)))
            except (OSError, EOFError, zipfile.BadZipFile):
                continue
            if names:
                found[str(path.relative_to(root))] = names
        return found


def readable_contents(path: Path) -> list[bytes]:
    """A file's bytes, a zip's members unpacked (Ansible's module payloads are zips, where text is deflated), or a
    gzip file's content (the routines' log exports)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(member)[:READ_LIMIT] for member in archive.namelist()]
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return [handle.read(READ_LIMIT)]
    with open(path, "rb") as handle:
        return [handle.read(READ_LIMIT)]


def files_under(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(Path(folder, name) for folder, _dirs, names in os.walk(root) for name in names)


def entries_under(root: Path) -> list[Path]:
    """root and every directory and file under it."""
    found = [root]
    for folder, dirs, names in os.walk(root):
        found += [Path(folder, name) for name in [*dirs, *names]]
    return found


def env_secrets(path: Path, label: str) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and SECRET_NAME.search(key) and value.strip():
            values[f"{label} {key.strip()}"] = value.strip().strip("'\"")
    return values


def key_lines(path: Path, label: str) -> dict[str, str]:
    """The body lines of a PEM or OpenSSH private key, each a secret of its own."""
    lines = [line for line in path.read_text().splitlines() if PEM_LINE.match(line)]
    return {f"{label} line {number}": line for number, line in enumerate(lines, 1)}


def lab_secrets() -> Secrets:
    """Every secret of the lab: the inventory's credentials of each host, the secret variables of each compose
    project's .env, nginx's TLS keys and the SSH key Ansible logs in with."""
    values: dict[str, str] = {}
    for folder in sorted((LAB_INVENTORY / "host_vars").iterdir()):
        for path in sorted(folder.glob("*.y*ml")):
            data = yaml.safe_load(path.read_text()) or {}
            values.update(
                {
                    f"{folder.name} {key}": str(value)
                    for key, value in data.items()
                    if SECRET_NAME.search(key) and isinstance(value, str | int) and str(value)
                }
            )
    for host in lab.load_hosts():
        if (host.dir / ".env").exists():
            values.update(env_secrets(host.dir / ".env", f"{host.name} .env"))
        for tls_key in sorted((host.dir / "nginx" / "tls").glob("*.key")):
            values.update(key_lines(tls_key, f"{host.name} {tls_key.name}"))
    ssh_key = lab.ROOT / "ssh" / "id_ed25519"
    if ssh_key.exists():
        values.update(key_lines(ssh_key, "ssh id_ed25519"))
    return Secrets(values)


# --- modes -----------------------------------------------------------------------------------------------------


def loose_modes(root: Path, dirs: int = 0o700, files: int = 0o600) -> dict[str, str]:
    """Entries under root (root included) whose permission bits are not exactly dirs/files: path -> octal mode."""
    loose = {}
    for path in entries_under(root):
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = dirs if path.is_dir() else files
        if not path.is_symlink() and mode != want:
            loose[str(path)] = oct(mode)
    return loose


def readable_by_others(path: Path) -> bool:
    """Whether a user who is neither the owner nor in the group can read path: o+r on it, o+x on every parent."""
    if not stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH:
        return False
    return all(stat.S_IMODE(parent.stat().st_mode) & stat.S_IXOTH for parent in path.parents)


def open_to_others(root: Path) -> list[str]:
    """Files under root another user could read, given every directory on the way."""
    return [str(path) for path in files_under(root) if readable_by_others(path)]


# --- runs ------------------------------------------------------------------------------------------------------


@dataclass
class PrivateFile:
    path: str
    mode: int
    secrets: list[str]


@dataclass
class KeptRun:
    """A run with what ansible-runner left on disk: its artifact directory (kept) and, seen as the run started,
    every file of its private data directory (which the harness removes afterwards, as AWX does)."""

    run: PlaybookRun
    artifact_dir: Path
    private: list[PrivateFile]
    private_dirs: dict[str, int]


def run_kept(
    playbook: str,
    artifacts: Path,
    secrets: Secrets,
    *,
    extravars: Mapping[str, t.Any],
    limit: str | None = None,
    diff: bool = False,
    verbosity: int = 3,
) -> KeptRun:
    """A playbook run through the harness (at -vvv by default), its artifacts kept under `artifacts`; the private
    data directory is read (modes, which secrets each file holds) when the run starts."""
    private: list[PrivateFile] = []
    private_dirs: dict[str, int] = {}

    def on_status(data: dict[str, t.Any], runner_config: t.Any) -> None:
        if data.get("status") != "starting":
            return
        root = Path(runner_config.private_data_dir)
        for path in entries_under(root):
            rel, mode = str(path.relative_to(root)), stat.S_IMODE(path.lstat().st_mode)
            if path.is_dir():
                private_dirs[rel] = mode
            elif path.is_file() and not path.is_relative_to(artifacts):
                private.append(PrivateFile(rel, mode, secrets.find(path.read_bytes()[:READ_LIMIT])))

    run = _run(
        False,
        diff,
        verbosity,
        900,
        playbook,
        playbook=playbook,
        inventory=str(LAB_INVENTORY),
        extravars=dict(extravars),
        limit=limit,
        artifact_dir=str(artifacts),
        status_handler=on_status,
    )
    return KeptRun(run, artifacts, private, private_dirs)


def run_texts(run: PlaybookRun) -> Iterable[tuple[str, str]]:
    """(where, text) of everything a run showed: its stdout and every event, as AWX stores them."""
    yield "stdout", run.stdout
    for number, event in enumerate(run.events):
        yield f"event {number} ({event.get('event')}, {event.get('event_data', {}).get('task', '')})", json.dumps(event)


# --- the process table -----------------------------------------------------------------------------------------


@dataclass
class Process:
    pid: int
    uid: int
    command: str
    in_command: list[str]
    in_environ: list[str]
    container: str | None  # "" on the host, None when it could not be told

    @property
    def program(self) -> str:
        return os.path.basename(self.command.split(" ", 1)[0])


def read_proc(pid: str, name: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as handle:
            return handle.read()
    except OSError:  # gone, or not ours to read
        return None


def proc_uid(pid: str) -> int | None:
    found = re.search(rb"^Uid:\s+(\d+)", read_proc(pid, "status") or b"", re.MULTILINE)
    return int(found.group(1)) if found else None


def proc_container(pid: str) -> str | None:
    """The Docker container a process runs in (the first 12 digits of its id, from its cgroup), "" for none, None
    when the process is gone."""
    cgroup = read_proc(pid, "cgroup")
    if cgroup is None:
        return None
    found = re.search(rb"/docker[/-]([0-9a-f]{12})", cgroup)
    return found.group(1).decode() if found else ""


class ProcessSampler(threading.Thread):
    """Reads every process's command line on the machine every `interval` seconds, and its environment once per
    command line, until stopped or `max_samples`/`max_seconds` is reached. Only secret names are kept per process;
    command lines are kept masked."""

    def __init__(
        self, secrets: Secrets, interval: float = 0.05, max_samples: int = 6000, max_seconds: float = 600
    ) -> None:
        super().__init__(daemon=True)
        self.secrets = secrets
        self.interval, self.max_samples, self.max_seconds = interval, max_samples, max_seconds
        self.seen: dict[tuple[int, bytes], Process] = {}
        self.samples = 0
        # When each sample ended (time.time()), to tell which stretches of a run were watched.
        self.times: list[float] = []
        self.stopped = threading.Event()

    def sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            raw = read_proc(pid, "cmdline")
            if not raw or (int(pid), raw) in self.seen:
                continue
            command = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", errors="replace")
            # Who and where before the environment: a process gone by then is attributed to no one.
            uid, container = proc_uid(pid), proc_container(pid)
            if uid is None:
                container = None
            environ = read_proc(pid, "environ") or b""
            self.seen[(int(pid), raw)] = Process(
                pid=int(pid),
                uid=-1 if uid is None else uid,
                command=self.secrets.mask(command),
                in_command=self.secrets.find(command),
                in_environ=self.secrets.find(environ.replace(b"\0", b"\n")),
                container=container,
            )
        self.samples += 1
        self.times.append(time.time())

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self.stopped.is_set() and self.samples < self.max_samples and time.monotonic() < deadline:
            self.sample()
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)

    def processes(self) -> list[Process]:
        return list(self.seen.values())

    def longest_gap(self, start: float, end: float) -> float:
        """The longest stretch of [start, end] (time.time()) in which no sample was taken."""
        marks = [start, *(when for when in self.times if start < when < end), end]
        return max(later - earlier for earlier, later in zip(marks, marks[1:]))

    def __enter__(self) -> ProcessSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
