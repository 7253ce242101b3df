#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_images
short_description: Report and pull the images of a Docker Compose v2 project's services, safe on production
version_added: 0.1.0
description:
  - The runbooks' weekly "check security updates with C(docker-compose pull)", as an update report. For each
    service it reports the image reference, the image the service's container was created from, the image the
    reference points to on the host now, and whether that image comes from a registry.
  - A service whose image was built or imported on this host (no registry digest for its repository), a build-only
    service, one pinned to a digest, or one with C(pull_policy) V(never) or V(build) has nothing to pull. It is
    listed in RV(skipped_services) with the reason, never an error.
  - With O(pull=true), each distinct registry image is pulled once (C(docker pull)). RV(pulled) lists the
    references whose local image changed, and RV(updates) the services whose container runs another image than
    the one its reference points to now. Those need a restart or deploy, which this module never does; containers
    are not touched.
  - The task reports a change only when a pull brought a new image. In check mode the same answer comes from the
    registry without pulling. The module asks, over the registry HTTP API v2, which digest the tag points to now
    (C(HEAD) of the manifest), compares it with the local image's RepoDigests and, when they differ, with the
    image ID that digest would give on this host's platform.
  - Registries are reached as the Docker daemon reaches them. Registries the daemon treats as insecure
    (C(insecure-registries), and 127.0.0.0/8 by default) are asked over HTTPS without certificate verification,
    then over plain HTTP. Credentials come from docker's own client configuration (C(~/.docker/config.json) or
    E(DOCKER_CONFIG) of the user the task runs as, with its credential helpers); the module takes no password.
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details:
      - With O(pull=true), the registry is asked what each reference points to and nothing is pulled.
      - When a registry cannot be asked, the task warns and lists the image in RV(errors) instead of guessing.
        It does not fail in check mode, even with O(fail_on_pull_error=true).
      - The registry named in the reference is asked, never a registry mirror the daemon may pull through.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second pull of images that did not change in their registries reports no change.
  platform:
    platforms: posix
options:
  services:
    description:
      - Services to report on. Default is every service of the project (with the active O(profiles)), one-shot
        services included.
    type: list
    elements: str
  pull:
    description:
      - Pull each distinct registry image once, then report what changed. Without it the module only reads local
        state and never contacts a registry.
    type: bool
    default: false
  fail_on_pull_error:
    description:
      - Fail the task when a pull fails, naming each image and the daemon's message. The other images are still
        pulled first.
      - When V(false), failed pulls are only listed in RV(errors) and warned about.
    type: bool
    default: true
  registry_timeout:
    description:
      - Seconds to wait for each answer of a registry when it is asked in check mode.
    type: int
    default: 10
seealso:
  - module: stackops.runbooks.compose_service
    description: Recreates the services listed in RV(updates) (state started).
"""

EXAMPLES = r"""
- name: Which services run an image other than the one their tag points to on the host
  stackops.runbooks.compose_images:
    project_src: /srv/app

- name: Weekly update check, pull new images, restart nothing
  stackops.runbooks.compose_images:
    project_src: /srv/app
    pull: true
  register: images

- name: Tell the on-call which services need a deploy
  ansible.builtin.debug:
    msg: "Deploy needed for {{ images.updates | join(', ') }}"
  when: images.updates | length > 0

- name: Would a pull bring new images? Asks the registries only
  stackops.runbooks.compose_images:
    project_src: /srv/app
    services: [backend, worker]
    pull: true
  check_mode: true
"""

RETURN = r"""
images:
  description: One entry per service, in the order of O(services), else by service name.
  returned: always
  type: list
  elements: dict
  contains:
    service:
      description: The service.
      type: str
      sample: backend
    image:
      description: The image reference as the project gives it (for a build-only service, the name Compose builds).
      type: str
      sample: registry.example.com/shop/backend:2.4
    registry:
      description: Whether the image comes from a registry. V(false) for the services in RV(skipped_services).
      type: bool
    container_image_id:
      description:
        - The ID of the image the service's container was created from. When replicas differ, one that is not
          RV(images[].local_image_id).
        - V(null) when the service has no container.
      type: str
      sample: sha256:64a52fa31b664552b9942a7613582382e424291d8bc952bedcf326cff6914a04
    local_image_id:
      description:
        - The ID of the image the reference points to on the host now, after the pull in a real run.
        - V(null) when the host has no such image.
      type: str
    remote_digest:
      description:
        - The digest the registry gives for the reference (the manifest list's digest for a multi-platform image).
        - V(null) when the registry was not asked (no O(pull)), could not be asked, or the service is in
          RV(skipped_services).
      type: str
      sample: sha256:c47116c604740f3ee4acc70973324ddaf39b1b5cae37ba5e6d694fed18d833e7
    pulled:
      description: Whether the pull brought a new image for the reference (in check mode, would bring).
      type: bool
    update_available:
      description:
        - Whether the service's container runs an image other than the one its reference points to (after the
          pull; in check mode, after the pull that would happen). A restart or deploy is needed.
      type: bool
