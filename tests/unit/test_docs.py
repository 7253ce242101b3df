"""Docs that must not drift: generated module/role pages, and the links the README and docs make."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from harness.paths import REPO


# stack_health's doc fragment, the module/role pages, docs/bad_input.md (from test_validation's case table) and
# CHANGELOG.rst (from the changelog fragments): each generator's --check fails when its output is stale.
@pytest.mark.parametrize("generator", ["gen_fragments.py", "gen_docs.py", "gen_bad_input_doc.py", "gen_changelog.py"])
def test_generated_files_are_current(generator: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "tools" / generator), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_module_role_and_playbook_has_a_page() -> None:
    for folder, pattern, pages in (
        ("plugins/modules", "*.py", "docs/modules"),
        ("roles", "*/meta", "docs/roles"),
        ("playbooks", "*.yml", "docs/playbooks"),
    ):
        for path in (REPO / folder).glob(pattern):
            name = path.parent.name if pattern.endswith("meta") else path.stem
            assert (REPO / pages / f"{name}.md").exists(), f"{path.relative_to(REPO)} has no page in {pages}/"


def test_relative_links_in_markdown_resolve() -> None:
    for page in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"
