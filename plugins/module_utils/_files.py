# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Files a reader sees whole, the old content or the new, never a part: staged beside their destination (the same
filesystem), synced, given their mode and owner, renamed over it, then the directory synced so that the rename
survives a crash. A failed write removes what it staged and leaves the destination as it was. Errors are OSError;
each module words them."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
import typing as t

STAGED_SUFFIX = ".stackops"


def fsync_path(path: str) -> None:
    """The file or directory at path reaches the disk (a directory's entries: a file renamed into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str) -> None:
    """Every file and directory under root, then root, reach the disk."""
    for parent, dirs, names in os.walk(root, topdown=False):
        for name in names + dirs:
            fsync_path(os.path.join(parent, name))
    fsync_path(root)


def fsync_file(handle: t.IO[t.Any]) -> None:
    """What was written to an open file reaches the disk (Python's buffer, then the kernel's)."""
    handle.flush()
    os.fsync(handle.fileno())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _keep_owner(path: str, info: os.stat_result) -> None:
    # Not root: the file stays this user's, as ansible-core's atomic_move and preserved_copy leave it.
    with contextlib.suppress(PermissionError):
        os.chown(path, info.st_uid, info.st_gid)


def _settle(path: str, dest: str, mode: int | None, uid: int | None, gid: int | None, preserve: bool) -> None:
    """The staged file's mode, then its owner (a chown after the chmod: the kernel clears set-id bits on chown)."""
    if preserve:
        try:
            info: os.stat_result | None = os.stat(dest)
        except FileNotFoundError:
            info = None
        if mode is None:
            mode = info.st_mode & 0o7777 if info else 0o666 & ~_umask()
        if info is not None and uid is None and gid is None:
            _keep_owner(path, info)
    if mode is not None:
        os.chmod(path, mode)
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


@contextlib.contextmanager
def staged(
    dest: str, *, mode: int | None = None, uid: int | None = None, gid: int | None = None, preserve: bool = False
) -> t.Iterator[t.IO[bytes]]:
    """A file to write that replaces dest when the block ends without an error; any error removes it and leaves
    dest untouched. Mode and owner not given stay the staged file's (0600, this process's user) or, with preserve,
    become those of the file replaced (a new file: 0666 less the umask, as open() makes it)."""
    folder = os.path.dirname(dest) or "."
    fd, path = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=STAGED_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            fsync_file(handle)
        _settle(path, dest, mode, uid, gid, preserve)
        os.rename(path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    fsync_path(folder)


def backup_name(dest: str) -> str:
    """ansible-core's backup_local name, dest.PID.YYYY-MM-DD@HH:MM:SS~, so that older backups sort with new ones."""
    return f"{dest}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S~', time.localtime())}"


def back_up(dest: str) -> str:
    """A copy of dest beside it with its mode, times and owner; the copy's path."""
    target = backup_name(dest)
    try:
        shutil.copy2(dest, target)
        _keep_owner(target, os.stat(dest))
    except OSError as exc:
        raise OSError(exc.errno or errno.EIO, f"{exc.strerror or exc} (backing it up to {target})") from None
    return target


def differs(dest: str, data: bytes) -> bool:
    """True when dest exists with other content than data."""
    try:
        with open(dest, "rb") as handle:
            return handle.read() != data
    except FileNotFoundError:
        return False


def write_atomic(
    dest: str,
    data: bytes,
    *,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    preserve: bool = False,
    backup: bool = False,
) -> str | None:
    """dest replaced by data (see staged for mode and owner). With backup, a dest whose content differs is copied
    first (a new file, or the same content with other attributes, gets none); the backup's path, else None."""
    made = back_up(dest) if backup and differs(dest, data) else None
    with staged(dest, mode=mode, uid=uid, gid=gid, preserve=preserve) as handle:
        handle.write(data)
    return made
