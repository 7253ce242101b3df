# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Configuration truth of a compose project: the environment each container runs with against what Compose would
give it now and against the project's `.env`, without ever returning a secret or anything derived from one.

Values are compared here and only the verdict leaves: `match`, `differs`, or which side lacks the variable.
Secrets are shown as ********, URLs with their password masked, public values in full."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import re
import typing as t
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ComposeError, ComposeProject, Container
from ansible_collections.stackops.runbooks.plugins.module_utils._health import Finding
from ansible_collections.stackops.runbooks.plugins.module_utils._redact import MASK

# Names whose values are never shown: passwords, tokens, keys, JWT secrets, DSNs (which carry a key as user name).
SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|JWT|CREDENTIAL|PRIVATE|SALT|AUTH|COOKIE|SIGN|DSN|CERT", re.I)
# A value that is itself a token (a JWT) is a secret whatever its name.
JWT_VALUE = re.compile(r"^eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*$")
URL_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$")
STATES = ("match", "differs", "not_in_container", "not_in_compose")


def options_spec() -> dict[str, t.Any]:
    """The options of compose_env, and of stack_health's config part."""
    return {
        "sensitive_names": {"type": "list", "elements": "str", "default": []},
        "public_names": {"type": "list", "elements": "str", "default": []},
    }


@dataclass(frozen=True)
class Names:
    """The options of options_spec: the variables shown as secrets, and those shown as they are."""

    sensitive_names: tuple[str, ...] = ()
    public_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, options: t.Mapping[str, t.Any]) -> Names:
        return cls(tuple(options["sensitive_names"]), tuple(options["public_names"]))


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads `.env`: `export ` prefix, single quotes literal, double quotes with escapes,
    ` #` starts a comment in an unquoted value. Interpolation inside `.env` is not resolved."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = DOTENV_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, raw = match.group(1), match.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            value = raw[1:-1]
        elif len(raw) >= 2 and raw[0] == raw[-1] == '"':
            value = raw[1:-1].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        else:
            value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        found[name] = value
    return found


@dataclass
class Classifier:
    """Says how a variable is shown. Besides secret names and JWT-like values, a value that holds a secret seen
    under a secret name anywhere in the project (or a URL's password) is a secret too, whatever its own name."""

    sensitive_names: t.Collection[str] = ()
    public_names: t.Collection[str] = ()
    known: set[str] = field(default_factory=set)

    def learn(self, env: t.Mapping[str, str | None]) -> None:
        for name, value in env.items():
            if value and self.kind(name, value) == "secret" and name not in self.public_names:
                self.known.add(value)
            elif value and URL_VALUE.match(value):
                with contextlib.suppress(ValueError):
                    password = urlsplit(value).password
                    if password:
                        self.known.add(password)

    def kind(self, name: str, value: str) -> str:
        """`secret`, `url` (shown with its password masked) or `public` (shown in full)."""
        if name in self.public_names:
            return "public"
        if name in self.sensitive_names or SECRET_NAME.search(name) or JWT_VALUE.match(value):
            return "secret"
        if URL_VALUE.match(value):
            return "url"
        # Short values (a port, `true`) would match too much to say anything.
        return "secret" if any(len(k) >= 6 and k in value for k in self.known) else "public"


def mask_url(value: str) -> str:
    """scheme://user:********@host:port/db with secret-named query values masked too; a URL that cannot be parsed
    is a secret as a whole."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    user = parts.username or ""
    userinfo = f"{user}:{MASK}@" if parts.password is not None else (f"{user}@" if user else "")
    if "[" in parts.netloc:
        host = f"[{host}]"
    query = "&".join(
        f"{k}={MASK if SECRET_NAME.search(k) else v}" for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{userinfo}{host}{port}{parts.path}" + (f"?{query}" if query else "")


def shown(value: str | None, how: str) -> str | None:
    if value is None:
        return None
    return {"secret": MASK, "url": mask_url(value)}.get(how, value)


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality: the comparison itself should not tell anything about a secret."""
    if a is None or b is None:
        return a is b
    return hmac.compare_digest(a.encode(), b.encode())


def env_list(items: t.Iterable[str] | None) -> dict[str, str]:
    """Docker's Config.Env (`NAME=value` strings) as a dictionary."""
    return dict(item.split("=", 1) for item in items or [] if "=" in item)


