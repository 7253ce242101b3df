"""Throw-away compose projects for module tests, on the lab's image with no network (network_mode: none)."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import lab
from harness.snapshot import Watched, forget, project_containers, watch

# A long-running service that stops at once on SIGTERM and reports healthy once it has started.
LOOP = ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; while :; do sleep 0.2; done"]
HEALTHY = {"test": ["CMD", "test", "-f", "/tmp/ready"], "interval": "1s", "timeout": "2s", "retries": 30}


def service(**extra: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "image": lab.image_tag(),
        "network_mode": "none",
        "restart": "unless-stopped",
        "command": LOOP,
        "healthcheck": HEALTHY,
        "environment": {"GREETING": "${GREETING:-hello}"},
    }
    spec.update(extra)
    return spec


def healthy_after(*names: str) -> dict[str, object]:
    return {"depends_on": {name: {"condition": "service_healthy"} for name in names}}


DEFAULT_SERVICES = {
    "db": service(),
    "backend": service(**healthy_after("db"), environment={"GREETING": "${GREETING:-hello}", "ROLE": "${ROLE:-api}"}),
    "frontend": service(**healthy_after("backend")),
    "worker": service(**healthy_after("db")),
    "migrate": service(
        command=["sh", "-c", "exit ${MIGRATE_EXIT:-0}"],
        restart="no",
        healthcheck={"disable": True},
        profiles=["oneshot"],
    ),
    "broken": service(
        healthcheck={"test": ["CMD", "false"], "interval": "1s", "timeout": "1s", "retries": 2},
        profiles=["broken"],
    ),
}


@dataclass
class ScratchProject:
    path: Path
    name: str
    host: str  # the lab host whose runs reach it (its snapshots read the project)

    def write(self, services: dict[str, object] | None = None, env: dict[str, str] | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        compose = {"name": self.name, "services": services or DEFAULT_SERVICES}
        (self.path / "compose.yaml").write_text(json.dumps(compose, indent=2))
        (self.path / ".env").write_text("".join(f"{k}={v}\n" for k, v in (env or {"GREETING": "hello"}).items()))

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", "--project-directory", str(self.path), "-p", self.name, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def ps(self) -> dict[str, list[dict]]:
        """Containers per service, read with plain `docker ps/inspect` (not the module's code)."""
        found: dict[str, list[dict]] = {}
        for item in project_containers(self.name):
            found.setdefault(item["Config"]["Labels"]["com.docker.compose.service"], []).append(item)
        return found

    def args(self, **extra: object) -> dict[str, object]:
        return {"project_src": str(self.path), **extra}

    def role_vars(self, role: str) -> dict[str, str]:
        """A role's project variables pointing at this project (both: the inventory names the lab's project)."""
        return {f"{role}_project_src": str(self.path), f"{role}_project_name": self.name}

    def remove(self) -> None:
        self.compose("--profile", "oneshot", "--profile", "broken", "down", "--volumes", "--timeout", "0")
        forget(self.host, Watched(projects={self.name}))


def new_project(root: Path, host: str = "lab1") -> ScratchProject:
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    project = ScratchProject(root / name, name, host)
    # The host's snapshots read its containers until it is removed: a check run must not start them.
    watch(host, Watched(projects={name}))
    project.write()
    return project
