# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Docker Compose v2 for the compose_* modules: finding the CLI, reading project and container state, predicting
what `up` would do, waiting for readiness. Parsers and planners are pure functions, tested over recorded output."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError

MINIMUM_VERSION = (2, 18, 0)
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
DAEMON_DOWN = "Cannot connect to the Docker daemon"
INSTALL_V2 = (
    "Install Compose v2: the `docker compose` CLI plugin (package docker-compose-plugin from Docker's repository, "
    "or docker-compose 2.x from Debian 13) or a standalone v2 `docker-compose` binary, and point `compose_cli` at it."
)
# Container states in which nothing runs (docker's own vocabulary).
STOPPED_STATES = ("created", "exited", "dead", "removing", "paused")
# Statuses of compose's progress lines that mean it would do something (see parse_dry_run).
WORKING_STATUSES = frozenset(
    (
        "Creating",
        "Created",
        "Recreate",
        "Recreated",
        "Starting",
        "Started",
        "Stopping",
        "Stopped",
        "Removing",
        "Removed",
        "Restarting",
        "Killing",
        "Killed",
        "Pulling",
        "Building",
    )
)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
IDLE_STATUSES = frozenset(("Running", "Waiting", "Healthy", "Exited", "Pulled", "Skipped", "Built"))


def common_argument_spec() -> dict[str, t.Any]:
    """Options every compose_* module takes, documented once in the stackops.runbooks.compose doc fragment."""
    return {
        "project_src": {"type": "path", "required": True},
        "files": {"type": "list", "elements": "path"},
        "project_name": {"type": "str"},
        "env_files": {"type": "list", "elements": "path"},
        "profiles": {"type": "list", "elements": "str"},
        "compose_cli": {"type": "path"},
    }


def project_argument_spec() -> dict[str, t.Any]:
    """The compose project of a module that runs a program in one of its services (pg_backup, pg_restore,
    redis_maintenance), documented once in the stackops.runbooks.compose.project doc fragment."""
    return {
        "compose_project_src": {"type": "path"},
        "compose_project_name": {"type": "str"},
        "compose_files": {"type": "list", "elements": "path"},
    }


class ComposeError(StackopsError):
    """A compose step failed."""


@dataclass(frozen=True)
class ProjectRef:
    """Where a compose project is and how to call it: the options of common_argument_spec."""

    project_src: str
    files: tuple[str, ...] = ()
    project_name: str | None = None
    env_files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    compose_cli: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, t.Any]) -> ProjectRef:
        """From a compose_* module's options (those common_argument_spec names; the optional ones may be absent)."""
        return cls(
            project_src=params["project_src"],
            files=tuple(params.get("files") or ()),
            project_name=params.get("project_name"),
            env_files=tuple(params.get("env_files") or ()),
            profiles=tuple(params.get("profiles") or ()),
            compose_cli=params.get("compose_cli"),
        )

    @classmethod
    def of_service(cls, params: Mapping[str, t.Any]) -> ProjectRef | None:
        """From the compose_project_* options of project_argument_spec; None when the program runs on the host."""
        if not params["compose_project_src"]:
            return None
        return cls(
            project_src=params["compose_project_src"],
            files=tuple(params["compose_files"] or ()),
            project_name=params["compose_project_name"],
        )


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    state: str
    health: str
    exit_code: int
    image: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[dict[str, t.Any]] = field(default_factory=list)
    started: str = ""
    restarts: int = 0
    oom_killed: bool = False
    memory_limit: int = 0  # bytes; 0 is no limit (HostConfig.Memory)

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting")

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "health": self.health,
            "exit_code": self.exit_code,
            "image": self.image,
            "created": self.created,
            "started": self.started,
            "restarts": self.restarts,
            "oom_killed": self.oom_killed,
            "memory_limit": self.memory_limit or None,
            "ports": self.ports,
        }