pulled:
  description: The references whose local image a pull changed (in check mode, would change).
  returned: always
  type: list
  elements: str
  sample: [registry.example.com/shop/backend:2.4]
updates:
  description: The services whose container runs another image than the one their reference points to.
  returned: always
  type: list
  elements: str
  sample: [backend, worker]
skipped_services:
  description:
    - The services with nothing to pull, and why.
    - Not named C(skipped), which Ansible reads as the task's own skipped flag.
  returned: always
  type: list
  elements: dict
  contains:
    service:
      description: The service.
      type: str
    image:
      description: Its image reference.
      type: str
    reason:
      description: Why there is nothing to pull.
      type: str
      sample: built or imported on this host (no registry digest); nothing to pull
errors:
  description:
    - Images that could not be pulled (or, in check mode, whose registry could not be asked), with the message.
  returned: always
  type: list
  elements: dict
  contains:
    image:
      description: The image reference.
      type: str
    services:
      description: The services that use it.
      type: list
      elements: str
    msg:
      description: The daemon's or the registry's message.
      type: str
"""

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeProject,
    ProjectRef,
    common_argument_spec,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._images import (
    Docker,
    ImageError,
    ImageRef,
    LocalImage,
    PullOutcome,
    Registry,
    parse_reference,
)


def argument_spec() -> dict[str, t.Any]:
    spec = common_argument_spec()
    spec.update(
        services={"type": "list", "elements": "str"},
        pull={"type": "bool", "default": False},
        fail_on_pull_error={"type": "bool", "default": True},
        registry_timeout={"type": "int", "default": 10},
    )
    return spec


@dataclass(frozen=True)
class Options:
    """compose_images's options once checked: what the planner and executor read, instead of the params."""

    project: ProjectRef
    services: tuple[str, ...]  # empty: every service of the project
    pull: bool
    fail_on_pull_error: bool
    registry_timeout: int


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Validate what the argument spec cannot."""
    if params["registry_timeout"] <= 0:
        raise ImageError(f"registry_timeout must be more than 0 seconds, not {params['registry_timeout']}.")
    return options_of(Options, params, project=ProjectRef.of(params))


@dataclass(frozen=True)
class Source:
    """A service's image and where it comes from; `skip` says why there is nothing to pull."""

    service: str
    image: str
    platform: str
    skip: str


@dataclass(frozen=True)
class Fetch:
    """What a pull of one reference did (or, in check mode, would do)."""

    pulled: bool
    digest: str | None
    image_id: str | None  # the reference's image after the pull; None when check mode cannot tell
    error: str = ""


def image_of(service: str, spec: dict[str, t.Any], project: str) -> str:
    # Compose v2 names a build-only service's image <project>-<service>.
    return str(spec.get("image") or f"{project}-{service}")


def skip_reason(spec: dict[str, t.Any], image: str, local: LocalImage | None) -> str:
    if not spec.get("image"):
        return "built from its build section on this host; nothing to pull"
    policy = spec.get("pull_policy")
    if policy in ("never", "build"):
        return f"pull_policy is {policy}; Compose never pulls its image"
    ref = parse_reference(image)
    if ref.digest:
        return "pinned to a digest; a pull cannot change it"
    from_registry = local is not None and bool(local.digests_of(ref))
    if spec.get("build") and not from_registry:
        return "built from its build section on this host; nothing to pull"
    if local is not None and not from_registry and not ref.explicit_domain:
        return "built or imported on this host (no registry digest); nothing to pull"
    return ""


def plan_sources(specs: dict[str, dict[str, t.Any]], project: str, local: dict[str, LocalImage | None]) -> list[Source]:
    sources = []
    for name, spec in specs.items():
        image = image_of(name, spec, project)
        sources.append(Source(name, image, str(spec.get("platform") or ""), skip_reason(spec, image, local[image])))
    return sources


def predict(ref: ImageRef, local: LocalImage | None, digest: str, remote_image_id: str | None) -> Fetch:
    """Would a pull change the reference's local image? Not when the registry's digest is one the local image
    was pulled or pushed with, or when the image it gives is the local one (a pull would only record the digest)."""
    if local is not None and (digest in local.digests_of(ref) or local.id in (digest, remote_image_id)):
        return Fetch(False, digest, local.id)
    return Fetch(True, digest, remote_image_id)


def after_pull(before: LocalImage | None, after: LocalImage | None, outcome: PullOutcome) -> Fetch:
    changed = after is not None and (before is None or after.id != before.id)
    return Fetch(changed, outcome.digest or None, after.id if after else None, outcome.message)


