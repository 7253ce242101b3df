# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a run came from, for evidence: the AWX job that launched it (from the variables AWX gives every job), the
user, this collection's version and the git commit of the playbook source. A lookup rather than a filter: it reads
the controller's files and runs git there, which is a lookup's job; a filter is a pure function of its input."""

from __future__ import annotations

DOCUMENTATION = r"""
name: run_provenance
version_added: 0.1.0
short_description: Where the current run came from, for evidence
description:
  - Returns one mapping describing the run, as the restore drill's run document records it (C(provenance), schema
    C(stackops.runbooks/restore-drill/2), C(docs/restore_drill_report.md)).
  - Under AWX it reads the variables AWX gives every job (C(awx_job_id), C(awx_job_launch_type),
    C(awx_job_template_name), C(awx_schedule_name) or C(awx_parent_job_schedule_name), C(awx_workflow_job_id),
    C(awx_user_name), C(awx_execution_node), C(awx_project_revision)). Nothing else is read, so no credential or
    survey answer can reach the result.
  - Outside AWX the user is the controller's login user, the launch type is O(launcher) (C(cli) when
    C(python -m stackops_cli) started the run) or C(ansible-playbook), and the commit is C(git rev-parse HEAD) of
    O(playbook_dir) when it is a git checkout.
  - The collection's version is read from the installed collection's C(MANIFEST.json), or from C(galaxy.yml) in a
    checkout; null when neither says.
  - Outside AWX every value is what the controller says about itself; the C(awx_*) variables can be given as extra
    variables by anyone who runs the playbook. Under AWX they cannot be overridden.
options:
  job_id:
    description:
      - AWX's job id; its presence means AWX launched the run.
      - Ids are read leniently (a number as text is a number, anything else is none), so that a malformed extra
        variable never stops the report that records it.
    type: raw
    vars:
      - name: awx_job_id
  launch_type:
    description: How AWX launched the job (C(manual), C(scheduled), C(workflow), C(relaunch), ...).
    type: str
    vars:
      - name: awx_job_launch_type
  job_template:
    description: The job template's name.
    type: str
    vars:
      - name: awx_job_template_name
  schedule:
    description: The schedule that launched the job.
    type: str
    vars:
      - name: awx_schedule_name
  parent_schedule:
    description: The schedule that launched the workflow this job runs in.
    type: str
    vars:
      - name: awx_parent_job_schedule_name
  workflow_job_id:
    description: The workflow job this job runs in.
    type: raw
    vars:
      - name: awx_workflow_job_id
  user:
    description: The AWX user that launched the job (AWX gives none for scheduled and callback jobs).
    type: str
    vars:
      - name: awx_user_name
  execution_node:
    description: The AWX node that ran the job.
    type: str
    vars:
      - name: awx_execution_node
  project_revision:
    description: The revision of the AWX project the job ran from.
    type: str
    vars:
      - name: awx_project_revision
  playbook_dir:
    description: The playbook's directory, whose git commit is recorded outside AWX.
    type: path
    vars:
      - name: playbook_dir
  launcher:
    description: How the run was started outside AWX; C(python -m stackops_cli) sets C(cli).
    type: str
    default: ansible-playbook
    env:
      - name: STACKOPS_LAUNCHER
author: stackops developers (@stackops)
"""

EXAMPLES = r"""
- name: Record where this run came from
  ansible.builtin.set_fact:
    provenance: "{{ lookup('stackops.runbooks.run_provenance') }}"
"""

RETURN = r"""
_raw:
  description:
    - One mapping, C(awx_job_id), C(awx_job_template), C(awx_schedule), C(awx_workflow_job_id),
      C(awx_execution_node) (null outside AWX), C(launch_type), C(user), C(collection_version) and C(git_commit)
      (null when unknown).
  type: list
  elements: dict
"""

import getpass
import json
import subprocess
import typing as t
from pathlib import Path

import yaml
from ansible.plugins.lookup import LookupBase

# The collection's root: plugins/lookup/<this file> is two levels below it.
COLLECTION = Path(__file__).resolve().parent.parent.parent


def collection_version(root: Path = COLLECTION) -> str | None:
    """The version of the collection at root: its MANIFEST.json once installed, its galaxy.yml in a checkout."""
    try:
        manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
        version = manifest["collection_info"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        try:
            version = yaml.safe_load((root / "galaxy.yml").read_text(encoding="utf-8"))["version"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            return None
    return str(version) if version not in (None, "") else None


def git_commit(directory: str | None) -> str | None:
    """The commit checked out where directory is, or None when it is not in a git checkout (or git is missing)."""
    if not directory:
        return None
    try:
        done = subprocess.run(
            ["git", "-C", directory, "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _id(value: t.Any) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


def local_user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def provenance(
    awx: dict[str, t.Any], launcher: str, version: str | None, commit: t.Callable[[], str | None]
) -> dict[str, t.Any]:
    """The provenance record from AWX's values (awx: this plugin's options); commit and the local user are only
    asked for outside AWX, where AWX's own values are missing."""
    under_awx = _id(awx.get("job_id")) is not None

    def given(name: str) -> t.Any:
        return awx.get(name) if under_awx and awx.get(name) not in (None, "") else None

    return {
        "awx_job_id": _id(given("job_id")),
        "awx_job_template": given("job_template"),
        # A job of a scheduled workflow has no schedule of its own: the workflow's is the one that launched it.
        "awx_schedule": given("schedule") or given("parent_schedule"),
        "awx_workflow_job_id": _id(given("workflow_job_id")),
        "awx_execution_node": given("execution_node"),
        "launch_type": (given("launch_type") or "awx") if under_awx else (launcher or "ansible-playbook"),
        # Under AWX the controller's login is the execution environment's, which says nothing about who launched it.
        "user": given("user") if under_awx else local_user(),
        "collection_version": version,
        "git_commit": given("project_revision") or commit(),
    }


class LookupModule(LookupBase):
    def run(self, terms: list[t.Any], variables: dict[str, t.Any] | None = None, **kwargs: t.Any) -> list[t.Any]:
        self.set_options(var_options=variables, direct=kwargs)
        names = (
            "job_id",
            "launch_type",
            "job_template",
            "schedule",
            "parent_schedule",
            "workflow_job_id",
            "user",
            "execution_node",
            "project_revision",
        )
        awx = {name: self.get_option(name) for name in names}
        playbook_dir = self.get_option("playbook_dir")
        return [provenance(awx, self.get_option("launcher"), collection_version(), lambda: git_commit(playbook_dir))]
