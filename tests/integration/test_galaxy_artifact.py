"""The collection as a user gets it: `ansible-galaxy collection build` packs exactly what is meant to ship (nothing
of the lab, its credentials or the development tooling), the tarball installs offline into a clean path, its
checksums verify, and a playbook runs by FQCN from there, with nothing of this checkout on the collection path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.paths import LAB_INVENTORY, REPO, lab_credentials, lab_hosts

pytestmark = pytest.mark.lab_hosts("drill1")

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
# What ships: the runtime content and its docs, files at the top, and single files of otherwise private folders.
SHIPPED_TREES = ("plugins/", "roles/", "playbooks/", "meta/", "docs/", "inventories/production/")
SHIPPED_FILES = {
    "README.md",
    "LICENSE",
    "CHANGELOG.rst",
    "requirements.txt",
    "bindep.txt",
    "changelogs/changelog.yaml",
    "changelogs/config.yaml",
    "tests/config.yml",
}
# Developer pages inside docs/, left out with what they link (the lab, the test suites, the benchmarks).
DEVELOPER_DOCS = {"docs/development.md", "docs/lab.md", "docs/testing.md"}
# A relative link of a Markdown page: [text](target) or [text](target#anchor), not a URL or an in-page anchor.
RELATIVE_LINK = re.compile(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)")


@dataclass
class Artifact:
    tarball: Path
    collections: Path  # the clean collections path it is installed into
    installed: Path
    env: dict[str, str]


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def committable_files() -> set[str]:
    """The files git would commit: tracked, or untracked and not ignored (credentials, caches and .venv are ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {path for path in out.split("\0") if path and (REPO / path).is_file()}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Artifact]:
    """Build into a temporary directory and install the tarball offline into a clean path, with an ansible.cfg of
    its own, so neither this checkout's ansible.cfg nor its .build/collections link is on the collection path."""
    base = tmp_path_factory.mktemp("galaxy")
    collections = base / "collections"
    config = base / "ansible.cfg"
    config.write_text("[defaults]\nretry_files_enabled = False\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env |= {"ANSIBLE_CONFIG": str(config), "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"}
    build = run(["ansible-galaxy", "collection", "build", "--output-path", str(base / "dist"), str(REPO)], env, base)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = base / "dist" / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    assert tarball.is_file(), build.stdout
    install = run(
        ["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", str(collections), str(tarball)],
        env,
        base,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    yield Artifact(tarball, collections, installed, env)


def test_the_tarball_holds_what_ships_and_nothing_else(artifact: Artifact) -> None:
    with tarfile.open(artifact.tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        files = {name for name, m in members.items() if m.isfile()} - {"MANIFEST.json", "FILES.json"}
        contents = b"".join(tar.extractfile(members[name]).read() for name in files)  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())  # type: ignore[union-attr]
    # Nothing git ignores (the lab's credentials, .venv, .build, caches, bench results, tests/output) and nothing
    # hidden; these are implied by the exact list below, and asserted on their own for a clearer failure.
    assert not [n for n in members if any(p.startswith(".") or p == "__pycache__" for p in n.split("/"))]
    assert not [n for n in members if "credentials" in n or "host_vars" in n or n.endswith(".pyc")]
    for host in lab_hosts():
        for name, secret in lab_credentials(host).items():
            assert secret.encode() not in contents, f"{host}'s {name} is inside the tarball"
    expected = {
        path
        for path in committable_files()
        if path in SHIPPED_FILES
        or (path.startswith(SHIPPED_TREES) and "__pycache__" not in path and path not in DEVELOPER_DOCS)
    }
    assert files - expected == set(), "the tarball holds files that should not ship (galaxy.yml build_ignore)"
    assert expected - files == set(), "the tarball misses files that should ship (galaxy.yml build_ignore)"
    for required in ("plugins/modules/pg_backup.py", "roles/backup/tasks/main.yml", "playbooks/health_check.yml"):
        assert required in files
    assert manifest["collection_info"]["version"] == GALAXY["version"]
    assert manifest["collection_info"]["dependencies"] == {}


def test_no_developer_page_ships_and_every_link_resolves_inside_the_artifact(artifact: Artifact) -> None:
    with tarfile.open(artifact.tarball) as tar:
        members = {m.name for m in tar.getmembers()}
        pages = {name: tar.extractfile(name).read().decode() for name in members if name.endswith(".md")}  # type: ignore[union-attr]
    assert committable_files() >= DEVELOPER_DOCS, "a developer page named here no longer exists"
    assert not DEVELOPER_DOCS & members, f"developer pages ship: {sorted(DEVELOPER_DOCS & members)}"
    assert {"README.md", "docs/playbooks/backup.md", "docs/modules/pg_backup.md"} <= set(pages)
    broken = []
    for name, text in sorted(pages.items()):
        for target in RELATIVE_LINK.findall(text):
            path = os.path.normpath(os.path.join(os.path.dirname(name), target))
            if path not in members and not any(member.startswith(f"{path}/") for member in members):
                broken.append(f"{name} -> {target}")
    assert not broken, "links to files the built collection does not hold:\n" + "\n".join(broken)


def test_checksums_verify_offline_and_catch_a_changed_file(artifact: Artifact, tmp_path: Path) -> None:
    verify = ["ansible-galaxy", "collection", "verify", "--offline", FQCN]
    ok = run([*verify, "-p", str(artifact.collections)], artifact.env, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"Installed collection found at '{artifact.installed}'" in ok.stdout
    assert "are internally consistent with its manifest" in ok.stdout
    # The same check on a copy with one changed file must fail and name it.
    copy = tmp_path / "copy"
    shutil.copytree(artifact.collections, copy)
    with (copy / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"] / "roles/backup/tasks/main.yml").open(
        "a"
    ) as handle:
        handle.write("# changed after install\n")
    bad = run([*verify, "-p", str(copy)], artifact.env, tmp_path)
    assert bad.returncode != 0 and "roles/backup/tasks/main.yml" in bad.stdout + bad.stderr, bad.stdout + bad.stderr


def test_a_playbook_runs_by_fqcn_from_the_installed_collection(artifact: Artifact, tmp_path: Path) -> None:
    # health_check is read-only, and runs the collection's role and its stack_health module on the host. Other
    # tests share drill1, so its verdict may be anything: only the run itself must succeed.
    proc = run(
        [
            "ansible-playbook",
            "-vvv",
            "-i",
            str(LAB_INVENTORY),
            f"{FQCN}.health_check",
            "--limit",
            "drill1",
            "-e",
            "health_check_hosts=drill1",
            "-e",
            "health_check_fail_on=never",
            "-e",
            "health_check_report_dir=",
        ],
        artifact.env,
        tmp_path,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    recap = re.search(r"^drill1\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0", out, re.MULTILINE)
    assert recap and int(recap[1]) > 0 and recap[2] == "0", out[-3000:]
    assert f"Using {artifact.env['ANSIBLE_CONFIG']} as config file" in out
    installed = str(artifact.installed)
    modules = re.findall(r"^Using module file (.+)$", out, re.MULTILINE)
    assert f"{installed}/plugins/modules/stack_health.py" in modules, modules
    task_paths = re.findall(r"^task path: (.+):\d+$", out, re.MULTILINE)
    assert task_paths and all(path.startswith(installed) for path in task_paths), task_paths
    # No content came from this checkout or its .build/collections link (only the inventory and ansible do).
    assert not re.findall(rf"{re.escape(str(REPO))}/(?:\.build|plugins|roles|playbooks|meta)\b.*", out)
    for name, secret in lab_credentials("drill1").items():
        assert secret not in out, f"drill1's {name} is in the -vvv output"
