#!/usr/bin/python
# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_logs
short_description: Collect the logs of a Docker Compose v2 project's services, filtered, optionally into a file
version_added: 0.1.0
description:
  - Reads C(docker compose logs) of some or all services. Takes O(since) and O(tail), keeps only the lines that
    match O(pattern), and returns them. With O(dest) it also writes them atomically to a file (mode 0600 by
    default) on the managed host.
  - These are the runbooks' C(docker-compose logs --tail=100 backend | grep -i error) and "collect logs since the
    incident started".
author: stackops developers (@stackops)
extends_documentation_fragment:
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the logs are read and returned, and O(dest) is not written.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The task reports a change only when O(dest) is written with content it did not have.
  platform:
    platforms: posix
options:
  services:
    description:
      - Services whose logs to read. Default is every service.
    type: list
    elements: str
  since:
    description:
      - Only lines since this time, as C(docker compose logs --since) takes it (C(2026-11-23T07:00:00Z), C(42m)).
    type: str
  tail:
    description:
      - Number of lines per container, counted from the end, or V(all).
    type: str
    default: "200"
  pattern:
    description:
      - A Python regular expression. Only lines that match (C(re.search)) are kept.
    type: str
  ignore_case:
    description:
      - Match O(pattern) without regard to case, like C(grep -i).
    type: bool
    default: false
  timestamps:
    description:
      - Prefix each line with its timestamp, and return the lines of all containers in time order.
    type: bool
    default: false
  dest:
    description:
      - Write the kept lines to this file on the managed host, given by its absolute path. The file is replaced
        atomically.
    type: path
  redact:
    description:
      - Values (passwords, tokens) replaced by C([REDACTED]) in every kept line, before it is returned or written.
      - A value is also found percent-encoded (as URLs and forms carry it, a space also as C(+)) and JSON-escaped (as
        JSON log lines carry it, with C(\") and C(\\), C(\/) or C(\uXXXX)), in upper or lower case hexadecimal.
    type: list
    elements: str
    default: []
  compress:
    description:
      - Write O(dest) gzip-compressed (name it C(.gz)), for exports of many days of logs.
    type: bool
    default: false
  return_lines:
    description:
      - How many of the kept lines to return in RV(lines), the last ones; V(-1) returns them all. An export into
        O(dest) of a month of logs needs none in the result (V(0)); the counts are returned all the same.
    type: int
    default: -1
  mode:
    description:
      - Permissions of O(dest). Logs can hold secrets, so the default lets only the owner read them.
    type: raw
    default: "0600"
seealso:
  - module: stackops.runbooks.compose_service
"""

EXAMPLES = r"""
- name: Errors of the backend in its last 100 lines
  stackops.runbooks.compose_logs:
    project_src: /srv/app
    services: [backend]
    tail: "100"
    pattern: error|exception|traceback
    ignore_case: true
  register: backend_errors

- name: Keep every service's logs since the incident started in the incident folder
  stackops.runbooks.compose_logs:
    project_src: /srv/app
    since: "2026-11-23T03:12:00Z"
    tail: all
    timestamps: true
    dest: /var/tmp/incident-42/compose.log
"""

RETURN = r"""
lines:
  description:
    - The kept log lines, prefixed by container (C(service-1  | ...)) as Compose prints them; only the last
      O(return_lines) when that is not V(-1).
  returned: always
  type: list
  elements: str
matched:
  description: How many lines were kept.
  returned: always
  type: int
  sample: 3
matched_by_container:
  description: How many kept lines each container printed, by the name Compose prefixes its lines with.
  returned: always
  type: dict
  sample: {backend-1: 2}
read:
  description: How many lines were read before filtering.
  returned: always
  type: int
  sample: 200
dest:
  description: The file written (or that would be written), when O(dest) is set.
  returned: when O(dest) is set
  type: str
"""

import dataclasses
import gzip
import os
import re
import typing as t
from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stackops.runbooks.plugins.module_utils._common import execute, options_of
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import (
    ComposeError,
    ComposeProject,
    ProjectRef,
    common_argument_spec,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._files import write_atomic
from ansible_collections.stackops.runbooks.plugins.module_utils._redact import redactor

LOG_PREFIX = re.compile(r"^(\S+)\s+\|")


def argument_spec() -> dict[str, t.Any]:
    spec = common_argument_spec()
    spec.update(
        services={"type": "list", "elements": "str"},
        since={"type": "str"},
        tail={"type": "str", "default": "200"},
        pattern={"type": "str"},
        ignore_case={"type": "bool", "default": False},
        timestamps={"type": "bool", "default": False},
        dest={"type": "path"},
        compress={"type": "bool", "default": False},
        return_lines={"type": "int", "default": -1},
        mode={"type": "raw", "default": "0600"},
        redact={"type": "list", "elements": "str", "default": [], "no_log": True},
    )
    return spec


def compile_pattern(pattern: str | None, ignore_case: bool) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ComposeError(f"pattern {pattern!r} is not a valid regular expression: {exc}.") from None


def by_container(lines: list[str]) -> dict[str, int]:
    """Kept lines per container, from Compose's `NAME  | text` prefix."""
    counts: dict[str, int] = {}
    for line in lines:
        match = LOG_PREFIX.match(line)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def stamp(line: str) -> str:
    """The RFC 3339 time after a line's container prefix (sortable as text: Docker writes UTC, nanoseconds)."""
    _prefix, sep, rest = line.partition("| ")
    return rest[:30] if sep else ""


def write_file(module: AnsibleModule, dest: str, content: str, compress: bool) -> bool:
    """Stage next to dest, then move atomically; True when the content changed."""
    data = content.encode("utf-8")
    try:
        with open(dest, "rb") as handle:
            old: bytes | None = handle.read()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise ComposeError(f"Cannot read {dest}: {exc}.") from None
    if old is not None and compress:
        try:
            old = gzip.decompress(old)
        except (OSError, EOFError):
            old = None  # not gzip (or cut short): replaced
    if old == data:
        return False
    if module.check_mode:
        return True
    folder = os.path.dirname(dest) or "."
    if not os.path.isdir(folder):
        raise ComposeError(f"The folder of dest, {folder}, does not exist; create it first.")
    try:
        # mtime 0: the same lines always give the same file.
        write_atomic(dest, gzip.compress(data, mtime=0) if compress else data, preserve=True)
    except OSError as exc:
        raise ComposeError(f"Could not write {dest}: {exc}.") from None
    return True


@dataclasses.dataclass(frozen=True)
class Options:
    """compose_logs's options once checked: what the planner and executor read, instead of the params."""

    project: ProjectRef
    services: tuple[str, ...]  # empty: every service of the project
    since: str | None
    tail: str
    pattern: re.Pattern[str] | None  # compiled, with ignore_case; None keeps every line
    timestamps: bool
    dest: str | None
    compress: bool
    return_lines: int
    mode: t.Any
    redact: tuple[str, ...] = dataclasses.field(repr=False)  # no_log


def check_inputs(params: Mapping[str, t.Any]) -> Options:
    """Validate what the argument spec cannot; compile the pattern."""
    if params["return_lines"] < -1:
        raise ComposeError(f"return_lines must be -1 (all the kept lines), 0 or more, not {params['return_lines']}.")
    if params["dest"] and not os.path.isabs(params["dest"]):
        # A relative path would land wherever the task's working directory happens to be.
        raise ComposeError(f"dest {params['dest']} is not an absolute path; give the file's full path.")
    pattern = compile_pattern(params["pattern"], params["ignore_case"])
    if params["tail"] != "all" and not params["tail"].isdigit():
        raise ComposeError(f"tail must be a number of lines or 'all', not {params['tail']!r}.")
    return options_of(
        Options,
        params,
        project=ProjectRef.of(params),
        pattern=pattern,
    )


def select(o: Options, read: list[str]) -> list[str]:
    """The lines kept: those the pattern matches, redacted; with timestamps, in time order."""
    redact = redactor(list(o.redact))
    lines = [redact(line) for line in read if o.pattern is None or o.pattern.search(line)]
    if o.timestamps:
        # Compose prints container after container; by time, the newest lines are the last ones kept.
        lines.sort(key=stamp)
    return lines


def returned(o: Options, lines: list[str]) -> list[str]:
    """The last return_lines of the kept lines, or all of them."""
    return lines if o.return_lines < 0 else lines[len(lines) - o.return_lines :]


def run_module(module: AnsibleModule) -> dict[str, t.Any]:
    o = check_inputs(module.params)
    project = ComposeProject(module, o.project)
    project.check_services(list(o.services))
    read = project.logs(list(o.services), tail=o.tail, since=o.since, timestamps=o.timestamps).splitlines()
    lines = select(o, read)
    result: dict[str, t.Any] = {
        "changed": False,
        "lines": returned(o, lines),
        "matched": len(lines),
        "matched_by_container": by_container(lines),
        "read": len(read),
    }
    if o.dest:
        result["dest"] = o.dest
        result["changed"] = write_file(module, o.dest, "".join(f"{line}\n" for line in lines), o.compress)
        file_args = module.load_file_common_arguments({"path": o.dest, "mode": o.mode})
        if not module.check_mode or os.path.exists(o.dest):
            result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    return result


def main() -> None:
    execute(argument_spec(), run_module)


if __name__ == "__main__":
    main()
