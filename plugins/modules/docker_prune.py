#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_prune
short_description: Remove the Docker leftovers that are safe to remove, listed first, never volumes
version_added: 0.1.0
description:
  - The runbooks' weekly C(docker system prune -f), made safe for a production host. C(system prune) removes every
    stopped container, including a compose service stopped on purpose for maintenance, whose removal loses its
    logs and its place in the project, and every unused network.
  - This module removes only what nothing refers to, and only when it is older than O(older_than). Dangling images
    (untagged, used by no container, stopped ones included), and stopped containers that do not carry any of
    O(keep_labels) (by default, containers of a compose project are kept).
  - Volumes, networks, tagged images and build cache are never touched.
  - Everything it removes is planned first, by id, from C(docker inspect); the real run removes exactly that plan,
    so check mode lists the same things.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: Check mode returns the plan (what would be removed) and removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run finds nothing left to remove and reports no change.
  platform:
    platforms: posix
options:
  images:
    description: Remove dangling images (untagged and used by no container) older than O(older_than).
    type: bool
    default: true
  containers:
    description:
      - Remove stopped containers (exited, created or dead) that stopped (or were created, if they never ran)
        longer than O(older_than) ago and carry none of O(keep_labels).
    type: bool
    default: true
  older_than:
    description:
      - Only what is at least this old, as a number and a unit, V(s), V(m), V(h) or V(d) (V(168h), V(7d)).
        V(0s) takes everything that qualifies.
    type: str
    default: 168h
  keep_labels:
    description:
      - Containers with any of these labels (by name) are never removed.
      - The default keeps every container of a compose project, for a stopped service is part of its project.
    type: list
    elements: str
    default: [com.docker.compose.project]
  labels:
    description:
      - Only images and containers that carry all of these labels, each as C(name) or C(name=value), are candidates
        (for a job that cleans up only what it made).
    type: list
    elements: str
    default: []
  docker_cli:
    description: The C(docker) CLI to use. Default is C(docker) on E(PATH).
    type: path
requirements:
  - Docker Engine (the C(docker) CLI on the managed host).
seealso:
  - module: stackops.runbooks.compose_service
"""

EXAMPLES = r"""
- name: List what the weekly prune would remove
  stackops.runbooks.docker_prune:
  check_mode: true
  register: prune_plan

- name: Remove dangling images and stray stopped containers older than a week
  stackops.runbooks.docker_prune:
    older_than: 7d

- name: Only images, a day old or more
  stackops.runbooks.docker_prune:
    containers: false
    older_than: 24h
"""

RETURN = r"""
images:
  description: Dangling images removed (or that would be removed), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The image id.
      type: str
    created:
      description: When the image was created (UTC, ISO 8601).
      type: str
    size:
      description: Its size in bytes.
      type: int
  sample: [{id: "sha256:1582f0...", created: "2026-11-01T09:40:37Z", size: 12582912}]
containers:
  description: Stopped containers removed (or that would be removed), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The container id.
      type: str
    name:
      description: The container name.
      type: str
    image:
      description: The image the container was made from, as it was given.
      type: str
    state:
      description: Its state (exited, created or dead).
      type: str
    stopped:
      description: When it stopped, or was created if it never ran (UTC, ISO 8601).
      type: str
  sample:
    - {id: "7c4b3bc0df2e...", name: "/debug-shell", image: "debian:12", state: exited, stopped: "2026-11-01T09:40:38Z"}
reclaimed_bytes:
  description: The size of the removed images (containers' writable layers are not counted).
  returned: always
  type: int
kept:
  description: Candidates docker refused to remove (started again, or used since the plan was made), with its answer.
  returned: always
  type: list
  elements: dict
"""

import dataclasses
import json
import re
import time
import typing as t
from calendar import timegm
from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute, options_of

DURATION = re.compile(r"^(\d+)\s*([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STOPPED_STATES = ("exited", "created", "dead")
# docker's zero time, for a container that never ran.
NEVER = "0001-01-01T00:00:00Z"


class PruneError(StackopsError):
    """Docker could not be read, or the input is wrong."""


def argument_spec() -> dict[str, t.Any]:
    return {
        "images": {"type": "bool", "default": True},
        "containers": {"type": "bool", "default": True},
        "older_than": {"type": "str", "default": "168h"},
        "keep_labels": {"type": "list", "elements": "str", "default": ["com.docker.compose.project"]},
        "labels": {"type": "list", "elements": "str", "default": []},
        "docker_cli": {"type": "path"},
    }


def seconds(duration: str) -> int:
    match = DURATION.match(duration.strip())
    if not match:
        raise PruneError(f"older_than {duration!r} is not a duration; write a number and a unit: 168h, 7d, 30m.")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def epoch(stamp: str) -> float:
    """Seconds since the epoch of docker's RFC 3339 times (nanoseconds, Z or an offset)."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
    if not match:
        raise PruneError(f"docker gave a time this module cannot read: {stamp!r}.")
    base = timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    zone = match.group(2)
    if zone == "Z":
        return base
    sign = 1 if zone[0] == "+" else -1
    return base - sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)


def iso(stamp: str) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch(stamp)))


def wanted(labels: t.Sequence[str]) -> t.Callable[[dict[str, str] | None], bool]:
    """A test of an object's labels: all of `name` or `name=value` must be there."""
    pairs = [label.partition("=") for label in labels]

    def test(have: dict[str, str] | None) -> bool:
        have = have or {}
        return all(name in have and (not sep or have[name] == value) for name, sep, value in pairs)

    return test


