"""Release metadata that must not drift: changelog fragments that antsibull-changelog accepts, a CHANGELOG.rst that
is what the fragments make, and a requires_ansible that states the ansible-core series the suite runs on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from ansible.release import __version__ as ansible_core_version
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from harness.paths import REPO

CHANGELOG = REPO / "CHANGELOG.rst"


def antsibull_changelog(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "antsibull_changelog", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


def test_changelog_fragments_and_changelog_yaml_pass_the_linter() -> None:
    before = snapshot(REPO / "changelogs")
    for args in (("lint",), ("lint-changelog-yaml", "changelogs/changelog.yaml")):
        proc = antsibull_changelog(*args)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    assert snapshot(REPO / "changelogs") == before, "antsibull-changelog lint changed changelogs/"


def test_the_linter_rejects_a_bad_fragment(tmp_path: Path) -> None:
    shutil.copy(REPO / "galaxy.yml", tmp_path)
    shutil.copytree(REPO / "changelogs", tmp_path / "changelogs")
    (tmp_path / "changelogs" / "fragments" / "9-bad.yml").write_text("new_things:\n  - not a section\nbugfixes: one\n")
    proc = antsibull_changelog("lint", cwd=tmp_path)
    assert proc.returncode != 0
    assert "9-bad.yml" in proc.stdout and "new_things" in proc.stdout, proc.stdout


def test_changelog_lists_every_module_role_and_playbook() -> None:
    parts = re.split(r"^New (\w+)\n-+\n", CHANGELOG.read_text(), flags=re.MULTILINE)
    listed = {
        kind: set(re.findall(r"^- stackops\.runbooks\.(\w+) - ", body, re.MULTILINE))
        for kind, body in zip(parts[1::2], parts[2::2])
    }
    for kind, names in (
        ("Modules", {p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}),
        ("Roles", {p.parent.name for p in (REPO / "roles").glob("*/meta")}),
        ("Playbooks", {p.stem for p in (REPO / "playbooks").glob("*.yml")}),
    ):
        missing = names - listed.get(kind, set())
        assert not missing, f"CHANGELOG.rst has no New {kind} entry for {sorted(missing)}: add them to a fragment"


def test_requires_ansible_is_the_tested_range() -> None:
    requires = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    spec = SpecifierSet(requires)
    assert spec.contains(Version(ansible_core_version).base_version), (
        f"this suite runs on ansible-core {ansible_core_version}, outside requires_ansible {requires}"
    )
    # The lowest series allowed is the one requirements-dev.txt installs, so the minimum is what is tested.
    dev = re.search(r"^ansible-core>=([\d.]+)", (REPO / "requirements-dev.txt").read_text(), re.MULTILINE)
    lower = next(s.version for s in spec if s.operator == ">=")
    assert dev and Version(lower).release[:2] == Version(dev[1]).release[:2], (requires, dev and dev[0])
    assert f"`{requires}`" in (REPO / "docs" / "packaging.md").read_text(), "docs/packaging.md states another range"
