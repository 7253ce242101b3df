#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_reach
short_description: Check that each service of a Docker Compose v2 project reaches its dependencies
version_added: 0.1.0
description:
  - Opens a TCP connection from inside each service's container to every service it depends on, as the runbooks'
    C(docker-compose exec backend nc -zv db 5432) does, and reports each edge on its own (from, to, address, ok,
    error, time in ms).
  - The edges are the project's C(depends_on) (to the addresses in O(targets), else to the ports the target's
    compose definition names, at its service name), and the ones given in O(edges).
  - The probe runs in the source container with what it has, looked for in this order with C(command -v) -
    C(python3), C(bash) (its C(/dev/tcp), bounded by C(timeout) where the container has it), C(nc), C(busybox nc).
    Host names and ports are arguments of the probe, never part of a shell script. A container with none of them,
    or no running container, is reported as C(cannot_probe) with what to do.
  - It only reads. It never reports a change, and runs the same in check mode.
  - A failed edge is a critical finding; an edge that could not be probed, or to a service whose address is not
    known, a warning. RV(status) is the worst of them.
  - The P(stackops.runbooks.health_check#role) role runs it (tag C(reach)), with the addresses of the inventory's
    stack settings.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.health
  - stackops.runbooks.attributes
options:
  services:
    description:
      - The services whose C(depends_on) edges are probed. Default is every service of the project.
    type: list
    elements: str
  depends_on:
    description:
      - Probe the edges of the project's C(depends_on). V(false) probes only O(edges).
    type: bool
    default: true
  targets:
    description:
      - Where a service listens, as the others reach it - service name to C(host:port), a port, or a list of them.
        A port alone goes with the service's name, which Compose's DNS resolves on a project network.
      - Needed for services with host networking (their name resolves to nothing) and for services whose compose
        definition names no port (C(ports), C(expose)). Names of services the project does not have are ignored,
        so one mapping can serve several stack shapes.
    type: dict
    default: {}
  edges:
    description:
      - More edges to probe, each C(from) (a service of the project) and C(to) (a service, C(service:port) or
        C(host:port); IPv6 in brackets, as C([::1]:5432)).
    type: list
    elements: dict
    default: []
  timeout:
    description:
      - Seconds each connection attempt may take (whole seconds for C(nc)), from 0.1 to 60.
    type: float
    default: 3
seealso:
  - module: stackops.runbooks.compose_exec
  - module: stackops.runbooks.stack_health
"""

EXAMPLES = r"""
- name: Check that every service reaches what it depends on
  stackops.runbooks.compose_reach:
    project_src: /srv/app
    targets:
      postgres: 127.0.0.1:5432
      redis: 127.0.0.1:6379
      backend: 127.0.0.1:8000
    fail_on: never
  register: reach

- name: Show the edges that failed
  ansible.builtin.debug:
    msg: "{{ reach.edges | rejectattr('ok') | map(attribute='error') | list }}"
  when: reach.status != 'ok'

- name: Check one edge that depends_on does not name, and fail when it is down
  stackops.runbooks.compose_reach:
    project_src: /srv/app
    depends_on: false
    edges:
      - from: backend
        to: 127.0.0.1:6379
    timeout: 2
"""

RETURN = r"""
edges:
  description:
    - Every edge, in order - C(from) (the service the probe ran in), C(to) (a service, or the address given),
      C(address) (C(host:port)), C(origin) (V(depends_on) or V(edges)), C(status) (V(ok), V(failed),
      V(cannot_probe), V(no_address)), C(ok) (true, false, or null when not probed), C(error), C(time_ms) (the
      connect, timed in the container; null where its tool cannot tell) and C(tool).
  returned: always
  type: list
  elements: dict
  sample:
    - {from: app, to: postgres, address: "127.0.0.1:5432", origin: depends_on, status: ok, ok: true, error: "",
       time_ms: 0.4, tool: python3}
probes:
  description: Per source service, the container the probes ran in, the tools found in it, and the one used.
  returned: always
  type: dict
  sample: {app: {container: stack-app-1, tools: [python3, bash, timeout], tool: python3, error: ""}}
summary:
  description: How many edges have each status.
  returned: always
  type: dict
  sample: {ok: 3, failed: 0, cannot_probe: 0, no_address: 0}
elapsed_ms:
  description: How long the probes took, all source services at once.
  returned: always
  type: float
  sample: 412.5
status:
  description: The verdict, the worst severity among RV(findings).
  returned: always
  type: str
  sample: ok
findings:
  description: A critical finding per failed edge, a warning per edge not probed (C(check), C(severity),
    C(message), C(value), C(threshold)).
  returned: always
  type: list
  elements: dict
"""

import dataclasses
import time
import typing as t
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.stackops.runbooks.plugins.module_utils import _reach as reach
from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeProject,
    ProjectRef,
    common_argument_spec,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._health import finish, health_argument_spec


def argument_spec() -> dict[str, t.Any]:
    spec = common_argument_spec()
    spec.update(
        services={"type": "list", "elements": "str"},
        depends_on={"type": "bool", "default": True},
        targets={"type": "dict", "default": {}},
        edges={"type": "list", "elements": "dict", "default": []},
        timeout={"type": "float", "default": 3},
        fail_on=health_argument_spec([])["fail_on"],
    )
    return spec


@dataclasses.dataclass(frozen=True)
class Options:
    """compose_reach's options once checked: what the planner and executor read, instead of the params."""

    project: ProjectRef
    services: tuple[str, ...]  # empty: every service of the project
    depends_on: bool
    targets: Mapping[str, t.Any]
    edges: tuple[dict[str, t.Any], ...]
    timeout: float
    fail_on: str


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Validate what the argument spec cannot (the edges and targets need the project: reach.plan checks them)."""
    limit = params["timeout"]
    if not 0.1 <= limit <= 60:
        raise reach.ReachError(f"timeout must be from 0.1 to 60 seconds, not {limit:g}.")
    return options_of(
        Options,
        params,
        project=ProjectRef.of(params),
    )


def run_in(project: ComposeProject, service: str, argv: list[str], bound: float) -> tuple[int, str, str]:
    """`exec -T` in the service's first container, cut off by the host's `timeout` after `bound` seconds: no probe
    may hang the task, whatever the container's tools do."""
    command = [*project.base_args(), "exec", "-T", service, *argv]
    cutoff = project.module.get_bin_path("timeout")
    if cutoff:
        command = [cutoff, "-k", "5", f"{bound:g}", *command]
    return t.cast(
        tuple[int, str, str],
        project.module.run_command(command, cwd=project.project_src, environ_update=project.environ()),
    )


def probe(project: ComposeProject, service: str, edges: list[reach.Edge], limit: float) -> dict[str, t.Any]:
    """All the edges of one service in one exec that finds its tools and probes with the best: (ok, error, ms) per
    edge."""
    result: dict[str, t.Any] = {"tools": [], "tool": None, "error": "", "results": []}
    bound = 10 + limit * len(edges) * 1.5
    rc, out, err = run_in(project, service, reach.run_argv(limit, edges), bound)
    no_sh = rc != 0 and reach.exec_failed_to_start(rc, err)
    if no_sh:
        # Nothing can be looked for without sh: python3 is still worth one try.
        rc, out, err = run_in(project, service, reach.probe_argv("python3", limit, edges), bound)
        if rc == 0:
            result.update(tools=["python3"], tool="python3")
            result["results"] = reach.parse_probe("python3", out, limit, len(edges))
            return result
    if rc != 0 and not reach.exec_failed_to_start(rc, err):
        result["error"] = f"cannot probe: `docker compose exec` in {service} failed (exit code {rc}): {err.strip()}"
        return result
    if not no_sh:
        result["tools"], result["tool"], body = reach.parse_run(out)
        if result["tool"] is not None:
            result["results"] = reach.parse_probe(result["tool"], body, limit, len(edges))
            return result
    result["error"] = reach.NO_TOOL.format(service=service, why=" (nor sh to look for them)" if no_sh else "")
    return result


def run_module(module: t.Any) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    limit = o.timeout
    project = ComposeProject(module, o.project)
    project.check_services(list(o.services))
    sources = sorted(o.services or project.services)
    edges, unresolved = reach.plan(project.services, sources, o.depends_on, list(o.edges), o.targets)
    containers = {c.service: c for c in reversed(project.containers()) if c.running}
    by_source: dict[str, list[reach.Edge]] = {}
    for edge in edges:
        by_source.setdefault(edge.source, []).append(edge)
    running = [s for s in by_source if s in containers]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        done = dict(zip(running, pool.map(lambda s: probe(project, s, by_source[s], limit), running)))
    probes: dict[str, t.Any] = {}
    for source in by_source:
        if source in containers:
            probes[source] = {"container": containers[source].name} | {
                k: v for k, v in done[source].items() if k != "results"
            }
        else:
            probes[source] = {"container": None, "tools": [], "tool": None}
            probes[source]["error"] = f"cannot probe: service {source} has no running container; start it first"
    judged = []
    for source, mine in by_source.items():
        results = done.get(source, {}).get("results") or [(None, probes[source]["error"], None)] * len(mine)
        judged += [reach.judge(e, ok, error, ms, probes[source]["tool"]) for e, (ok, error, ms) in zip(mine, results)]
    judged += [reach.judge(gap, None, "", None, None) for gap in unresolved]
    rows = [row for row, _finding in judged]
    findings = [finding for _row, finding in judged if finding is not None]
    summary = {status: sum(1 for row in rows if row["status"] == status) for status in reach.STATUSES}
    elapsed = round((time.monotonic() - started) * 1000, 1)
    result = {"edges": rows, "probes": probes, "summary": summary, "elapsed_ms": elapsed}
    return finish(findings, result, o.fail_on)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