def report(
    sources: list[Source],
    running: dict[str, list[str]],
    local: dict[str, LocalImage | None],
    fetches: dict[str, Fetch],
) -> dict[str, t.Any]:
    """The result: per service, the image its container runs against the one its reference points to now (or
    after the pull that would happen)."""
    images, skipped = [], []
    for source in sources:
        mine = running.get(source.service, [])
        now = local.get(source.image)
        fetch = fetches.get(source.image)
        target = fetch.image_id if fetch and fetch.pulled else (now.id if now else None)
        stale = [image_id for image_id in mine if image_id != target] if target else []
        update = bool(stale) if target else bool(mine and fetch and fetch.pulled)
        images.append(
            {
                "service": source.service,
                "image": source.image,
                "registry": not source.skip,
                "container_image_id": (stale or mine)[0] if mine else None,
                "local_image_id": now.id if now else None,
                "remote_digest": fetch.digest if fetch else None,
                "pulled": bool(fetch and fetch.pulled),
                "update_available": update,
            }
        )
        if source.skip:
            skipped.append({"service": source.service, "image": source.image, "reason": source.skip})
    users: dict[str, list[str]] = {}
    for source in sources:
        users.setdefault(source.image, []).append(source.service)
    return {
        "images": images,
        "pulled": sorted(image for image, fetch in fetches.items() if fetch.pulled),
        "updates": [entry["service"] for entry in images if entry["update_available"]],
        "skipped_services": skipped,
        "errors": [
            {"image": image, "services": users.get(image, []), "msg": fetch.error}
            for image, fetch in sorted(fetches.items())
            if fetch.error
        ],
    }


def to_pull(sources: list[Source]) -> dict[str, str]:
    """Each distinct registry image once, with the platform of the first service that names one."""
    found: dict[str, str] = {}
    for source in sources:
        if not source.skip and (source.image not in found or not found[source.image]):
            found[source.image] = source.platform
    return found


def ask_registry(registry: Registry, image: str, local: LocalImage | None, platform: str) -> Fetch:
    ref = parse_reference(image)
    try:
        digest = registry.digest(ref)
    except ImageError as exc:
        return Fetch(False, None, None, str(exc))
    guess = predict(ref, local, digest, None)
    if not guess.pulled or local is None:
        return guess
    try:
        return predict(ref, local, digest, registry.image_id(ref, digest, platform))
    except (ImageError, ValueError):
        # The digest differs from every one the local image has: a pull brings it, whatever its image ID.
        return guess


def pull_all(
    module: AnsibleModule, docker: Docker, sources: list[Source], local: dict[str, LocalImage | None], timeout: int
) -> dict[str, Fetch]:
    """Pull (or in check mode, ask the registries about, each within `timeout` seconds) every registry image;
    `local` is updated after pulls."""
    wanted = to_pull(sources)
    if not wanted:
        return {}
    fetches = {}
    if module.check_mode:
        registry = Registry(docker, timeout, docker.registry_config())
        host_platform = docker.platform()
        for image, platform in wanted.items():
            fetches[image] = ask_registry(registry, image, local[image], platform or host_platform)
        return fetches
    for image, platform in wanted.items():
        outcome = docker.pull(image, platform)
        after = docker.image(image) if outcome.ok else local[image]
        fetches[image] = after_pull(local[image], after, outcome)
        local[image] = after
    return fetches


def failure(errors: list[dict[str, t.Any]]) -> str:
    listed = "; ".join(f"{e['image']} (service {', '.join(e['services'])}): {e['msg']}" for e in errors)
    return (
        f"Pulling failed for {len(errors)} image(s): {listed}. Check that the registry is up and the reference is "
        "right, log in with `docker login` as the user the task runs as if the registry needs credentials, or set "
        "fail_on_pull_error=false to report failed pulls without failing."
    )


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    project = ComposeProject(module, o.project)
    wanted = list(o.services) or sorted(project.services)
    project.check_services(wanted)
    docker = Docker(project)
    containers = [c for c in project.containers() if c.service in wanted]
    created_from = docker.container_images([c.id for c in containers])
    running: dict[str, list[str]] = {}
    for c in containers:
        if c.id in created_from:
            running.setdefault(c.service, []).append(created_from[c.id])
    specs = {name: project.services[name] or {} for name in wanted}
    local = {image: docker.image(image) for image in sorted({image_of(n, s, project.name) for n, s in specs.items()})}
    sources = plan_sources(specs, project.name, local)
    fetches = pull_all(module, docker, sources, local, o.registry_timeout) if o.pull else {}
    result = report(sources, running, local, fetches)
    result["changed"] = bool(result["pulled"])
    for error in result["errors"]:
        if module.check_mode:
            module.warn(
                f"Could not ask the registry about {error['image']} in check mode: {error['msg']} "
                "Whether a pull would bring a new image is unknown."
            )
        elif not o.fail_on_pull_error:
            module.warn(f"Pulling {error['image']} failed: {error['msg']}")
    if result["errors"] and o.fail_on_pull_error and not module.check_mode:
        raise ImageError(failure(result["errors"]), **result)
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