def plan_images(
    images: list[dict[str, t.Any]], used: set[str], cutoff: float, labels: t.Sequence[str]
) -> list[dict[str, t.Any]]:
    """Dangling images (no tag) that no container uses and that were created before the cutoff."""
    match = wanted(labels)
    found = [
        {"id": image["Id"], "created": iso(image["Created"]), "size": int(image.get("Size") or 0)}
        for image in images
        if not image.get("RepoTags")
        and image["Id"] not in used
        and epoch(image["Created"]) <= cutoff
        and match((image.get("Config") or {}).get("Labels"))
    ]
    return sorted(found, key=lambda image: image["created"])


def plan_containers(
    containers: list[dict[str, t.Any]], keep: t.Sequence[str], cutoff: float, labels: t.Sequence[str]
) -> list[dict[str, t.Any]]:
    """Stopped containers without a kept label, stopped (or created, if they never ran) before the cutoff."""
    match = wanted(labels)
    found = []
    for container in containers:
        state = container["State"]
        have = container["Config"].get("Labels") or {}
        if state["Status"] not in STOPPED_STATES or any(name in have for name in keep) or not match(have):
            continue
        stopped = state.get("FinishedAt") or NEVER
        if stopped.startswith("0001-"):
            stopped = container["Created"]
        if epoch(stopped) > cutoff:
            continue
        found.append(
            {
                "id": container["Id"],
                "name": container["Name"],
                "image": container["Config"].get("Image", ""),
                "state": state["Status"],
                "stopped": iso(stopped),
            }
        )
    return sorted(found, key=lambda container: container["stopped"])


class Docker:
    def __init__(self, module: AnsibleModule, cli: str | None) -> None:
        """`cli` is the docker_cli option; None looks for docker on PATH."""
        self.module = module
        self.cli = cli or module.get_bin_path("docker")
        if not self.cli:
            raise PruneError("The docker CLI is not on PATH; install Docker Engine or give docker_cli.")

    def run(self, *args: str) -> tuple[int, str, str]:
        return self.module.run_command([self.cli, *args], environ_update={"DOCKER_CLI_HINTS": "false"})

    def read(self, *args: str) -> str:
        rc, out, err = self.run(*args)
        if rc != 0:
            raise PruneError(f"`docker {' '.join(args[:3])}` failed with exit code {rc}: {(err or out).strip()}")
        return out

    def inspect(self, kind: str, ids: list[str]) -> list[dict[str, t.Any]]:
        # Inspected in one call: an object removed in between makes docker exit 1 but still print the others.
        if not ids:
            return []
        rc, out, err = self.run(kind, "inspect", *ids)
        try:
            return t.cast(list, json.loads(out or "[]"))
        except ValueError:
            raise PruneError(f"`docker {kind} inspect` failed with exit code {rc}: {err.strip()}") from None

    def remove(self, kind: str, planned: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
        """Remove each planned object (never forced); those docker refuses are returned with its answer."""
        kept = []
        for item in planned:
            rc, out, err = self.run(kind, "rm", item["id"])
            if rc != 0:
                kept.append({"kind": kind, "id": item["id"], "reason": (err or out).strip()})
        return kept


@dataclasses.dataclass(frozen=True)
class Options:
    """docker_prune's options once checked: what the planner and executor read, instead of the params."""

    images: bool
    containers: bool
    older_than: int  # seconds
    keep_labels: tuple[str, ...]
    labels: tuple[str, ...]
    docker_cli: str | None


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Validate what the argument spec cannot; older_than in seconds. A label with no name matches nothing (labels)
    or keeps nothing (keep_labels): a typo, never meant."""
    for option in ("labels", "keep_labels"):
        for label in params[option]:
            if not label.partition("=")[0].strip():
                raise PruneError(f"{option} has {label!r}, a label without a name; write name or name=value.")
    return options_of(
        Options,
        params,
        older_than=seconds(params["older_than"]),
    )


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    cutoff = time.time() - o.older_than
    docker = Docker(module, o.docker_cli)
    containers = docker.inspect("container", docker.read("ps", "-aq", "--no-trunc").split())
    images: list[dict[str, t.Any]] = []
    if o.images:
        used = {container["Image"] for container in containers}
        dangling = docker.read("image", "ls", "-q", "--no-trunc", "--filter", "dangling=true").split()
        images = plan_images(docker.inspect("image", sorted(set(dangling))), used, cutoff, o.labels)
    stray: list[dict[str, t.Any]] = []
    if o.containers:
        stray = plan_containers(containers, o.keep_labels, cutoff, o.labels)
    result: dict[str, t.Any] = {
        "changed": bool(images or stray),
        "images": images,
        "containers": stray,
        "reclaimed_bytes": sum(image["size"] for image in images),
        "kept": [],
    }
    if module.check_mode or not result["changed"]:
        return result
    # Containers first: an image of a removed stray container may be dangling and free only afterwards, but it
    # was not planned, so it waits for the next run rather than being removed unseen.
    kept = docker.remove("container", stray) + docker.remove("image", images)
    refused = {item["id"] for item in kept}
    result["kept"] = kept
    result["reclaimed_bytes"] = sum(image["size"] for image in images if image["id"] not in refused)
    result["changed"] = len(refused) < len(images) + len(stray)
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