def compare(
    running: dict[str, str],
    wanted: dict[str, str | None],
    image: dict[str, str],
    dotenv: dict[str, str],
    classify: Classifier,
) -> dict[str, dict[str, t.Any]]:
    """Each variable of one container: its state against what Compose gives now (wanted), and against `.env`.
    A variable the container has that Compose does not give is the image's (left out) when the image has it with
    that value; otherwise it is left over from an older configuration."""
    result = {}
    for name in sorted(set(running) | {k for k, v in wanted.items() if v is not None}):
        have, want = running.get(name), wanted.get(name)
        if want is None and same(have, image.get(name)):
            continue
        if have is None:
            state = "not_in_container"
        elif want is None:
            state = "not_in_compose"
        else:
            state = "match" if same(have, want) else "differs"
        how = classify.kind(name, have if have is not None else want or "")
        entry: dict[str, t.Any] = {"kind": how, "state": state, "running": shown(have, how)}
        if state != "match":
            entry["compose"] = shown(want, how)
        if name in dotenv:
            entry["env_file"] = "match" if same(have, dotenv[name]) else "differs"
        result[name] = entry
    return result


def stale(variables: dict[str, dict[str, t.Any]]) -> list[str]:
    return [f"{name} ({v['state'].replace('_', ' ')})" for name, v in variables.items() if v["state"] != "match"]


def plan(
    containers: list[tuple[str, str, dict[str, str], dict[str, str]]],
    services: dict[str, t.Any],
    dotenv: dict[str, str] | None,
    classify: Classifier,
) -> tuple[dict[str, t.Any], list[Finding]]:
    """containers: (service, container name, its environment, its image's environment). The per-service result
    and a warning for each container that runs with another configuration than Compose would give it now."""
    result: dict[str, t.Any] = {}
    findings = []
    used: set[str] = set()
    wanted_of: dict[str, dict[str, str | None]] = {
        service: {k: None if v is None else str(v) for k, v in ((spec or {}).get("environment") or {}).items()}
        for service, spec in services.items()
    }
    envs: list[t.Mapping[str, str | None]] = [dotenv or {}, *wanted_of.values(), *(c[2] for c in containers)]
    for env in envs:
        classify.learn(env)
    for service, name, running, image in sorted(containers, key=lambda c: c[:2]):
        if service not in wanted_of:
            continue  # a service of a profile not enabled now, or removed: compose gives it nothing to compare
        variables = compare(running, wanted_of[service], image, dotenv or {}, classify)
        used |= set(variables)
        differ = stale(variables)
        result.setdefault(service, {})[name] = {"recreate_needed": bool(differ), "variables": variables}
        if differ:
            findings.append(
                Finding(
                    "config.recreate",
                    "warning",
                    f"service {service} ({name}) runs with another configuration than compose gives it now: "
                    f"{', '.join(differ)}; recreate it (stackops.runbooks.compose_service state=started)",
                    [n.split(" ")[0] for n in differ],
                )
            )
    env_file = None
    if dotenv is not None:
        env_file = {
            name: {
                "kind": (how := classify.kind(name, value)),
                "value": shown(value, how),
                "in_containers": name in used,
            }
            for name, value in sorted(dotenv.items())
        }
    return {"services": result, "env_file": env_file}, findings


def env_file_path(project: ComposeProject) -> str:
    """The file Compose interpolates from: the last --env-file given, or the project's `.env`."""
    if project.env_files:
        name = project.env_files[-1]
        return name if os.path.isabs(name) else os.path.join(project.project_src, name)
    return os.path.join(project.project_src, ".env")


def inspect_env(project: ComposeProject, what: str, ids: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """(image id, Config.Env) by id of containers or images. The output holds secrets: it never leaves this function
    but as a dictionary, and a failure says only what failed."""
    if not ids:
        return {}
    argv = [*project.docker(), *([] if what == "container" else ["image"]), "inspect", "--format"]
    rc, out, _err = project.module.run_command(
        [
            *argv,
            "{{.Id}} {{.Image}} {{json .Config.Env}}" if what == "container" else "{{.Id}} - {{json .Config.Env}}",
            *ids,
        ],
        environ_update=project.environ(),
    )
    if rc != 0:
        raise ComposeError(f"`docker {what} inspect` of the project's {what}s failed with exit code {rc}.", rc=rc)
    found = {}
    for line in out.splitlines():
        ident, image, env = [*line.split(" ", 2), "", ""][:3]
        found[ident] = (image, env_list(json.loads(env or "null")))
    return found


def read(project: ComposeProject, containers: list[Container], names: Names) -> tuple[dict[str, t.Any], list[Finding]]:
    """Inspect the containers and their images, read the env file, compare (plan)."""
    inspected = inspect_env(project, "container", [c.id for c in containers])
    of = {c.id: next((v for k, v in inspected.items() if k.startswith(c.id)), ("", {})) for c in containers}
    images = inspect_env(project, "image", sorted({image for image, _env in of.values() if image}))
    path = env_file_path(project)
    dotenv = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            dotenv = parse_dotenv(handle.read())
    data, findings = plan(
        [(c.service, c.name, of[c.id][1], images.get(of[c.id][0], ("", {}))[1]) for c in containers],
        project.services,
        dotenv,
        Classifier(names.sensitive_names, names.public_names),
    )
    data["env_file_path"] = path if dotenv is not None else None
    return data, findings
