#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_health
short_description: The health of a whole compose stack on one host, read in one module run
version_added: 0.1.0
description:
  - Reads, at the same time, the compose services (state, readiness, restarts), nginx's config test in its
    service, PostgreSQL as M(stackops.runbooks.pg_health) reads it, Redis as M(stackops.runbooks.redis_health)
    reads it, and HTTP endpoints as M(stackops.runbooks.http_health) asks them.
  - It is what the P(stackops.runbooks.health_check#role) role runs on each host. One module run instead of one
    per part saves the fixed cost of each Ansible task (module transfer and start, about half a second here), and
    the parts run concurrently, so the run takes about as long as its slowest part.
  - The services part also judges each container's resources (killed for want of memory, in a restart loop, memory
    used against its limit; see O(thresholds)).
  - Findings have the same shape as the other health modules'. Each C(check) is prefixed with its part
    (V(services), V(nginx), V(config), V(postgres), V(redis), V(http)), and RV(status) is the worst of them. A part that
    cannot be read is a critical finding of that part; it does not hide the others.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.stack_health
  - stackops.runbooks.health
  - stackops.runbooks.attributes
options:
  services:
    description:
      - The compose services to judge. Default is every service of the project.
    type: list
    elements: str
  nginx_service:
    description:
      - The compose service that runs nginx, whose configuration is tested with O(nginx_test). Leave it out to
        skip the test.
    type: str
  nginx_test:
    description:
      - The config test run in O(nginx_service) (an argv list, no shell). It must be nginx's own test (C(nginx)
        or C(openresty), by name or path, with C(-t) or C(-T)), for this module only reads, also in check mode.
    type: list
    elements: str
    default: [nginx, -t]
  thresholds:
    description:
      - Numbers for the services part that override the defaults. Unknown names are refused with the list of
        valid ones.
      - C(restarts_warning) 1 and C(restarts_critical) 5, the restarts Docker made under a service's restart policy
        since its containers were last started by hand (a crash loop).
      - C(restart_loop_uptime_s) 120, a container that Docker restarted and that has run for less than this, or is
        C(restarting) now, is critical (a restart loop now).
      - C(memory_warning_pct) 80 and C(memory_critical_pct) 95, a container's memory use (C(docker stats), without
        the page cache) against its limit (C(HostConfig.Memory)). A container without a limit is not judged (nor
        read); its C(memory.limit) is null.
      - A container the kernel killed for want of memory (C(State.OOMKilled)) is critical while it is down and a
        warning once it runs again.
    type: dict
    default: {}
  config:
    description:
      - Compare the environment each container runs with against what Compose gives it now and against the env
        file, as M(stackops.runbooks.compose_env) does (its options). A container that needs to be recreated is a
        warning of the V(config) part. Leave it out to skip the comparison.
    type: dict
    suboptions:
      sensitive_names:
        description: Variable names that are secrets although their names do not say so.
        type: list
        elements: str
        default: []
      public_names:
        description: Variable names shown in full although their names look secret.
        type: list
        elements: str
        default: []
requirements:
  - psycopg2 and the redis Python library on the managed host, when O(postgres) and O(redis) are given.
"""

EXAMPLES = r"""
- name: Read the whole stack at once
  stackops.runbooks.stack_health:
    project_src: /srv/app
    nginx_service: nginx
    postgres:
      login_host: 127.0.0.1
      login_password: "{{ pg_password }}"
      login_db: app
    redis:
      login_host: 127.0.0.1
      login_password: "{{ redis_password }}"
    http:
      endpoints:
        - name: readiness
          url: https://app.example.com/health/ready
          json: {status: ready}
    fail_on: never
  register: stack

- name: Show what is wrong
  ansible.builtin.debug:
    msg: "{{ stack.findings | map(attribute='message') | list }}"
  when: stack.status != 'ok'
"""

RETURN = r"""
is_available:
  description: Whether every part answered (compose, PostgreSQL, Redis, every endpoint).
  returned: always
  type: bool
status:
  description: The verdict, the worst severity among RV(findings).
  returned: always
  type: str
  sample: ok
findings:
  description: Every part's findings (C(check), C(severity), C(message), C(value), C(threshold)); C(check) starts
    with the part's name, as in C(postgres.connections).
  returned: always
  type: list
  elements: dict
services:
  description: Per compose service, as M(stackops.runbooks.compose_service) returns it (state, health, restarts,
    ready, problems, containers); each container also has C(memory) (C(used) and C(limit) in bytes, C(used_pct);
    all null for a container without a limit, whose use is not judged), C(oom_killed) and C(uptime_s).
  returned: when the compose project could be read
  type: dict
