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


def host_readings(output: str) -> dict[str, t.Any]:
    """The clock, disk use and memory use of a host, from the output of one probe (see health_check's host.yml):
    `date +%s.%N`, `df -Pk -- MOUNT...` and the MemTotal and MemAvailable lines of /proc/meminfo. Lines it does
    not know (an error from df, ssh's "Shared connection ... closed.") are ignored; a mount df could not read is
    absent from disk_used_pct."""
    clock: float | None = None
    disks: dict[str, float] = {}
    memory: dict[str, int] = {}
    for line in output.replace("\r", "").splitlines():
        fields = line.split(None, 5)
        if len(fields) == 1 and fields[0].replace(".", "", 1).isdigit():
            clock = float(fields[0])
        elif len(fields) == 3 and fields[0] in ("MemTotal:", "MemAvailable:") and fields[1].isdigit():
            memory[fields[0]] = int(fields[1])
        elif len(fields) == 6 and fields[1].isdigit() and fields[2].isdigit() and fields[3].isdigit():
            used, free = int(fields[2]), int(fields[3])
            # As df's Capacity: blocks reserved for root count neither as used nor as available.
            disks[fields[5]] = round(100.0 * used / (used + free), 1) if used + free else 0.0
    total, available = memory.get("MemTotal:"), memory.get("MemAvailable:")
    used_pct = round(100.0 * (total - available) / total, 1) if total and available is not None else None
    return {"clock": clock, "disk_used_pct": disks, "memory_used_pct": used_pct}


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"threshold": threshold, "host_readings": host_readings}
