"""The run_provenance lookup: the AWX job, user, collection version and git commit a drill report records."""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import jsonschema
import pytest
import yaml
from ansible import constants
from ansible.template import Templar

from ansible_collections.stackops.runbooks.plugins.lookup import run_provenance
from ansible_collections.stackops.runbooks.plugins.lookup.run_provenance import (
    LookupModule,
    collection_version,
    git_commit,
    provenance,
)
from harness.paths import REPO

SCHEMA_V2 = json.loads((REPO / "docs" / "schemas" / "restore_drill.v2.schema.json").read_text())
PROVENANCE_SCHEMA = {**SCHEMA_V2["properties"]["provenance"], "$defs": SCHEMA_V2["$defs"]}
# What AWX gives a scheduled job of a workflow (awx/main/models/unified_jobs.py and jobs.py, awx_meta_vars), with the
# fields the record must never copy: the user's e-mail and a survey's password.
AWX = {
    "awx_job_id": 4711,
    "awx_job_launch_type": "workflow",
    "awx_job_template_name": "stackops restore drill",
    "awx_parent_job_schedule_name": "stackops weekly restore drill",
    "awx_workflow_job_id": 4710,
    "awx_execution_node": "awx-task-0",
    "awx_project_revision": "3f2a9c4e1b7d8a6f5e4d3c2b1a0f9e8d7c6b5a49",
    "awx_user_email": "ops@example.com",
    "stackops_pg_password": "hunter2",
}


NAME = "stackops.runbooks.run_provenance"


def lookup(variables: dict[str, t.Any]) -> dict[str, t.Any]:
    # The options' variables, environment and types from DOCUMENTATION, as the plugin loader registers them for a play.
    options = yaml.safe_load(run_provenance.DOCUMENTATION)["options"]
    constants.config.initialize_plugin_configuration_definitions("lookup", NAME, options)
    module = LookupModule(templar=Templar(variables=variables))
    module._load_name = NAME
    (record,) = module.run([], variables=variables)
    jsonschema.validate(record, PROVENANCE_SCHEMA)
    return record


def test_the_collections_own_version_is_its_galaxy_yml() -> None:
    assert collection_version() == str(yaml.safe_load((REPO / "galaxy.yml").read_text())["version"])


def test_an_installed_collections_manifest_wins_over_galaxy_yml(tmp_path: Path) -> None:
    (tmp_path / "galaxy.yml").write_text("version: 0.0.1\n")
    assert collection_version(tmp_path) == "0.0.1"
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "1.2.3"}}))
    assert collection_version(tmp_path) == "1.2.3"


@pytest.mark.parametrize("manifest", [None, "{not json", '{"collection_info": {}}', "[]"])
def test_no_version_is_null(tmp_path: Path, manifest: str | None) -> None:
    if manifest is not None:
        (tmp_path / "MANIFEST.json").write_text(manifest)
    assert collection_version(tmp_path) is None
    (tmp_path / "galaxy.yml").write_text("name: runbooks\n")
    assert collection_version(tmp_path) is None


def test_git_commit_of_a_checkout_and_of_anything_else(tmp_path: Path) -> None:
    assert (
        git_commit(str(REPO))
        == subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    assert git_commit(str(tmp_path)) is None
    assert git_commit(str(tmp_path / "missing")) is None
    assert git_commit(None) is None
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert git_commit(str(tmp_path)) is None, "a repository without a commit has none"


def test_under_awx_every_value_is_awxs(tmp_path: Path) -> None:
    record = lookup({**AWX, "playbook_dir": str(REPO)})
    assert record == {
        "awx_job_id": 4711,
        "awx_job_template": "stackops restore drill",
        "awx_schedule": "stackops weekly restore drill",
        "awx_workflow_job_id": 4710,
        "awx_execution_node": "awx-task-0",
        "launch_type": "workflow",
        # A scheduled job has no user; the execution environment's login is not one.
        "user": None,
        "collection_version": collection_version(),
        "git_commit": AWX["awx_project_revision"],
    }
    assert "hunter2" not in json.dumps(record) and "example.com" not in json.dumps(record)


def test_awx_values_given_as_text_are_typed_and_the_jobs_own_schedule_wins() -> None:
    record = lookup(
        {
            "awx_job_id": "12",
            "awx_workflow_job_id": "",
            "awx_schedule_name": "nightly",
            "awx_parent_job_schedule_name": "weekly",
            "awx_user_name": "alice",
        }
    )
    assert (record["awx_job_id"], record["awx_workflow_job_id"], record["awx_schedule"]) == (12, None, "nightly")
    assert (record["user"], record["launch_type"]) == ("alice", "awx")


def test_outside_awx_the_controller_says(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STACKOPS_LAUNCHER", raising=False)
    monkeypatch.setattr(run_provenance, "local_user", lambda: "operator")
    # Every AWX variable but the job id: not a run AWX launched, so none of them is taken.
    without_job = {k: v for k, v in AWX.items() if k != "awx_job_id"}
    record = lookup({**without_job, "playbook_dir": str(REPO / "playbooks")})
    assert record["launch_type"] == "ansible-playbook"
    assert record["user"] == "operator"
    assert record["git_commit"] == git_commit(str(REPO))
    assert {k: v for k, v in record.items() if k.startswith("awx_")} == dict.fromkeys(
        ("awx_job_id", "awx_job_template", "awx_schedule", "awx_workflow_job_id", "awx_execution_node")
    )
    monkeypatch.setenv("STACKOPS_LAUNCHER", "cli")
    record = lookup({"playbook_dir": str(tmp_path)})
    assert (record["launch_type"], record["git_commit"]) == ("cli", None)


def test_git_is_asked_only_when_awx_gave_no_revision() -> None:
    asked: list[bool] = []

    def commit() -> str:
        asked.append(True)
        return "abc1234"

    assert provenance({"job_id": 1, "project_revision": "def5678"}, "", "1.0.0", commit)["git_commit"] == "def5678"
    assert asked == []
    assert provenance({"job_id": 1}, "", None, commit)["git_commit"] == "abc1234"
    assert provenance({}, "", None, commit)["launch_type"] == "ansible-playbook"


@pytest.mark.parametrize("job_id", [None, "", "x", 0, -3, True, 1.5j])
def test_a_malformed_job_id_is_not_an_awx_run(job_id: t.Any) -> None:
    record = provenance({"job_id": job_id, "job_template": "t"}, "cli", None, lambda: None)
    assert (record["awx_job_id"], record["awx_job_template"], record["launch_type"]) == (None, None, "cli")
