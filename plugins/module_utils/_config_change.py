# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""The planner of a guarded configuration change (role config_change): variables of a compose project's `.env` set
or removed, services' memory limits set or removed in a compose override file that the role owns. Pure functions
over the files' text and Compose's uninterpolated model; what leaves `plan()` names variables, never their values
but masked."""

from __future__ import annotations

import difflib
import json
import re
import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._compose_env import (
    SECRET_NAME,
    URL_VALUE,
    mask_url,
    parse_dotenv,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._redact import MASK

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LINE = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\s*=")
# Docker's memory sizes (go-units RAMInBytes, which Compose uses): a number and an optional unit, 1024-based.
SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s?(?P<unit>[bkmgtp]?)(?:i?b)?$", re.IGNORECASE)
UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MIN_MEMORY = 6 << 20  # Docker refuses a container memory limit under 6 MiB.
# Characters that make an unquoted .env value mean something else to Compose (interpolation, comments, quoting).
UNSAFE = re.compile(r"[\s#$'\"\\`]")
# Variables Compose itself reads from .env: they change the project, not a service.
COMPOSE_OWN = re.compile(r"^(COMPOSE_|DOCKER_)")
MARKER = "# Managed by stackops.runbooks.config_change"
HEADER = (
    f"{MARKER}: memory limits set with the playbook config_change (Compose reads this file after the\n"
    "# project's compose file). Change them with the playbook, which keeps the previous file in releases/.\n"
)


class Request(t.NamedTuple):
    env: dict[str, str | None]
    memory: dict[str, str | None]


def size_bytes(value: t.Any) -> int | None:
    """Bytes of a Docker memory size ('512m', '1g', '1.5GiB', 268435456), None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    match = SIZE.match(str(value).strip())
    if not match:
        return None
    return int(float(match.group("number")) * UNITS[match.group("unit").lower()])


def mask_value(name: str, value: str) -> str:
    """A secret-named variable's value masked whole; any other value as a URL with its password masked."""
    return MASK if SECRET_NAME.search(name) else mask_url(value)


def shown(name: str, value: str | None) -> str:
    """A value as messages and diffs show it: secrets masked, a URL's password masked."""
    if value is None:
        return "(unset)"
    if SECRET_NAME.search(name) or URL_VALUE.match(value):
        return mask_value(name, value)
    return repr(value)


def render_value(value: str) -> str | None:
    """The value as a .env line writes it so that Compose reads it back literally, or None when no quoting can."""
    if not UNSAFE.search(value):
        return value
    if "'" not in value:
        return f"'{value}'"
    if not re.search(r"[$\\\"]", value):
        return f'"{value}"'
    return None


def validate(env: t.Any, memory: t.Any) -> tuple[Request, list[str]]:
    """The request, normalised, and what is wrong with it (each a sentence that names the value and the fix)."""
    errors: list[str] = []
    env = env if isinstance(env, dict) else {}
    memory = memory if isinstance(memory, dict) else {}
    clean_env: dict[str, str | None] = {}
    for key, value in env.items():
        name = str(key)
        if not NAME.match(name):
            errors.append(
                f"{name!r} is not a valid variable name: use letters, digits and _, not starting with a digit "
                "(e.g. LOG_LEVEL)."
            )
            continue
        if COMPOSE_OWN.match(name):
            errors.append(
                f"{name} is read by Compose itself, not by a service (it changes the project); edit it by hand."
            )
            continue
        if isinstance(value, (bool, dict, list)):
            errors.append(
                f'The value of {name} is a {type(value).__name__}, not a string: quote it (e.g. {name}: "true").'
            )
            continue
        text = None if value is None else str(value)
        if text is not None and ("\n" in text or "\r" in text or "\0" in text):
            errors.append(
                f"The value of {name} ({shown(name, text)}) holds a line break or NUL: a .env value is one line; "
                "remove it."
            )
            continue
        if text is not None and render_value(text) is None:
            errors.append(
                f"The value of {name} holds both ' and one of $ \\ \": Compose's .env cannot hold it literally; "
                "remove one of them."
            )
            continue
        clean_env[name] = text
    clean_memory: dict[str, str | None] = {}
    for service, value in memory.items():
        if value in (None, ""):
            clean_memory[str(service)] = None
            continue
        size = size_bytes(value)
        if size is None:
            errors.append(
                f"The memory limit {str(value)!r} of service {service} is not a size: write a number with b, k, m "
                "or g (e.g. 512m or 1g), or null to remove the limit."
            )
        elif size < MIN_MEMORY:
            errors.append(
                f"The memory limit {str(value)!r} of service {service} is {size} bytes, under Docker's minimum of "
                f"6m: give a unit (e.g. {value}m)."
            )
        else:
            clean_memory[str(service)] = str(value).strip()
    return Request(clean_env, clean_memory), errors


