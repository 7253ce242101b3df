# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test harness only: let the harness's ansible-playbook runs share the module payloads ansible-core builds.

ansible-core builds each module's AnsiballZ payload once per run, in a cache under its per-run local temp folder:
it parses every module_utils file the module imports (about 60 files, 0.2-0.5 s of CPU per module), and a run of the
test suite starts over a thousand playbooks. This callback points that cache folder at one shared by every run of the
same collection content and the same ansible-core (the harness names it in STACKOPS_ANSIBALLZ_CACHE), so each
payload is built once per test session. ansible-core's own lock and atomic rename guard the shared files. Nothing
else changes: the payload is the bytes the run would have built. Users' runs never load this plugin.
"""

from __future__ import annotations

import os
import sys

from ansible import constants
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__

DOCUMENTATION = """
name: ansiballz_cache
type: aggregate
short_description: share AnsiballZ payloads between the test harness's runs
description: Links the run's AnsiballZ cache folder to STACKOPS_ANSIBALLZ_CACHE/<ansible-core version>.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ansiballz_cache"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        shared = os.environ.get("STACKOPS_ANSIBALLZ_CACHE")
        if not shared:
            return
        # The payload differs between ansible-core versions and Python versions of the controller.
        target = os.path.join(shared, f"{__version__}-py{sys.version_info[0]}.{sys.version_info[1]}")
        os.makedirs(target, mode=0o700, exist_ok=True)
        link = os.path.join(constants.DEFAULT_LOCAL_TMP, "ansiballz_cache")
        if not os.path.lexists(link):
            os.symlink(target, link)
