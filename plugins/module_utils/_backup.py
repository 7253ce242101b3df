# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Backup sets on disk, shared by pg_backup and pg_restore: names, the manifest and its checksums, the lock of a
target, retention. A set is a directory `<db>-<UTC time>` holding the dump, the globals and manifest.json; it is
built as `<name>.partial` and renamed only once verified, so a directory without the suffix is a complete backup.
Everything here but the lock and the file helpers is pure, tested without a database."""

from __future__ import annotations

import calendar
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import time
import typing as t
from dataclasses import dataclass

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._files import write_atomic

MANIFEST = "manifest.json"
PARTIAL = ".partial"
MANIFEST_VERSION = 1
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
SET_NAME = re.compile(r"^(?P<label>.+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<seq>\d+))?$")
CHUNK = 1 << 20
# What pg_backup and pg_restore read from every manifest.
REQUIRED = frozenset(
    (
        "database",
        "owner",
        "encoding",
        "collate",
        "ctype",
        "server_version_num",
        "name",
        "dump",
        "files",
        "size",
        "finished_epoch",
        "tables",
        "objects",
        "sequences",
    )
)


class BackupError(StackopsError):
    """A backup or restore step failed; nothing that was complete before has changed."""


def label(db: str) -> str:
    """The database name as it may appear in file names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", db) or "_"


def utc_stamp(epoch: float) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(epoch))


def parse_stamp(stamp: str) -> float:
    return float(calendar.timegm(time.strptime(stamp, TIME_FORMAT)))


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def new_set_name(dest: str, db: str, epoch: float, suffix: str = "") -> str:
    """`<db>-<time><suffix>`, with `-2`, `-3`... before the suffix when a run in the same second already used the
    name."""
    base = f"{label(db)}-{utc_stamp(epoch)}"
    name, seq = base + suffix, 1
    while os.path.lexists(os.path.join(dest, name)) or os.path.lexists(os.path.join(dest, name + PARTIAL)):
        seq += 1
        name = f"{base}-{seq}{suffix}"
    return name


# --- files ------------------------------------------------------------------------------------------------------


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def files_under(root: str) -> list[str]:
    """Relative paths of the regular files under root, sorted (the order of a manifest)."""
    found = []
    for parent, _dirs, names in os.walk(root):
        found += [os.path.relpath(os.path.join(parent, name), root) for name in names]
    return sorted(found)


def secure_tree(root: str) -> None:
    """Directories 0700, files 0600: a dump holds every row and the globals hold password hashes."""
    for parent, dirs, names in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(parent, name), 0o700)
        for name in names:
            os.chmod(os.path.join(parent, name), 0o600)
    os.chmod(root, 0o700)


def remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def file_entries(root: str, known: t.Mapping[str, str | None] | None = None) -> list[dict[str, t.Any]]:
    """Path, size and sha256 of every file under root but the manifest; `known` holds checksums already taken."""
    known = known or {}
    return [
        {
            "path": rel,
            "size": os.path.getsize(os.path.join(root, rel)),
            "sha256": known.get(rel) or sha256_file(os.path.join(root, rel)),
        }
        for rel in files_under(root)
        if rel != MANIFEST
    ]


def combined_sha256(entries: list[dict[str, t.Any]]) -> str:
    """One checksum for a set of files: sha256 over `sha256sum`-style lines, sorted by path."""
    lines = "".join(f"{e['sha256']}  {e['path']}\n" for e in sorted(entries, key=lambda e: e["path"]))
    return hashlib.sha256(lines.encode()).hexdigest()


def no_space_hint(exc_text: str, dest: str) -> str:
    """What to do when an error says the disk is full (Python's `[Errno 28]`, or a tool's "no space left on
    device"), as a clause to append to the error; empty for any other error."""
    if "no space left" not in exc_text.lower() and f"[Errno {errno.ENOSPC}]" not in exc_text:
        return ""
    where = dest
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    try:
        free = f" ({shutil.disk_usage(where).free // 1024} KiB free)"
    except OSError:
        free = ""
    return f"; {dest} is full{free}: free space or point dest at a larger filesystem."


