"""A local apt repository on this machine for the OS-upgrade step of the maintenance window: a dummy package
installed at one version, a newer one in a file:// repository, and an apt configuration (APT_CONFIG) that reads
only that repository and keeps its package lists apart from the machine's, so `apt-get update` reaches no mirror."""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "stackops-probe"


@dataclass(frozen=True)
class AptRepo:
    root: Path
    config: Path  # for APT_CONFIG / maintenance_window_os_upgrade_apt_config


def build_deb(out: Path, version: str) -> Path:
    tree = out / f"tree-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/share/doc" / PACKAGE).mkdir(parents=True)
    (tree / "usr/share/doc" / PACKAGE / "VERSION").write_text(f"{version}\n")
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nMaintainer: stackops tests <tests@stackops.test>\n"
        "Priority: optional\nSection: misc\nDescription: stackops test probe (the maintenance window's OS upgrade)\n"
    )
    deb = out / f"{PACKAGE}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True, capture_output=True)
    return deb


def index(deb: Path) -> str:
    """The deb's stanza of a Packages file: its control fields, then where it is and its checksums."""
    control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True).stdout
    data = deb.read_bytes()
    return (
        f"{control.rstrip()}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
        f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"  # noqa: S324
    )


def release(repo: Path) -> str:
    packages = (repo / "Packages").read_bytes()
    return (
        "Origin: stackops-tests\nLabel: stackops-tests\nSuite: stackops-tests\nCodename: stackops-tests\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\n"
        f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    )


@contextlib.contextmanager
def apt_repo(installed: str = "1.0", offered: str = "1.1") -> Iterator[AptRepo]:
    """PACKAGE at `installed` on this machine and at `offered` in the repository; both gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix="stackops-apt-"))
    try:
        repo = root / "repo"
        repo.mkdir()
        subprocess.run(["dpkg", "-i", str(build_deb(root, installed))], check=True, capture_output=True)
        (repo / "Packages").write_text(index(Path(shutil.move(build_deb(root, offered), repo))))
        (repo / "Release").write_text(release(repo))
        for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
            (root / sub).mkdir(parents=True)
        (root / "sources.list").write_text(f"deb [trusted=yes] file://{repo} ./\n")
        config = root / "apt.conf"
        config.write_text(
            f'Dir::Etc::SourceList "{root}/sources.list";\nDir::Etc::SourceParts "{root}/sources.list.d";\n'
            f'Dir::State::Lists "{root}/lists";\nDir::Cache "{root}/cache";\n'
        )
        root.chmod(0o755)
        yield AptRepo(root, config)
    finally:
        subprocess.run(["dpkg", "--purge", PACKAGE], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
