# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # What the read-only health modules share (plugins/module_utils/_health.py health_argument_spec); each module
    # documents its own checks and thresholds.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  fail_on:
    description:
      - Fail the task when the status is at least this bad. V(never) only reports.
    type: str
    default: critical
    choices: [critical, warning, never]
"""
