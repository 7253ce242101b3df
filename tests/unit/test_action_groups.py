"""The action groups of meta/runtime.yml: a group's module_defaults reach every module that takes its options, and
only those (a module in a group that lacks an option set for the group would fail on it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GROUPS = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["action_groups"]
# Each group and the documentation fragment whose options module_defaults may set for all its modules.
FRAGMENTS = {
    "compose": "stackops.runbooks.compose",
    "postgres": "stackops.runbooks.postgres",
    "redis": "stackops.runbooks.redis",
}


def documentation(path: Path) -> dict:
    text = path.read_text()
    match = re.search(r'^DOCUMENTATION = r?"""\n(.*?)^"""', text, re.S | re.M)
    assert match, f"{path} has no DOCUMENTATION"
    return yaml.safe_load(match.group(1))


MODULES = {path.stem: documentation(path) for path in sorted((REPO / "plugins" / "modules").glob("*.py"))}


def test_every_group_is_tested_and_names_real_modules() -> None:
    assert sorted(GROUPS) == sorted(FRAGMENTS)
    for group, members in GROUPS.items():
        assert members == sorted(set(members), key=members.index), f"{group} names a module twice"
        assert not set(members) - set(MODULES), f"{group} names modules that do not exist"


@pytest.mark.parametrize("group", sorted(FRAGMENTS))
def test_a_group_holds_exactly_the_modules_of_its_connection_options(group: str) -> None:
    fragment = FRAGMENTS[group]
    taking = {name for name, doc in MODULES.items() if fragment in doc.get("extends_documentation_fragment", [])}
    assert set(GROUPS[group]) == taking