# --- the manifest -----------------------------------------------------------------------------------------------


def manifest_checksum(manifest: dict[str, t.Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(manifest: dict[str, t.Any]) -> dict[str, t.Any]:
    return {**manifest, "manifest_sha256": manifest_checksum(manifest)}


def write_manifest(root: str, manifest: dict[str, t.Any]) -> None:
    data = f"{json.dumps(manifest, indent=2, sort_keys=True)}\n".encode()
    write_atomic(os.path.join(root, MANIFEST), data, mode=0o600)


def read_manifest(root: str) -> dict[str, t.Any]:
    """The manifest of a set, its own checksum checked; BackupError names what is wrong."""
    root = os.path.normpath(root)
    path = os.path.join(root, MANIFEST)
    if root.endswith(PARTIAL):
        raise BackupError(f"{root} is an unfinished backup (a run that failed or was killed); it is not a backup.")
    if not os.path.isfile(path):
        raise BackupError(
            f"{root} has no {MANIFEST}: it is not a verified backup of stackops.runbooks.pg_backup, so it is refused. "
            "Take a new backup with pg_backup."
        )
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read as JSON ({exc}); the backup is damaged.") from None
    if not isinstance(manifest, dict) or manifest.get("manifest_sha256") != manifest_checksum(manifest):
        raise BackupError(f"{path} does not match its own checksum: the manifest was changed or damaged.")
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise BackupError(f"{path} has manifest version {manifest.get('manifest_version')}, not {MANIFEST_VERSION}.")
    missing = sorted(REQUIRED - set(manifest))
    if missing:
        raise BackupError(f"{path} lacks {', '.join(missing)}; it was not written by pg_backup.")
    return manifest


def verify_files(root: str, manifest: dict[str, t.Any]) -> list[str]:
    """Every file the manifest lists, present with its size and sha256; extra files are problems too."""
    problems = []
    listed = {e["path"] for e in manifest["files"]}
    for entry in manifest["files"]:
        path = os.path.join(root, entry["path"])
        if not os.path.isfile(path):
            problems.append(f"{entry['path']} is missing")
            continue
        size = os.path.getsize(path)
        if size != entry["size"]:
            problems.append(f"{entry['path']} is {size} bytes, the manifest says {entry['size']}")
            continue
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            problems.append(f"{entry['path']} has sha256 {digest}, the manifest says {entry['sha256']}")
    problems += [f"{rel} is not in the manifest" for rel in files_under(root) if rel != MANIFEST and rel not in listed]
    return problems


# --- the sets in a directory and their retention -----------------------------------------------------------------


@dataclass(frozen=True)
class BackupSet:
    name: str
    path: str
    database: str | None
    finished: float | None
    size: int
    error: str | None
    origin: str | None = None  # the sha256 of the plain dump it was adopted from

    @property
    def verified(self) -> bool:
        return self.error is None

    def as_dict(self, now: float) -> dict[str, t.Any]:
        found: dict[str, t.Any] = {"name": self.name, "path": self.path, "database": self.database}
        if self.finished is not None:
            found.update(finished_at=iso(self.finished), age_hours=round((now - self.finished) / 3600, 2))
        found.update(size=self.size, verified=self.verified)
        if self.error:
            found["error"] = self.error
        return found


def scan(dest: str) -> tuple[list[BackupSet], list[str]]:
    """The sets in dest, newest first (by their manifest's end time), and the unfinished `*.partial` ones.
    Reading a set checks its manifest, not its data: a full check of the data is verify_files."""
    sets, partials = [], []
    if not os.path.isdir(dest):
        return [], []
    for name in sorted(os.listdir(dest)):
        path = os.path.join(dest, name)
        if name.endswith(PARTIAL) and SET_NAME.match(name[: -len(PARTIAL)]):
            partials.append(path)
            continue
        if not SET_NAME.match(name) or not os.path.isdir(path):
            continue
        try:
            manifest = read_manifest(path)
        except BackupError as exc:
            sets.append(BackupSet(name, path, None, None, 0, str(exc)))
            continue
        origin = (manifest.get("adopted_from") or {}).get("sha256")
        sets.append(
            BackupSet(name, path, manifest["database"], manifest["finished_epoch"], manifest["size"], None, origin)
        )
    sets.sort(key=lambda s: (s.finished or 0.0, s.name), reverse=True)
    return sets, partials


def expired(sets: list[BackupSet], database: str, count: int | None, days: float | None, now: float) -> list[BackupSet]:
    """The verified sets of database that retention removes. A set is kept while any rule keeps it: among the
    newest `count`, or younger than `days`. Without a rule nothing expires; the newest verified set never does;
    sets that failed verification are neither counted nor removed (a person looks at them)."""
    if count is None and days is None:
        return []
    mine = [s for s in sets if s.verified and s.database == database]
    gone = []
    for index, item in enumerate(mine):
        if index == 0:
            continue
        kept_by_count = count is not None and index < count
        kept_by_age = days is not None and item.finished is not None and now - item.finished < days * 86400
        if not (kept_by_count or kept_by_age):
            gone.append(item)
    return gone


def partials_of(partials: list[str], db: str) -> list[str]:
    """The unfinished sets of db among partials."""
    found = []
    for path in partials:
        match = SET_NAME.match(os.path.basename(path)[: -len(PARTIAL)])
        if match and match.group("label") == label(db):
            found.append(path)
    return found


def newest(sets: list[BackupSet], database: str | None) -> BackupSet | None:
    mine = [s for s in sets if s.verified and (database is None or s.database == database)]
    return mine[0] if mine else None


# --- the lock of a target ---------------------------------------------------------------------------------------


class TargetLock:
    """An exclusive flock on `dest/.<db>.lock`, so one run at a time works on a database's backups. The kernel
    drops a flock when its holder dies, so a killed run never blocks the next one; the holder's record in the
    file, which a clean release empties, is how the next run sees that the previous one was killed."""

    def __init__(self, dest: str, db: str, timeout: float) -> None:
        self.path = os.path.join(dest, f".{label(db)}.lock")
        self.timeout = timeout
        self.fd: int | None = None
        self.stale: dict[str, t.Any] | None = None

    def holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as handle:
                record = json.loads(handle.read() or "{}")
        except (OSError, ValueError):
            return "another run"
        if not record:
            return "another run"
        return f"pid {record.get('pid')} on {record.get('host')}, started {record.get('started_at')}"

    def __enter__(self) -> TargetLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._take(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def _take(self, fd: int) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BackupError(
                        f"Another backup of this database is running ({self.holder()}; lock {self.path}). "
                        "Wait for it, or raise lock_timeout to wait longer."
                    ) from None
                time.sleep(0.2)
        previous = os.read(fd, 4096)
        if previous.strip():
            try:
                self.stale = json.loads(previous)
            except ValueError:
                self.stale = {"record": previous.decode(errors="replace")}
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": iso(time.time())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def held(dest: str, db: str, timeout: float, failed: str) -> t.Iterator[TargetLock]:
    """dest made (private) and db's lock in it held for the block. A disk that has no room for either is the run's
    failure, `failed: <why>` with the full-disk hint, before anything was written."""
    with contextlib.ExitStack() as stack:
        try:
            os.makedirs(dest, mode=0o700, exist_ok=True)
            lock = stack.enter_context(TargetLock(dest, db, timeout))
        except OSError as exc:
            raise BackupError(f"{failed}: {exc}{no_space_hint(str(exc), dest)}") from None
        yield lock