# One line per container; StartedAt last: the only field that could hold a space.
INSPECT_FORMAT = "{{.Id}} {{.RestartCount}} {{.State.OOMKilled}} {{.HostConfig.Memory}} {{.State.StartedAt}}"
# What a wait for readiness re-reads of containers it already knows: one `docker inspect` instead of `docker compose ps`
# plus an inspect each half second, about a sixth of the CPU on the host (Compose loads the project every time).
# `index` because Docker 20.10 fails the whole template on `.State.Health` of a container without a healthcheck.
POLL_FORMAT = (
    '{{.Id}} {{.State.Status}} {{with index .State "Health"}}{{.Status}}{{else}}-{{end}} {{.State.ExitCode}} '
    "{{.RestartCount}} {{.State.StartedAt}}"
)
SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
SIZE_UNITS.update({"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4})


def parse_inspected(stdout: str) -> dict[str, dict[str, t.Any]]:
    """Fields of Container by full container id, from `docker inspect --format INSPECT_FORMAT`."""
    seen: dict[str, dict[str, t.Any]] = {}
    for line in stdout.splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5 and parts[1].isdigit() and parts[3].isdigit():
            seen[parts[0]] = {
                "restarts": int(parts[1]),
                "oom_killed": parts[2] == "true",
                "memory_limit": int(parts[3]),
                "started": parts[4],
            }
    return seen


def parse_size(text: str) -> int | None:
    """'12.5MiB', '1.944GiB', '0B', '512kB' (docker stats' units) in bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", text)
    if not match or match.group(2).lower() not in SIZE_UNITS:
        return None
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def parse_polled(stdout: str) -> dict[str, dict[str, t.Any]]:
    """State, health, exit code, restarts and start time by full container id, from `docker inspect --format
    POLL_FORMAT`; health is "" for a container without a healthcheck, as `docker compose ps` shows it."""
    seen: dict[str, dict[str, t.Any]] = {}
    for line in stdout.splitlines():
        parts = line.split(" ", 5)
        if len(parts) == 6 and parts[3].lstrip("-").isdigit() and parts[4].isdigit():
            seen[parts[0]] = {
                "state": parts[1].lower(),
                "health": "" if parts[2] == "-" else parts[2].lower(),
                "exit_code": int(parts[3]),
                "restarts": int(parts[4]),
                "started": parts[5],
            }
    return seen


def parse_mem_usage(stdout: str) -> dict[str, int]:
    """Used bytes by container id from `docker stats --format '{{.ID}} {{.MemUsage}}'` ('ID 12.5MiB / 1.944GiB');
    a container that stopped meanwhile shows '0B / 0B' or '-- / --' and is left out."""
    used = {}
    for line in stdout.splitlines():
        cid, _sep, usage = line.strip().partition(" ")
        size = parse_size(usage.split("/")[0])
        if cid and size:
            used[cid] = size
    return used


def parse_version(text: str) -> tuple[int, int, int] | None:
    """'2.26.1-4', 'v2.29.7', 'Docker Compose version v2.18.1', 'docker-compose version 1.29.2, build ...'."""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def parse_labels(labels: t.Any) -> dict[str, str]:
    """`ps --format json` gives labels as one comma-joined string; values may themselves hold commas."""
    if isinstance(labels, dict):
        return {str(k): str(v) for k, v in labels.items()}
    result: dict[str, str] = {}
    last = None
    for part in (labels or "").split(","):
        if "=" in part and re.match(r"^[A-Za-z0-9_.\-/]+=", part):
            last, value = part.split("=", 1)
            result[last] = value
        elif last is not None:
            result[last] += f",{part}"
    return result


def parse_ps(stdout: str) -> list[Container]:
    """Containers from `docker compose ps --all --format json`: a JSON array before Compose 2.21.0, JSON Lines since
    (docker/compose#10918). `Publishers` is null for a container without published ports."""
    text = stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    containers = []
    for row in rows:
        labels = parse_labels(row.get("Labels"))
        containers.append(
            Container(
                id=row.get("ID", ""),
                name=row.get("Name", ""),
                service=row.get("Service") or labels.get("com.docker.compose.service", ""),
                state=(row.get("State") or "").lower(),
                health=(row.get("Health") or "").lower(),
                exit_code=int(row.get("ExitCode") or 0),
                image=row.get("Image", ""),
                created=str(row.get("CreatedAt") or row.get("Created") or ""),
                labels=labels,
                ports=[
                    {k.lower(): v for k, v in p.items()}
                    for p in (row.get("Publishers") or [])
                    if p.get("PublishedPort")
                ],
            )
        )
    return sorted(containers, key=lambda c: (c.service, c.name))


DRY_RUN_LINE = re.compile(
    r"^\s*DRY-RUN MODE -\s+(?P<kind>Container|Network|Volume|Image)\s+(?P<name>\S+)\s+(?P<status>[A-Za-z]+)"
)


def parse_dry_run(stderr: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(kind, name, status) actions compose would take, from `--dry-run` progress output; unknown lines."""
    actions, unknown = [], []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        match = DRY_RUN_LINE.match(line)
        if match and match.group("status") in WORKING_STATUSES | IDLE_STATUSES:
            actions.append((match.group("kind"), match.group("name"), match.group("status")))
        else:
            unknown.append(line.strip())
    return actions, unknown


def would_change(actions: list[tuple[str, str, str]]) -> bool:
    return any(status in WORKING_STATUSES for _kind, _name, status in actions)


def dependency_order(services: dict[str, t.Any], wanted: list[str], dependants: bool) -> list[str]:
    """`wanted`, plus every service that (transitively) depends on one of them when `dependants`, ordered so
    that a service comes after everything it depends on: the runbooks' "restart the database, wait, then the
    backend"."""
    depends = {name: sorted((spec or {}).get("depends_on") or {}) for name, spec in services.items()}
    chosen = set(wanted)
    if dependants:
        grew = True
        while grew:
            grew = False
            for name, needs in depends.items():
                if name not in chosen and chosen.intersection(needs):
                    chosen.add(name)
                    grew = True
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ComposeError(f"Services depend on each other in a cycle through {name!r}; fix depends_on.")
        visiting.add(name)
        for need in depends.get(name, []):
            visit(need)
        visiting.discard(name)
        ordered.append(name)

    for name in sorted(services):
        visit(name)
    return [name for name in ordered if name in chosen]


def dependencies_of(services: dict[str, t.Any], wanted: list[str]) -> list[str]:
    """`wanted` and everything they need to run (compose starts those too)."""
    found: list[str] = []
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in found:
            continue
        found.append(name)
        stack.extend(sorted((services.get(name) or {}).get("depends_on") or {}))
    return sorted(found)


def is_one_shot(spec: dict[str, t.Any]) -> bool:
    return (spec or {}).get("restart") in (None, "", "no")


def readiness_problems(
    containers: list[Container], services: dict[str, t.Any], wanted: list[str]
) -> tuple[list[str], bool]:
    """What keeps the wanted services from being ready, and whether that can still change by waiting.

    Ready means: every container running, and healthy where it has a healthcheck; a one-shot service (no restart
    policy) that exited 0 has done its job. Compose's own `--wait` is not trusted: 2.26.1 returned 0 while a
    one-shot service had exited 3, and other releases fail on one-shots that exited 0 (docker/compose#10596).
    """
    problems, final = [], False
    for name in wanted:
        mine = [c for c in containers if c.service == name]
        if not mine:
            problems.append(f"service {name} has no container")
            continue
        for c in mine:
            # Docker sets the exit code when the process ends; a one-shot has no restart to run it again, so a
            # non-zero code is its end even where the listing still says running (seen from Compose 2.26.1).
            if (c.state == "exited" or c.exit_code != 0) and is_one_shot(services.get(name, {})):
                if c.exit_code != 0:
                    problems.append(f"{c.name} (one-shot service {name}) exited with code {c.exit_code}")
                    final = True
            elif c.state != "running":
                problems.append(
                    f"{c.name} is {c.state}" + (f" (exit code {c.exit_code})" if c.state == "exited" else "")
                )
            elif c.health not in ("", "healthy"):
                problems.append(f"{c.name} is {c.health}")
    return problems, final


class ComposeProject:
    """One compose project as the CLI sees it; every call is an argv list through module.run_command."""

    def __init__(self, module: t.Any, ref: ProjectRef) -> None:
        self.module = module
        self.project_src = ref.project_src
        self.files = list(ref.files)
        self.project_name = ref.project_name
        self.env_files = list(ref.env_files)
        self.profiles = list(ref.profiles)
        self.check_inputs()
        self.cli, self.version = self.find_cli(ref.compose_cli)
        self._config: dict[str, t.Any] | None = None

    # --- finding things ---------------------------------------------------------------------------------

    def check_inputs(self) -> None:
        if not os.path.isdir(self.project_src):
            raise ComposeError(
                f"project_src {self.project_src} is not a directory; "
                "point it at the folder that holds the compose file."
            )
        if self.files:
            for name in self.files:
                path = name if os.path.isabs(name) else os.path.join(self.project_src, name)
                if not os.path.isfile(path):
                    raise ComposeError(f"Compose file {name} does not exist (looked for {path}); fix `files`.")
        elif not any(os.path.isfile(os.path.join(self.project_src, name)) for name in COMPOSE_FILES):
            raise ComposeError(
                f"No compose file in {self.project_src} (looked for {', '.join(COMPOSE_FILES)}); "
                "add one or name it in `files`."
            )
        for name in self.env_files:
            path = name if os.path.isabs(name) else os.path.join(self.project_src, name)
            if not os.path.isfile(path):
                raise ComposeError(f"env file {name} does not exist (looked for {path}); fix `env_files`.")

    def find_cli(self, compose_cli: str | None) -> tuple[list[str], tuple[int, int, int]]:
        candidates: list[list[str]] = []
        if compose_cli:
            standalone = os.path.basename(compose_cli).startswith("docker-compose")
            candidates.append([compose_cli] if standalone else [compose_cli, "compose"])
        else:
            docker = self.module.get_bin_path("docker")
            if docker:
                candidates.append([docker, "compose"])
            standalone_bin = self.module.get_bin_path("docker-compose")
            if standalone_bin:
                candidates.append([standalone_bin])
        if not candidates:
            raise ComposeError(f"Neither `docker` nor `docker-compose` is on PATH. {INSTALL_V2}")
        found = []
        for cli in candidates:
            rc, out, err = self.module.run_command([*cli, "version", "--short"], environ_update=self.environ())
            version = parse_version(out) if rc == 0 else None
            if version is None and len(cli) == 1:
                # Compose v1 has no `version --short` in some builds: ask the long form.
                rc, out, err = self.module.run_command([*cli, "version"], environ_update=self.environ())
                version = parse_version(out) if rc == 0 else None
            if version is None:
                found.append(f"{' '.join(cli)}: not a working Compose ({(err or out).strip()[:200]})")
                continue
            if version[0] < 2:
                found.append(f"{' '.join(cli)} is Compose v1 {'.'.join(map(str, version))}, which is end of life")
                continue
            if version < MINIMUM_VERSION:
                found.append(
                    f"{' '.join(cli)} is Compose {'.'.join(map(str, version))}; "
                    f"version {'.'.join(map(str, MINIMUM_VERSION))} or later is needed"
                )
                continue
            return cli, version
        raise ComposeError(f"No usable Compose v2 found: {'; '.join(found)}. {INSTALL_V2}")

    def environ(self) -> dict[str, str]:
        # The compose CLI must never wait for a terminal, and its output must be plain.
        return {"COMPOSE_ANSI": "never", "COMPOSE_INTERACTIVE_NO_CLI": "1", "DOCKER_CLI_HINTS": "false"}

    def base_args(self) -> list[str]:
        args = [*self.cli, "--ansi", "never"]
        if self.version >= (2, 19, 0):
            args += ["--progress", "plain"]
        args += ["--project-directory", self.project_src]
        for name in self.files:
            args += ["-f", name if os.path.isabs(name) else os.path.join(self.project_src, name)]
        if self.project_name:
            args += ["-p", self.project_name]
        for name in self.env_files:
            args += ["--env-file", name if os.path.isabs(name) else os.path.join(self.project_src, name)]
        for profile in self.profiles:
            args += ["--profile", profile]
        return args

    # --- running ----------------------------------------------------------------------------------------

    def call(
        self, *args: str, check: bool = True, data: str | None = None, environ_update: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        argv = [*self.base_args(), *args]
        rc, out, err = self.module.run_command(
            argv,
            cwd=self.project_src,
            environ_update={**self.environ(), **(environ_update or {})},
            data=data,
            binary_data=data is not None,
        )
        if check and rc != 0:
            self.raise_for(argv, rc, out, err)
        return rc, out, err

    @staticmethod
    def raise_for(argv: list[str], rc: int, out: str, err: str) -> t.NoReturn:
        text = (err or out).strip()
        if DAEMON_DOWN in text:
            raise ComposeError(
                f"The Docker daemon does not answer ({text.splitlines()[-1]}); "
                "start it (e.g. `systemctl start docker`) and run again.",
                cmd=argv,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        raise ComposeError(
            f"`{' '.join(argv[len(argv) - 3 :])}` failed with exit code {rc}: {text[-1500:]}",
            cmd=argv,
            rc=rc,
            stdout=out,
            stderr=err,
        )

    # --- reading ----------------------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, t.Any]:
        """The resolved project model (`config --format json`). It holds resolved environment values: never
        return it or put it in a message."""
        if self._config is None:
            _rc, out, _err = self.call("config", "--format", "json")
            try:
                self._config = json.loads(out)
            except ValueError as exc:
                raise ComposeError(f"`docker compose config` printed something that is not JSON: {out[:300]}") from exc
        return self._config

    @property
    def services(self) -> dict[str, t.Any]:
        return self.config.get("services") or {}

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.project_name or "")

    def check_services(self, wanted: list[str]) -> None:
        unknown = sorted(set(wanted) - set(self.services))
        if unknown:
            raise ComposeError(
                f"Service(s) {', '.join(unknown)} not defined in project {self.name} "
                f"(it has: {', '.join(sorted(self.services)) or 'none'}); fix `services` or `profiles`."
            )

    def containers(self) -> list[Container]:
        _rc, out, _err = self.call("ps", "--all", "--format", "json")
        try:
            found = parse_ps(out)
        except ValueError as exc:
            raise ComposeError(f"Could not read `docker compose ps --format json` output: {exc}: {out[:300]}") from exc
        return self.with_inspected(found)

    def with_inspected(self, containers: list[Container]) -> list[Container]:
        """The containers with what `ps` does not show: start time, restarts, the OOM kill flag, the memory limit."""
        if not containers:
            return containers
        rc, out, _err = self.module.run_command(
            [*self.docker(), "inspect", "--format", INSPECT_FORMAT, *[c.id for c in containers]],
            environ_update=self.environ(),
        )
        seen = parse_inspected(out) if rc == 0 else {}
        return [
            dataclasses.replace(c, **next((v for k, v in seen.items() if k.startswith(c.id)), {})) for c in containers
        ]

    def polled(self, containers: list[Container], wanted: list[str]) -> list[Container]:
        """The same containers re-read with one `docker inspect`; the full listing when that cannot answer for all of
        them (one was removed or replaced) or a wanted service has no container yet (one may have been created)."""
        if not containers or not {c.service for c in containers} >= set(wanted):
            return self.containers()
        rc, out, _err = self.module.run_command(
            [*self.docker(), "inspect", "--format", POLL_FORMAT, *[c.id for c in containers]],
            environ_update=self.environ(),
        )
        seen = parse_polled(out) if rc == 0 else {}
        fresh = [next((v for k, v in seen.items() if k.startswith(c.id)), None) for c in containers]
        if not all(fresh):
            return self.containers()
        return [dataclasses.replace(c, **f) for c, f in zip(containers, fresh) if f]

    def memory_used(self, containers: list[Container]) -> dict[str, int]:
        """Bytes of memory each running container with a memory limit uses, by container id, as `docker stats` counts
        it (without the page cache); {} when stats cannot be read. Only those with a limit: their use is what is
        judged, and `docker stats --no-stream` takes about two seconds (it samples twice, for CPU)."""
        running = [c.id for c in containers if c.state == "running" and c.memory_limit]
        if not running:
            return {}
        rc, out, _err = self.module.run_command(
            [*self.docker(), "stats", "--no-stream", "--no-trunc", "--format", "{{.ID}} {{.MemUsage}}", *running],
            environ_update=self.environ(),
        )
        return parse_mem_usage(out) if rc == 0 else {}

    def volumes(self) -> list[str]:
        docker = self.docker()
        rc, out, _err = self.module.run_command(
            [*docker, "volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={self.name}"],
            environ_update=self.environ(),
        )
        return out.split() if rc == 0 else []

    def docker(self) -> list[str]:
        """The docker CLI beside the compose one, for plain container and volume queries."""
        return [self.cli[0]] if len(self.cli) == 2 else [self.module.get_bin_path("docker", required=True)]

    def logs(self, services: list[str], tail: str = "all", since: str | None = None, timestamps: bool = False) -> str:
        args = ["logs", "--no-color", "--tail", tail]
        if since:
            args += ["--since", since]
        if timestamps:
            args.append("--timestamps")
        _rc, out, _err = self.call(*args, *services)
        # Compose 2.26.1 still writes an erase-line escape before the first line despite --no-color.
        return ANSI_ESCAPE.sub("", out)

    def wait_ready(self, wanted: list[str], timeout: int) -> list[Container]:
        """Poll until the wanted services are ready; ComposeError with states and last log lines otherwise."""
        deadline = time.monotonic() + timeout
        containers = self.containers()
        while True:
            problems, final = readiness_problems(containers, self.services, wanted)
            if not problems:
                return containers
            if final or time.monotonic() >= deadline:
                bad = sorted({c.service for c in containers if any(c.name in p for p in problems)} or set(wanted))
                raise ComposeError(
                    f"Not ready{'' if final else f' after {timeout} s'}: {'; '.join(problems)}.",
                    containers=[c.as_dict() | {"service": c.service} for c in containers],
                    logs=self.logs(bad, tail="30").splitlines()[-60:],
                )
            time.sleep(0.5)
            containers = self.polled(containers, wanted)


def service_project(
    module: t.Any, ref: ProjectRef, service: str, error: type[StackopsError] = ComposeError
) -> ComposeProject:
    """The project with `service` defined and running; `error` is the exception a module raises when it is not."""
    project = ComposeProject(module, ref)
    project.check_services([service])
    if not any(c.service == service and c.running for c in project.containers()):
        raise error(
            f"Service {service} of {ref.project_src} has no running container; "
            "start it first (stackops.runbooks.compose_service state=started)."
        )
    return project


def by_service(containers: list[Container], services: dict[str, t.Any], names: t.Iterable[str]) -> dict[str, t.Any]:
    """The per-service part of a result: containers, an overall state and health, and whether it is ready."""
    result = {}
    for name in sorted(names):
        mine = [c for c in containers if c.service == name]
        states = sorted({c.state for c in mine})
        healths = sorted({c.health for c in mine if c.health})
        problems, _final = readiness_problems(containers, services, [name])
        result[name] = {
            "containers": [c.as_dict() for c in mine],
            "state": states[0] if len(states) == 1 else ("absent" if not states else "mixed"),
            "health": healths[0] if len(healths) == 1 else ("" if not healths else "mixed"),
            "restarts": sum(c.restarts for c in mine),
            "ready": not problems,
            "problems": problems,
        }
    return result


def fingerprint(containers: list[Container]) -> dict[str, tuple[str, str, str]]:
    """What `changed` is computed from: each container's id, whether it runs, and when it last started (a one-shot
    service that ran again is a change even though it is `exited` before and after)."""
    return {c.name: (c.id, "running" if c.running else c.state, c.started) for c in containers}