config:
  description: What M(stackops.runbooks.compose_env) returns (services, env_file, env_file_path), without its status
    and findings.
  returned: when O(config) is given
  type: dict
nginx:
  description: The config test's exit code, whether it passed, and its output.
  returned: when O(nginx_service) is given
  type: dict
  sample: {rc: 0, ok: true, output: "nginx: configuration file /etc/nginx/nginx.conf test is successful"}
postgres:
  description: What M(stackops.runbooks.pg_health) returns, without its status and findings.
  returned: when O(postgres) is given
  type: dict
redis:
  description: What M(stackops.runbooks.redis_health) returns, without its status and findings.
  returned: when O(redis) is given
  type: dict
http:
  description: What M(stackops.runbooks.http_health) returns, without its status and findings.
  returned: when O(http) is given
  type: dict
parts:
  description: The status of each part that was read (the worst severity among its findings).
  returned: always
  type: dict
  sample: {services: ok, nginx: ok, config: ok, postgres: ok, redis: critical, http: critical}
elapsed_ms:
  description: How long each part took, and the whole run; the parts run at the same time.
  returned: always
  type: dict
  sample: {services: 310.2, nginx: 120.5, postgres: 95.1, redis: 12.3, http: 40.8, total: 431.7}
"""

import dataclasses
import os
import re
import time
import typing as t
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone

from ansible_collections.stackops.runbooks.plugins.module_utils import _compose_env, _http, _pg_checks, _redis_checks
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError, execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeProject,
    Container,
    ProjectRef,
    by_service,
    common_argument_spec,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._health import (
    Finding,
    HealthOptions,
    finish,
    health_argument_spec,
    merge_thresholds,
    rate,
    verdict,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    connection_argument_spec as pg_connection,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._postgres import (
    ensure_libs as pg_libs,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import (
    connection_argument_spec as redis_connection,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redis import (
    ensure_libs as redis_libs,
)

DEFAULTS = {
    "restarts_warning": 1,
    "restarts_critical": 5,
    "restart_loop_uptime_s": 120,
    "memory_warning_pct": 80,
    "memory_critical_pct": 95,
}
PARTS = ("services", "nginx", "config", "postgres", "redis", "http")
NGINX_PROGRAM = re.compile(r"^(nginx|openresty)([-.][\w.-]*)?$")
Reading = tuple[dict[str, t.Any], list[Finding]]
Part = t.Callable[[t.Any], Reading]


def part_spec(connection: dict[str, t.Any], sections: list[str], extra: dict[str, t.Any]) -> dict[str, t.Any]:
    """A dictionary option holding one health module's options (its fail_on is this module's)."""
    checks = {k: v for k, v in health_argument_spec(sections).items() if k != "fail_on"}
    return {"type": "dict", "options": {**connection, **checks, **extra}}


def argument_spec() -> dict[str, t.Any]:
    spec = common_argument_spec()
    spec.update(
        services={"type": "list", "elements": "str"},
        nginx_service={"type": "str"},
        nginx_test={"type": "list", "elements": "str", "default": ["nginx", "-t"]},
        config={"type": "dict", "options": _compose_env.options_spec()},
        postgres=part_spec(pg_connection(), _pg_checks.SECTIONS, _pg_checks.OPTIONS),
        redis=part_spec(redis_connection(), _redis_checks.SECTIONS, _redis_checks.OPTIONS),
        http=part_spec(_http.http_argument_spec(), _http.SECTIONS, {}),
    )
    spec.update(health_argument_spec([]))
    del spec["checks"]
    return spec


@dataclasses.dataclass(frozen=True)
class Options:
    """stack_health's options once checked: what its parts read, instead of the params."""

    project: ProjectRef
    services: tuple[str, ...]  # empty: every service of the project
    nginx_service: str | None
    nginx_test: tuple[str, ...]
    thresholds: Mapping[str, float]  # DEFAULTS with the user's numbers
    config: _compose_env.Names | None  # None: no config part
    # The parts' options, as their health modules check them; None: no such part. A part whose options were refused
    # (but for the refusals above) is reported as that part's critical finding, as one that could not be read.
    postgres: _pg_checks.HealthOptions | StackopsError | None
    redis: _redis_checks.HealthOptions | StackopsError | None
    http: _http.HealthOptions | StackopsError | None
    fail_on: str


