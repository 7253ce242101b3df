# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters for incident bundles."""

from __future__ import annotations

import re
import typing as t

SS_PROCESS = re.compile(r'\("(?P<name>[^"]+)",pid=(?P<pid>\d+)')


WILDCARDS = ("0.0.0.0", "*", "[::]")  # noqa: S104 (compared with, not bound to)


def port_owner(port: t.Any, ss_lines: list[str], addresses: list[str] | None = None) -> str:
    """Who listens on a TCP port, from `ss -Hltnp` lines: 'ADDR:PORT by NAME (pid N)', joined, or 'nothing
    listens'. With addresses, only listeners on those addresses or on a wildcard (which takes them all) count."""
    owners = []
    for line in ss_lines:
        fields = line.split()
        if len(fields) < 4 or not fields[3].endswith(f":{port}"):
            continue
        address = fields[3].rsplit(":", 1)[0]
        if addresses and address not in addresses and address not in WILDCARDS:
            continue
        processes = [f"{m['name']} (pid {m['pid']})" for m in SS_PROCESS.finditer(line)] or ["an unknown process"]
        owners.append(f"{fields[3]} by {', '.join(processes)}")
    return "; ".join(owners) or "nothing listens"


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"port_owner": port_owner}
