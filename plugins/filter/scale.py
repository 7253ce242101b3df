# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The plan of the scale role: which replicas of a service run on which ports, nginx's upstream servers for them,
and which replicas that run now are to go. Replica 1 is the service itself; replica k (2 and up) is the service
alone in its own compose project, `<project>-<service>-<k>`, on port `first_port + k - 2` (host networking: two
containers cannot share a port)."""

from __future__ import annotations

import re
import typing as t


def replica(project: str, service: str, address: str, index: int, port: int) -> dict[str, t.Any]:
    server = f"{address}:{port}"
    return {
        "index": index,
        "project": f"{project}-{service}-{index}",
        "port": port,
        "server": server,
        "url": f"http://{server}",
    }


def read_lines(lines: list[str]) -> tuple[list[str], bool, list[str]]:
    """The role's one-round-trip read (inspect.yml): `files A,B` (the compose files the service's container was made
    from), `override yes|` and one `replica PROJECT` per replica container. Other lines (ssh's "Shared connection
    ... closed.") are ignored."""
    files: list[str] = []
    override = False
    projects: list[str] = []
    for line in (raw.strip() for raw in lines):
        label, _sep, rest = line.partition(" ")
        rest = rest.strip()
        if label == "files":
            files = [name for name in rest.split(",") if name]
        elif label == "override":
            override = rest == "yes"
        elif label == "replica" and rest:
            projects.append(rest)
    return files, override, projects


def scale_plan(
    lines: list[str],
    replicas: int,
    project: str,
    service: str,
    address: str,
    port: int,
    first_port: int,
) -> dict[str, t.Any]:
    """Returns the compose files of the service (`files`), whether the replicas' override exists (`override`), the
    extra replicas wanted (`replicas`, each with index, project, port, upstream server and url), the upstream's
    servers in order (`servers`), the replicas to start that do not exist yet (`new`), the ones to remove
    (`remove`, the highest index first; a project with this service's replica label that is not a replica name goes
    too), and how many run now (`current`, the service itself counted)."""
    files, override, existing = read_lines(lines)
    count, base, first = int(replicas), int(port), int(first_port)
    wanted = [replica(project, service, address, k, first + k - 2) for k in range(2, count + 1)]
    names = {r["project"] for r in wanted}
    found = sorted(set(existing))
    pattern = re.compile(rf"^{re.escape(project)}-{re.escape(service)}-(\d+)$")
    remove: list[dict[str, t.Any]] = []
    for name in found:
        if name in names:
            continue
        match = pattern.match(name)
        index = int(match.group(1)) if match else 0
        remove.append({"index": index, "project": name, "port": first + index - 2 if index >= 2 else None})
    remove.sort(key=lambda r: (-r["index"], r["project"]))
    return {
        "files": files,
        "override": override,
        "replicas": wanted,
        "servers": [f"{address}:{base}", *(r["server"] for r in wanted)],
        "new": [r for r in wanted if r["project"] not in found],
        "remove": remove,
        "current": 1 + len(found),
    }


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"scale_plan": scale_plan}
