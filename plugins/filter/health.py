# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that let roles judge readings with the same thresholds code the health modules use."""

from __future__ import annotations

import typing as t
from dataclasses import asdict

from ansible_collections.stackops.runbooks.plugins.module_utils._health import rate


def threshold(value: t.Any, check: str, label: str, warning: float, critical: float, unit: str = "") -> list[dict]:
    """Findings (dicts with check, severity, message, value, threshold) for one reading, or for each reading of a
    mapping (the key is added to the label)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [
            f for key, item in value.items() for f in threshold(item, check, f"{label} {key}", warning, critical, unit)
        ]
    return [asdict(f) for f in rate(check, label, float(value), float(warning), float(critical), unit)]


def disk_used_pct(mounts: list[dict[str, t.Any]], wanted: list[str]) -> dict[str, float]:
    """Percent used of the wanted mount points, from the setup module's ansible_mounts."""
    return {
        m["mount"]: round(100.0 * (m["size_total"] - m["size_available"]) / m["size_total"], 1)
        for m in mounts
        if m["mount"] in wanted and m.get("size_total")
    }


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"threshold": threshold, "disk_used_pct": disk_used_pct}
