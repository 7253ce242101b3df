"""A role's tags select its steps through the playbook too: `ansible-playbook stackops.runbooks.health_check --tags
reach` must reach the role's `reach` tasks. A dynamic include_role is itself a task that --tags filters, so an
include without `always` skips the whole role, and every "tag X runs the step alone" of the docs would be false."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def includes(node: Any) -> list[dict[str, Any]]:
    """Every include_role task of a play's tasks, blocks and their rescue/always included."""
    found: list[dict[str, Any]] = []
    if isinstance(node, list):
        for item in node:
            found += includes(item)
    elif isinstance(node, dict):
        if "ansible.builtin.include_role" in node or "include_role" in node:
            found.append(node)
        for key in ("tasks", "pre_tasks", "post_tasks", "block", "rescue", "always"):
            found += includes(node.get(key))
    return found


def untagged_includes(playbook: Path) -> list[str]:
    return [
        f"{playbook.name}: {task.get('name', '(unnamed)')}"
        for task in includes(yaml.safe_load(playbook.read_text()))
        if "always" not in (task.get("tags") or [])
    ]


def test_every_include_role_of_a_playbook_is_tagged_always() -> None:
    missing = [line for path in sorted((REPO / "playbooks").glob("*.yml")) for line in untagged_includes(path)]
    assert not missing, f"include_role without tags [always] (--tags would skip the whole role): {missing}"


def test_the_reader_sees_includes_in_blocks(tmp_path: Path) -> None:
    play = tmp_path / "p.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "tasks": [
                        {"name": "a", "block": [{"name": "in block", "ansible.builtin.include_role": {"name": "r"}}]},
                        {"name": "b", "ansible.builtin.include_role": {"name": "r"}, "tags": ["always"]},
                    ],
                }
            ]
        )
    )
    assert untagged_includes(play) == ["p.yml: in block"]