def checked(
    check: t.Callable[[t.Any], HealthOptions], options: Mapping[str, t.Any] | None
) -> HealthOptions | StackopsError | None:
    """A part's options as its health module checks them, or why they were refused."""
    if options is None:
        return None
    try:
        return check(options)
    except StackopsError as exc:
        return exc


def check_inputs(params: Mapping[str, t.Any], check_mode: bool = False) -> Options:
    """Validate what the argument spec cannot, the parts' options among it, before anything is read."""
    check_nginx_test(params["nginx_test"])
    thresholds = merge_thresholds(DEFAULTS, params["thresholds"])
    if params["postgres"] is not None and params["postgres"]["top"] < 1:
        raise StackopsError(f"postgres.top must be at least 1, not {params['postgres']['top']}.")
    if params["redis"] is not None and params["redis"]["big_keys_sample"] < 1:
        raise StackopsError(f"redis.big_keys_sample must be at least 1, not {params['redis']['big_keys_sample']}.")
    if params["http"] is not None:
        _http.plan(params["http"])  # bad endpoints are refused before anything is read
    return options_of(
        Options,
        params,
        project=ProjectRef.of(params),
        thresholds=thresholds,
        config=None if params["config"] is None else _compose_env.Names.of(params["config"]),
        postgres=checked(_pg_checks.check_inputs, params["postgres"]),
        redis=checked(lambda options: _redis_checks.check_inputs(options, check_mode), params["redis"]),
        http=checked(_http.check_inputs, params["http"]),
    )


