# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # What each attribute means; modules state only their support (and details).
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: In check mode the module changes nothing and reports whether a real run would change something.
  diff_mode:
    description: In diff mode the module shows the state before and after (or as it would be after, in check mode).
  idempotent:
    description: A second run with the same arguments on an unchanged target reports no change.
  platform:
    description: The systems the module runs on.
    support: N/A
"""
