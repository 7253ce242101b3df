# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the config_change role: the planner of module_utils/_config_change.py over the files the role read
(YAML is read and written here, on the controller)."""

from __future__ import annotations

import json
import typing as t

import yaml

from ansible_collections.stackops.runbooks.plugins.module_utils import _config_change as planner


def config_change_errors(env: t.Any, memory: t.Any) -> list[str]:
    """What is wrong with the request, before anything is read: names, values, sizes."""
    return planner.validate(env, memory)[1]


def config_change_plan(
    env_text: str, override_text: str | None, compose_json: str, env: t.Any, memory: t.Any, env_path: str = ".env"
) -> dict[str, t.Any]:
    """The change (planner.plan) from the text of .env, of the override file (None when there is none) and of
    `docker compose config --no-interpolate --format json`. No secret value is in it."""
    request, errors = planner.validate(env, memory)
    services = (json.loads(compose_json or "{}") or {}).get("services") or {}
    override = None if override_text is None else (yaml.safe_load(override_text) or {})
    owned = override_text is None or override_text.startswith(planner.MARKER)
    if override is not None and not isinstance(override, dict):
        override, owned = {}, False
    result = planner.plan(env_text or "", override, owned, services, request, env_path)
    result["errors"] = errors + result["errors"]
    result["override_text"] = planner.HEADER + yaml.safe_dump(
        result["override"], default_flow_style=False, sort_keys=True
    )
    return result


def config_change_env_text(env_text: str, env: t.Any) -> str:
    """The new .env text (it holds the secrets of the file: only for no_log tasks)."""
    request, _errors = planner.validate(env, {})
    return planner.edit_env(env_text or "", request.env)


def config_change_file(stat_result: dict[str, t.Any]) -> dict[str, t.Any]:
    """A file's path, whether it exists, its mode and owner, from a looped ansible.builtin.stat result."""
    stat = stat_result.get("stat") or {}
    return {
        "path": stat_result.get("item"),
        "exists": bool(stat.get("exists")),
        "mode": stat.get("mode"),
        "owner": stat.get("pw_name"),
        "group": stat.get("gr_name"),
    }


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "config_change_errors": config_change_errors,
            "config_change_plan": config_change_plan,
            "config_change_env_text": config_change_env_text,
            "config_change_file": config_change_file,
        }
