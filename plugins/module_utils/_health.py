# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""The verdict shared by the health modules: thresholds, findings, status and fail_on."""

from __future__ import annotations

import typing as t
from dataclasses import asdict, dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError

SEVERITIES = ("ok", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    message: str
    value: t.Any = None
    threshold: t.Any = None


@dataclass(frozen=True)
class Advice(Finding):
    """An advisor's finding, with the action it suggests."""

    action: str | None = None


@dataclass(frozen=True)
class HealthOptions:
    """The options of health_argument_spec once checked; each health module's record adds what it reads."""

    checks: tuple[str, ...]  # empty: the module's default sections
    thresholds: t.Mapping[str, float]  # the module's defaults with the user's numbers
    fail_on: str  # stack_health's parts have none: stack_health's own decides


def health_argument_spec(sections: t.Sequence[str]) -> dict[str, t.Any]:
    return {
        "checks": {"type": "list", "elements": "str", "choices": list(sections)},
        "thresholds": {"type": "dict", "default": {}},
        "fail_on": {"type": "str", "default": "critical", "choices": ["critical", "warning", "never"]},
    }


def merge_thresholds(defaults: t.Mapping[str, float], given: dict[str, t.Any] | None) -> dict[str, float]:
    """Defaults overridden by the user's numbers; an unknown name or a non-number is an error that lists the
    valid names."""
    merged = dict(defaults)
    for name, value in (given or {}).items():
        if name not in defaults:
            raise StackopsError(f"Unknown threshold {name!r}; known thresholds: {', '.join(sorted(defaults))}.")
        try:
            merged[name] = float(value)
        except (TypeError, ValueError):
            raise StackopsError(f"Threshold {name!r} must be a number, not {value!r}.") from None
    return merged


def rate(
    check: str, label: str, value: float | None, warn: float, crit: float, unit: str = "", higher_is_worse: bool = True
) -> list[Finding]:
    """One finding when value crosses the warning or critical threshold, none otherwise."""
    if value is None:
        return []
    worse = (lambda v, limit: v >= limit) if higher_is_worse else (lambda v, limit: v <= limit)
    for severity, limit in (("critical", crit), ("warning", warn)):
        if worse(value, limit):
            relation = "at or above" if higher_is_worse else "at or below"
            return [
                Finding(
                    check,
                    severity,
                    f"{label} is {value:g}{unit}, {relation} the {severity} threshold {limit:g}{unit}",
                    value,
                    limit,
                )
            ]
    return []


def verdict(findings: list[Finding]) -> str:
    return max((f.severity for f in findings), key=SEVERITIES.index, default="ok")


def finish(findings: list[Finding], result: dict[str, t.Any], fail_on: str) -> dict[str, t.Any]:
    """Add status and findings to result; raise when fail_on says this status fails the task."""
    status = verdict(findings)
    result.update(changed=False, status=status, findings=[asdict(f) for f in findings])
    if fail_on != "never" and SEVERITIES.index(status) >= SEVERITIES.index(fail_on):
        reasons = "; ".join(f.message.rstrip(".") for f in findings if f.severity != "ok")
        raise StackopsError(f"Health is {status}: {reasons}.", **result)
    return result
