#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_service
short_description: Bring the services of a Docker Compose v2 project to a state, and prove they are ready
version_added: 0.1.0
description:
  - Starts, stops, restarts, creates or removes the services of a Compose v2 project, the way the runbooks'
    C(docker-compose up -d), C(restart), C(stop) and C(down) do, but safe to run twice.
  - C(changed) comes from the containers observed before and after (container IDs and states), not from Compose's
    progress output. In check mode the same answer comes from Compose's own C(--dry-run) and the observed state,
    and nothing is touched.
  - A restart applies the current configuration. A service whose compose file or environment changed is recreated;
    a plain C(docker compose restart) would keep the stale configuration.
  - With O(wait), readiness is checked by the module itself after every start. Every targeted container must be
    running, and healthy where it has a healthcheck. A one-shot service (no restart policy) must have exited 0.
    Otherwise the task fails and returns the states and the last log lines of the services that are not ready.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows each container's state before and after.
  idempotent:
    support: partial
    details: O(state=restarted) and O(recreate=always) act on every run.
  platform:
    platforms: posix
options:
  services:
    description:
      - The services to act on. Default is every service of the project (with the active O(profiles)).
    type: list
    elements: str
  state:
    description:
      - V(started) (C(up -d)) creates what is missing, recreates what changed and starts what is stopped.
        Services the targets depend on are started too.
      - V(present) creates missing containers without starting them (C(up --no-start --no-recreate)).
        It never recreates or stops a container.
      - V(stopped) stops running containers.
      - V(restarted) restarts the services, one after another in dependency order. A service whose configuration
        changed is recreated instead (C(up --force-recreate)), which also brings the services it depends on to
        their current configuration, as C(docker compose up) does. With O(wait), each service must be ready
        before the next one starts.
      - V(absent) removes the containers (C(down) for the whole project, C(rm --stop) for some services).
    type: str
    choices: [started, present, stopped, restarted, absent]
    default: started
  recreate:
    description:
      - V(auto) recreates containers whose configuration or image changed, V(always) recreates every targeted
        container, and V(never) keeps existing containers as they are.
    type: str
    choices: [auto, always, never]
    default: auto
  dependencies:
    description:
      - With O(state=restarted), also restart every service that depends on a targeted one, after it, in
        dependency order. This is the runbooks' "restart the database, wait until it is healthy, then restart
        the backend".
    type: bool
    default: false
  pull:
    description:
      - When to pull images (C(up --pull)). V(policy) leaves the decision to each service's C(pull_policy).
    type: str
    choices: [always, missing, never, policy]
    default: policy
  build:
    description:
      - V(always) builds images before starting (C(--build)), V(never) never builds (C(--no-build)), and
        V(policy) builds only missing images.
    type: str
    choices: [always, never, policy]
    default: policy
  scale:
    description:
      - "Number of containers per service, for example C({worker: 3})."
    type: dict
  wait:
    description:
      - After starting or restarting, wait until the services are ready (see the description) and fail if they
        do not become ready within O(wait_timeout).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for readiness.
    type: int
    default: 120
  timeout:
    description:
      - Seconds a container gets to stop gracefully before it is killed (stop, restart, recreate, remove).
    type: int
  remove_volumes:
    description:
      - With O(state=absent), also remove the project's named and anonymous volumes. This deletes data, so it
        needs O(confirm=true).
    type: bool
    default: false
  confirm:
    description:
      - Confirms a destructive action (O(remove_volumes)).
    type: bool
    default: false
notes:
  - Compose v1 (C(docker-compose) 1.x) is refused. It prints help and exits 0 for C(up --wait) and
    C(ps --format json), so nothing it reports can be trusted.
seealso:
  - module: stackops.runbooks.compose_exec
  - module: stackops.runbooks.compose_logs
"""

EXAMPLES = r"""
- name: Bring the whole stack up and wait until every service is healthy
  stackops.runbooks.compose_service:
    project_src: /srv/app
    state: started

- name: Restart the database, then (in order, each ready first) everything that depends on it
  stackops.runbooks.compose_service:
    project_src: /srv/app
    services: [postgres]
    state: restarted
    dependencies: true

- name: Scale the workers
  stackops.runbooks.compose_service:
    project_src: /srv/app
    services: [worker]
    scale:
      worker: 3

- name: Stop the app and nginx for maintenance
  stackops.runbooks.compose_service:
    project_src: /srv/app
    services: [app, nginx]
    state: stopped

- name: Remove the stack and its volumes (deletes data)
  stackops.runbooks.compose_service:
    project_src: /srv/app
    state: absent
    remove_volumes: true
    confirm: true