def uptime_s(started: str, now: datetime) -> float | None:
    """Seconds since Docker's StartedAt ('2026-12-07T03:08:12.123456789Z'); None when unknown."""
    try:
        then = datetime.strptime(started[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return None if then.year < 2000 else max(0.0, (now - then).total_seconds())


def resources(
    containers: list[Container], used: dict[str, int], th: t.Mapping[str, float], now: datetime
) -> tuple[dict[str, dict[str, t.Any]], list[Finding]]:
    """Each container's memory against its limit, OOM kill and restart loop: (readings by name, findings)."""
    readings, findings = {}, []
    for c in containers:
        up = uptime_s(c.started, now) if c.state == "running" else None
        mem = next((v for k, v in used.items() if k.startswith(c.id) or c.id.startswith(k)), None)
        pct = round(100 * mem / c.memory_limit, 1) if mem is not None and c.memory_limit else None
        readings[c.name] = {
            "memory": {"used": mem, "limit": c.memory_limit or None, "used_pct": pct},
            "oom_killed": c.oom_killed,
            "uptime_s": None if up is None else round(up),
        }
        if c.oom_killed:
            running = "it runs again after a restart" if c.running else f"it is {c.state}"
            findings.append(
                Finding(
                    "services.oom",
                    "warning" if c.running else "critical",
                    f"container {c.name} was killed for want of memory (limit "
                    f"{f'{c.memory_limit / 2**20:g} MiB' if c.memory_limit else 'none: the host ran out'}); {running}",
                    c.memory_limit or None,
                )
            )
        if c.state == "restarting" or (c.restarts and up is not None and up < th["restart_loop_uptime_s"]):
            since = "restarting now" if up is None else f"up only {up:.0f} s"
            findings.append(
                Finding(
                    "services.restart_loop",
                    "critical",
                    f"container {c.name} is in a restart loop: restarted {c.restarts} "
                    f"time{'s' * (c.restarts != 1)} by Docker, {since}",
                    c.restarts,
                    th["restart_loop_uptime_s"],
                )
            )
        findings += rate(
            "services.memory",
            f"memory used by container {c.name} against its limit",
            pct,
            th["memory_warning_pct"],
            th["memory_critical_pct"],
            "%",
        )
    return readings, findings


def config_part(
    project: ComposeProject, containers: list[Container], names: _compose_env.Names
) -> tuple[dict[str, t.Any], list[Finding]]:
    try:
        data, findings = _compose_env.read(project, containers, names)
    except StackopsError as exc:
        return {}, [Finding("config", "critical", f"config: {exc}")]
    return data, findings


def compose_part(module: t.Any, o: Options) -> tuple[dict[str, t.Any], list[Finding]]:
    """Services, their restarts and nginx's config test: one project read, then one exec."""
    th = o.thresholds
    project = ComposeProject(module, o.project)
    wanted = sorted(o.services or project.services)
    project.check_services(wanted + ([o.nginx_service] if o.nginx_service else []))
    containers = project.containers()
    services = by_service(containers, project.services, wanted)
    findings = [Finding("services", "critical", p) for s in services.values() for p in s["problems"]]
    mine = [c for c in containers if c.service in services]
    readings, found = resources(mine, project.memory_used(mine), th, datetime.now(timezone.utc))
    findings += found
    for service in services.values():
        for container in service["containers"]:
            container.update(readings[container["name"]])
    for name, service in services.items():
        findings += rate(
            "services",
            f"restarts by Docker of service {name}",
            service["restarts"],
            th["restarts_warning"],
            th["restarts_critical"],
        )
    result: dict[str, t.Any] = {"services": services}
    if o.config is not None:
        result["config"], found = config_part(project, mine, o.config)
        findings += found
    nginx = o.nginx_service
    if nginx:
        if any(c.service == nginx and c.running for c in containers):
            rc, out, err = project.call("exec", "-T", nginx, *o.nginx_test, check=False)
            output = (err + out).strip()
            result["nginx"] = {"rc": rc, "ok": rc == 0, "output": output}
            if rc != 0:
                lines = output.splitlines()
                # nginx names the cause on its [emerg] line; the last line only says the test failed.
                cause = next((line for line in lines if "[emerg]" in line), lines[-1] if lines else f"exit code {rc}")
                findings.append(Finding("nginx", "critical", f"nginx -t failed: {cause}", rc))
        else:
            result["nginx"] = {"rc": None, "ok": False, "output": ""}
            findings.append(Finding("nginx", "critical", f"nginx -t not run: service {nginx} is not running"))
    return result, findings


def health_part(name: str, options: HealthOptions | StackopsError, read: t.Callable[[t.Any], Reading]) -> Part:
    def run(_module: t.Any) -> Reading:
        if isinstance(options, StackopsError):
            raise options
        data, findings = read(options)
        return {name: data}, findings

    return run


def parts(module: t.Any, o: Options) -> dict[str, Part]:
    found: dict[str, Part] = {"services": lambda m: compose_part(m, o)}
    if o.postgres is not None:
        pg_libs(module)
        found["postgres"] = health_part(
            "postgres", o.postgres, lambda options: _pg_checks.read_health(options, "stackops-stack_health")
        )
    if o.redis is not None:
        redis_libs(module)
        found["redis"] = health_part("redis", o.redis, _redis_checks.read_health)
    if o.http is not None:
        found["http"] = health_part("http", o.http, _http.read_health)
    return found


def timed(module: t.Any, name: str, part: Part) -> tuple[dict[str, t.Any], list[Finding], float, bool]:
    """One part's result, findings, run time, and whether it could be read at all."""
    started = time.monotonic()
    try:
        data, findings = part(module)
        available = all(d.get("is_available", True) for d in data.values() if isinstance(d, dict))
    except StackopsError as exc:
        data, findings, available = {}, [Finding(name, "critical", f"{name}: {exc}")], False
    findings = [f if f.check.split(".")[0] in PARTS else replace(f, check=f"{name}.{f.check}") for f in findings]
    return data, findings, round((time.monotonic() - started) * 1000, 1), available


def check_nginx_test(argv: list[str]) -> None:
    """Only nginx's config test may run: the module runs it in check mode too, as a read."""
    program = os.path.basename(argv[0]) if argv else ""
    if not NGINX_PROGRAM.match(program) or not {"-t", "-T"} & set(argv[1:]):
        raise StackopsError(
            f"nginx_test must be nginx's config test, such as [nginx, -t, -c, /etc/nginx/nginx.conf], not "
            f"{program!r} with {argv[1:]}: stack_health only reads, so it runs nothing else."
        )


def run_module(module: t.Any) -> dict[str, t.Any]:
    started = time.monotonic()
    o = check_inputs(module.params, module.check_mode)
    todo = parts(module, o)
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        done = dict(zip(todo, pool.map(lambda item: timed(module, *item), todo.items())))
    result: dict[str, t.Any] = {"elapsed_ms": {}}
    findings: list[Finding] = []
    available = True
    for name, (data, found, elapsed, ok) in done.items():
        result.update(data)
        findings += found
        result["elapsed_ms"][name] = elapsed
        available = available and ok
    result["elapsed_ms"]["total"] = round((time.monotonic() - started) * 1000, 1)
    result["parts"] = {
        part: verdict([f for f in findings if f.check.split(".")[0] == part])
        for part in PARTS
        if part in done or (part in ("nginx", "config") and part in result)
    }
    result["is_available"] = available
    return finish(findings, result, o.fail_on)


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