def edit_env(text: str, changes: dict[str, str | None]) -> str:
    """The .env text with the changes made: a line whose value already reads as wanted is kept byte for byte, a
    changed one is rewritten in place (every copy of it), a removed one goes, a new one is appended."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        match = LINE.match(line)
        name = match.group("name") if match else None
        if name is None or name not in changes or line.lstrip().startswith("#"):
            out.append(line)
            continue
        seen.add(name)
        wanted = changes[name]
        if wanted is None:
            continue
        if parse_dotenv(line).get(name) == wanted:
            out.append(line)
        else:
            ending = line[len(line.rstrip("\r\n")) :] or "\n"
            out.append(f"{match.group('lead') if match else ''}{name}={render_value(wanted)}{ending}")
    added = [
        f"{name}={render_value(value)}\n" for name, value in changes.items() if value is not None and name not in seen
    ]
    if added and out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    return "".join(out + added)


def readers(services: dict[str, t.Any], names: t.Iterable[str]) -> dict[str, list[str]]:
    """Which services' uninterpolated configuration (`config --no-interpolate`) refers to each variable; `$$` is a
    literal dollar, not a reference."""
    found: dict[str, list[str]] = {}
    for name in names:
        pattern = re.compile(rf"(?<!\$)\$(?:\{{{re.escape(name)}(?=[}}:?+-])|{re.escape(name)}(?![A-Za-z0-9_]))")
        found[name] = sorted(s for s, spec in services.items() if pattern.search(json.dumps(spec)))
    return found


def memory_key(spec: dict[str, t.Any]) -> str:
    """The key a service's memory limit is set with: the one its compose file uses, mem_limit by default."""
    limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    return "deploy" if "memory" in limits and "mem_limit" not in spec else "mem_limit"


def current_memory(spec: dict[str, t.Any]) -> int | None:
    limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    value = spec.get("mem_limit", limits.get("memory"))
    return None if value is None else size_bytes(value)


def human(size: int | None) -> str | None:
    """Bytes as the largest whole Docker unit ('256m')."""
    if size is None:
        return None
    for unit in ("g", "m", "k"):
        if size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return str(size)


