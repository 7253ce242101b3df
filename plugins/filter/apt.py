# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The upgrades that `apt-get -s` (simulate) would make, from its `Inst` lines."""

from __future__ import annotations

import re
import typing as t

# `Inst <name> [<installed>] (<candidate> <origin:suite>[, ...] [<arch>])`; a package that is not installed has no
# `[<installed>]` and is no upgrade. apt 1.0 to 2.9 print it so (apt-pkg's simulate, not the localised text).
INST = re.compile(r"^Inst (?P<name>\S+) \[(?P<from>[^\]]+)\] \((?P<to>\S+) ", re.MULTILINE)


def apt_upgrades(simulation: str) -> list[dict[str, str]]:
    """Each upgrade as {name, from, to}, in apt's order."""
    return [{"name": m["name"], "from": m["from"], "to": m["to"]} for m in INST.finditer(simulation)]


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"apt_upgrades": apt_upgrades}