"""

RETURN = r"""
services:
  description:
    - Each targeted service after the run, or as it is in check mode. C(ready) says whether the service
      is ready (see the description), and C(problems) says why not. C(restarts) is how often Docker restarted its
      containers under their restart policy since they were last started by hand (a crash loop shows here).
  returned: always
  type: dict
  sample:
    postgres:
      state: running
      health: healthy
      restarts: 0
      ready: true
      problems: []
      containers:
        - id: 645535a95b04
          name: app-postgres-1
          state: running
          health: healthy
          exit_code: 0
          image: postgres:15
          created: "2026-11-23 07:35:53 +0000 UTC"
          started: "2026-11-23T07:35:54.1Z"
          restarts: 0
          ports: []
actions:
  description: The compose commands run, or that would run in check mode, in order.
  returned: always
  type: list
  elements: str
  sample: ["up -d --no-deps postgres", "restart app"]
project_name:
  description: The project's name as Compose resolved it.
  returned: always
  type: str
  sample: app
compose_version:
  description: The Compose version used.
  returned: always
  type: str
  sample: 2.26.1
containers:
  description: On a readiness failure, every container of the project with its state.
  returned: failure
  type: list
  elements: dict
logs:
  description: On a readiness failure, the last log lines of the services that are not ready.
  returned: failure
  type: list
  elements: str