def edit_override(
    override: dict[str, t.Any], services: dict[str, t.Any], memory: dict[str, str | None]
) -> tuple[dict[str, t.Any], dict[str, dict[str, t.Any]]]:
    """The override's model with the memory limits set or removed, and per service whose limit changes its limit
    before (as Compose resolves it now) and after (None: the override's limit goes, the compose file's own, if any,
    shows through). A limit the service already has is not written again."""
    new = json.loads(json.dumps(override or {}))
    changes: dict[str, dict[str, t.Any]] = {}
    for service, value in memory.items():
        mine = ((new.get("services") or {}).get(service)) or {}
        deploy_limits = ((mine.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        own = mine.get("mem_limit", deploy_limits.get("memory"))
        effective = current_memory(services.get(service) or {})
        if value is None and own is None:
            continue
        if value is not None and (size_bytes(value) == (effective if own is None else size_bytes(own))):
            continue
        mine.pop("mem_limit", None)
        deploy_limits.pop("memory", None)
        if value is not None and memory_key(services.get(service) or {}) == "mem_limit":
            mine["mem_limit"] = value
        elif value is not None:
            mine.setdefault("deploy", {}).setdefault("resources", {}).setdefault("limits", {})["memory"] = value
        prune(mine)
        new.setdefault("services", {})
        if mine:
            new["services"][service] = mine
        else:
            new["services"].pop(service, None)
        changes[service] = {"before": human(effective), "after": value}
    if not new.get("services"):
        new.pop("services", None)
    return new, changes


def prune(tree: dict[str, t.Any]) -> None:
    """Empty mappings left by a removal go too."""
    for key in list(tree):
        if isinstance(tree[key], dict):
            prune(tree[key])
            if not tree[key]:
                del tree[key]


def masked_lines(text: str, other: dict[str, str] | None = None) -> list[str]:
    """The .env lines as a diff shows them: secret values and URL passwords masked; given the other side's values,
    a line whose value differs there but masks the same is marked changed."""
    values = parse_dotenv(text)
    out = []
    for line in text.splitlines():
        match = LINE.match(line)
        name = match.group("name") if match and not line.lstrip().startswith("#") else None
        if match is None or name is None or name not in values:
            out.append(line)
            continue
        value = values[name]
        if not (SECRET_NAME.search(name) or URL_VALUE.match(value)):
            out.append(line)
            continue
        masked = mask_value(name, value)
        mark = ""
        if other is not None and name in other and other[name] != value:
            mark = " (changed)" if masked == mask_value(name, other[name]) else ""
        out.append(f"{match.group('lead')}{name}={masked}{mark}")
    return out


def masked_diff(path: str, before: str, after: str) -> list[str]:
    """A unified diff of .env with no secret in it."""
    return list(
        difflib.unified_diff(
            masked_lines(before),
            masked_lines(after, parse_dotenv(before)),
            f"{path} (before)",
            f"{path} (after)",
            lineterm="",
        )
    )


def plan(
    env_text: str,
    override: dict[str, t.Any] | None,
    override_owned: bool,
    services: dict[str, t.Any],
    request: Request,
    env_path: str = ".env",
) -> dict[str, t.Any]:
    """What the change does. `override` is the override file's model (None when there is none), `override_owned`
    whether the role wrote it; `services` the project's services from `config --no-interpolate`."""
    errors = []
    unknown = sorted(set(request.memory) - set(services))
    if unknown:
        errors.append(
            f"Service(s) {', '.join(unknown)} not defined in the project (it has: {', '.join(sorted(services))}); "
            "fix config_change_memory."
        )
    if request.memory and override is not None and not override_owned:
        errors.append(
            "The override file was not written by config_change (its first line is not "
            f"{MARKER!r}): set the limit in it by hand, or point config_change_override_file at a new file."
        )
    current = parse_dotenv(env_text)
    keys: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
    for name, value in request.env.items():
        if value is None and name in current:
            keys["removed"].append(name)
        elif value is not None and name not in current:
            keys["added"].append(name)
        elif value is not None and current[name] != value:
            keys["changed"].append(name)
    touched = sorted(keys["added"] + keys["changed"] + keys["removed"])
    read_by = readers(services, touched)
    new_env = edit_env(env_text, {k: request.env[k] for k in touched}) if touched else env_text
    new_override, memory = (
        edit_override(override or {}, services, {k: v for k, v in request.memory.items() if k in services})
        if not errors
        else (override or {}, {})
    )
    affected = sorted({s for names in read_by.values() for s in names} | set(memory))
    return {
        "errors": errors,
        "env_changed": new_env != env_text,
        "keys": {k: sorted(v) for k, v in keys.items()},
        "read_by": read_by,
        "unread": sorted(name for name, found in read_by.items() if not found),
        "memory": memory,
        "override_changed": bool(memory),
        "override_absent": not new_override,
        "override": new_override,
        "services": affected,
        "diff": masked_diff(env_path, env_text, new_env) if new_env != env_text else [],
        "needed": new_env != env_text or bool(memory),
    }
