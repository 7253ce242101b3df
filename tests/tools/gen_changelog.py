"""Generate CHANGELOG.rst with antsibull-changelog: the released versions in changelogs/changelog.yaml plus, while
galaxy.yml's version is unreleased, that version's notes from changelogs/fragments/. The release runs in a copy,
so the fragments stay until the real `antsibull-changelog release` consumes them and writes the same file.
`--check` fails when CHANGELOG.rst is stale."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from generated import write_or_check

REPO = Path(__file__).resolve().parents[2]
# What antsibull-changelog reads: the metadata, the changelog files, and the plugins it lists via ansible-doc.
SOURCES = ("galaxy.yml", "changelogs", "meta", "plugins")
# The ansible-doc of this interpreter's ansible-core, not whichever comes first on PATH.
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"


def output_file(tree: Path) -> str:
    config = yaml.safe_load((tree / "changelogs" / "config.yaml").read_text())
    return str(config["output"][0]["file"])


def antsibull_changelog(tree: Path, root: Path, *args: str) -> None:
    doc = str(ANSIBLE_DOC) if ANSIBLE_DOC.exists() else "ansible-doc"
    proc = subprocess.run(
        [sys.executable, "-m", "antsibull_changelog", *args, "--ansible-doc-bin", doc],
        cwd=tree,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"antsibull-changelog {' '.join(args)} failed (rc {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )


def render(source: Path = REPO) -> str:
    """The changelog as the next release would write it, from the files of `source` (left untouched)."""
    galaxy = yaml.safe_load((source / "galaxy.yml").read_text())
    released = yaml.safe_load((source / "changelogs" / "changelog.yaml").read_text()).get("releases") or {}
    with tempfile.TemporaryDirectory(prefix="changelog-") as tmp:
        # ansible-doc finds the collection's plugins only at .../ansible_collections/<namespace>/<name>/.
        tree = Path(tmp) / "ansible_collections" / galaxy["namespace"] / galaxy["name"]
        for name in SOURCES:
            if (source / name).is_dir():
                shutil.copytree(source / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
            else:
                tree.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, tree / name)
        if str(galaxy["version"]) in released:
            antsibull_changelog(tree, Path(tmp), "generate")
        else:
            antsibull_changelog(tree, Path(tmp), "release", "--version", str(galaxy["version"]))
        return (tree / output_file(tree)).read_text()


def main(argv: list[str]) -> int:
    return write_or_check(REPO / output_file(REPO), render(), argv, "python tests/tools/gen_changelog.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