"""

import dataclasses
import typing as t
from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeError,
    ComposeProject,
    Container,
    ProjectRef,
    by_service,
    common_argument_spec,
    dependencies_of,
    dependency_order,
    fingerprint,
    parse_dry_run,
    would_change,
)


def argument_spec() -> dict[str, t.Any]:
    spec = common_argument_spec()
    spec.update(
        services={"type": "list", "elements": "str"},
        state={
            "type": "str",
            "default": "started",
            "choices": ["started", "present", "stopped", "restarted", "absent"],
        },
        recreate={"type": "str", "default": "auto", "choices": ["auto", "always", "never"]},
        dependencies={"type": "bool", "default": False},
        pull={"type": "str", "default": "policy", "choices": ["always", "missing", "never", "policy"]},
        build={"type": "str", "default": "policy", "choices": ["always", "never", "policy"]},
        scale={"type": "dict"},
        wait={"type": "bool", "default": True},
        wait_timeout={"type": "int", "default": 120},
        timeout={"type": "int"},
        remove_volumes={"type": "bool", "default": False},
        confirm={"type": "bool", "default": False},
    )
    return spec


@dataclasses.dataclass(frozen=True)
class Options:
    """compose_service's options once checked: what the planner and executor read, instead of the params."""

    project: ProjectRef
    services: tuple[str, ...]  # empty: every service of the project
    state: str
    recreate: str
    dependencies: bool
    pull: str
    build: str
    scale: Mapping[str, int]
    wait: bool
    wait_timeout: int
    timeout: int | None
    remove_volumes: bool


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Validate what the argument spec cannot, and turn the scale into ints."""
    if params["remove_volumes"] and not params["confirm"]:
        raise ComposeError("remove_volumes=true deletes the project's volumes and their data; add confirm=true.")
    if params["remove_volumes"] and params["state"] != "absent":
        raise ComposeError(f"remove_volumes only applies to state=absent, not state={params['state']}.")
    if params["wait_timeout"] < 1:
        raise ComposeError(f"wait_timeout must be at least 1 second, not {params['wait_timeout']}.")
    if params["timeout"] is not None and params["timeout"] < 0:
        raise ComposeError(f"timeout must be 0 or more seconds, not {params['timeout']}.")
    scale = {}
    for name, value in (params["scale"] or {}).items():
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise ComposeError(f"scale[{name!r}] must be a whole number, not {value!r}.") from None
        if count < 0:
            raise ComposeError(f"scale[{name!r}] is {count}; a service cannot have fewer than 0 containers.")
        scale[name] = count
    return options_of(Options, params, project=ProjectRef.of(params), scale=scale)


def up_args(o: Options, scale: Mapping[str, int], start: bool) -> list[str]:
    args = ["up", "--detach"] if start else ["up", "--no-start"]
    if not start or o.recreate == "never":
        args.append("--no-recreate")
    elif o.recreate == "always":
        args.append("--force-recreate")
    if o.pull != "policy":
        args += ["--pull", o.pull]
    if o.build == "always":
        args.append("--build")
    elif o.build == "never":
        args.append("--no-build")
    for name, count in sorted(scale.items()):
        args += ["--scale", f"{name}={count}"]
    if o.timeout is not None and start:
        args += ["--timeout", str(o.timeout)]
    return args


def stop_args(o: Options, verb: str) -> list[str]:
    return [verb, *(["--timeout", str(o.timeout)] if o.timeout is not None else [])]


def plan_restart(
    project: ComposeProject, o: Options, before: list[Container], wanted: list[str]
) -> list[tuple[str | None, list[str]]]:
    """(service, compose args) per service, in dependency order: recreate when its configuration changed (a plain
    restart keeps the stale one), restart when it runs, start it when it is stopped, create it when missing.

    Never `up --no-deps`: Compose 2.26.1 recreates a service that has depends_on under --no-deps although nothing
    changed, and the container it makes carries a config hash that the next plain `up` recreates again."""
    steps: list[tuple[str | None, list[str]]] = []
    for name in dependency_order(project.services, wanted, o.dependencies):
        mine = [c for c in before if c.service == name]
        recreate = bool(mine) and o.recreate == "always"
        if mine and o.recreate == "auto":
            _rc, _out, err = project.call("up", "--dry-run", "--detach", name, check=False)
            names = {c.name for c in mine}
            recreate = any(n in names and status == "Recreate" for _kind, n, status in parse_dry_run(err)[0])
        if recreate:
            steps.append((name, [*up_args(dataclasses.replace(o, recreate="always"), {}, True), name]))
        elif any(c.running for c in mine):
            steps.append((name, [*stop_args(o, "restart"), name]))
        elif mine:
            steps.append((name, ["start", name]))
        else:
            steps.append((name, [*up_args(o, {}, True), name]))
    return steps


def predict_up(
    project: ComposeProject, args: list[str], before: list[Container], expected: list[str]
) -> tuple[bool, list[str]]:
    """Would `up` change anything? Compose's own --dry-run decides (it recreates on config or image changes by
    the same code path as a real run); missing or stopped containers are a change whatever it says."""
    rc, _out, err = project.call(args[0], "--dry-run", *args[1:], check=False)
    actions, unknown = parse_dry_run(err)
    warnings = [
        f"Compose --dry-run printed a line this module does not know: {line}"
        for line in unknown
        if "DRY-RUN MODE" in line
    ]
    if rc != 0:
        warnings.append(
            f"Compose --dry-run failed ({err.strip()[-300:]}); check mode judged from container states "
            "only and cannot see configuration changes."
        )
    present = {c.service for c in before if c.running or c.state == "exited"}
    return would_change(actions) or bool(set(expected) - present), warnings


def plan(
    project: ComposeProject,
    o: Options,
    before: list[Container],
    wanted: list[str],
    everything: bool,
) -> tuple[list[tuple[str | None, list[str]]], list[str]]:
    """The compose commands this run needs, and warnings. An empty list means nothing to do. A real `started`
    run always calls `up` (idempotent by itself); only check mode needs the prediction."""
    state, scale = o.state, o.scale
    mine = [c for c in before if c.service in wanted]
    targets = [] if everything else wanted
    if state == "started":
        args = [*up_args(o, scale, True), *targets]
        if not project.module.check_mode:
            return [(None, args)], []
        expected = [n for n in dependencies_of(project.services, wanted) if scale.get(n, 1) > 0]
        needs, warnings = predict_up(project, args, before, expected)
        return ([(None, args)] if needs else []), warnings
    if state == "present":
        counts = {name: sum(1 for c in mine if c.service == name) for name in wanted}
        needs = any(counts[name] < scale.get(name, 1) for name in wanted)
        return ([(None, [*up_args(o, scale, False), *targets])] if needs else []), []
    if state == "stopped":
        return ([(None, [*stop_args(o, "stop"), *wanted])] if any(c.running for c in mine) else []), []
    if state == "restarted":
        return plan_restart(project, o, before, wanted), []
    volumes = ["--volumes"] if o.remove_volumes else []
    if not mine and not (o.remove_volumes and everything and project.volumes()):
        return [], []
    if everything:
        return [(None, [*stop_args(o, "down"), *volumes])], []
    return [(None, ["rm", "--stop", "--force", *volumes, *wanted])], []


def state_view(containers: list[Container], wanted: list[str]) -> dict[str, dict[str, str]]:
    return {
        name: {c.name: c.state + (f" ({c.health})" if c.health else "") for c in containers if c.service == name}
        for name in sorted(wanted)
    }


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    scale = o.scale
    project = ComposeProject(module, o.project)
    wanted = sorted(o.services or project.services)
    everything = not o.services
    project.check_services([*wanted, *scale])
    before = project.containers()
    steps, warnings = plan(project, o, before, wanted, everything)
    for warning in warnings:
        module.warn(warning)
    result: dict[str, t.Any] = {
        "actions": [" ".join(args) for _name, args in steps],
        "project_name": project.name,
        "compose_version": ".".join(map(str, project.version)),
    }
    if module.check_mode:
        return {**result, "changed": bool(steps), "services": by_service(before, project.services, wanted)}

    for name, args in steps:
        project.call(*args)
        if name and o.wait:
            project.wait_ready([name], o.wait_timeout)
    if o.wait and o.state == "started":
        ready_for = [n for n in dependencies_of(project.services, wanted) if scale.get(n, 1) > 0]
        after = project.wait_ready(ready_for, o.wait_timeout)
    else:
        after = project.containers()
    changed = fingerprint(before) != fingerprint(after) or bool(steps and o.state == "restarted")
    result.update(changed=changed, services=by_service(after, project.services, wanted))
    if module._diff:
        result["diff"] = {"before": state_view(before, wanted), "after": state_view(after, wanted)}
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
