# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets out of a command's output before a role shows or keeps it, with the helpers the modules use: the given
values in every form a line can carry them (compose_logs' redactor), and the passwords of connection strings and
URLs (pg_health's redact_connection_strings). It imports no database driver: ansible-core loads every filter file
of the collection in each task's worker to find one filter, so each must be cheap to import."""

from __future__ import annotations

import typing as t

from ansible_collections.stackops.runbooks.plugins.module_utils._redact import redact_connection_strings, redactor


def redact(text: t.Any, values: list[str] | None = None) -> str:
    """The text with each value replaced by [REDACTED] and connection-string passwords masked, line by line."""
    hide = redactor([str(v) for v in values or [] if v])
    return "\n".join(redact_connection_strings(hide(line)) for line in str(text or "").split("\n"))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"redact": redact}
