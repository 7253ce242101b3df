"""The one atomic-write layer (_files) on real files: what lands at dest (content, mode, owner), the backup made only
when the content differs, and a failed write that leaves dest as it was and nothing staged beside it."""

from __future__ import annotations

import multiprocessing
import os
import stat
import typing as t
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils._files import (
    STAGED_SUFFIX,
    fsync_path,
    fsync_tree,
    staged,
    write_atomic,
)

FORK = multiprocessing.get_context("fork")
NOBODY = 65534


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(STAGED_SUFFIX))


def test_a_new_file_gets_the_content_and_mode_and_nothing_stays_staged(tmp_path: Path) -> None:
    dest = tmp_path / "site.conf"
    assert write_atomic(str(dest), b"server {}\n", mode=0o640) is None
    assert dest.read_bytes() == b"server {}\n"
    assert mode_of(dest) == 0o640
    assert os.listdir(tmp_path) == ["site.conf"]


def test_without_mode_or_owner_the_file_is_private_to_this_user(tmp_path: Path) -> None:
    dest = tmp_path / "state.json"
    dest.write_bytes(b"old\n")
    os.chmod(dest, 0o644)
    os.chown(dest, NOBODY, NOBODY)
    write_atomic(str(dest), b"new\n")
    info = dest.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, os.geteuid(), os.getegid())


def test_mode_and_owner_given_are_set(tmp_path: Path) -> None:
    dest = tmp_path / "page.html"
    write_atomic(str(dest), b"<p>maintenance</p>\n", mode=0o604, uid=NOBODY, gid=NOBODY)
    info = dest.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o604, NOBODY, NOBODY)


def test_preserve_keeps_the_replaced_files_mode_and_owner(tmp_path: Path) -> None:
    dest = tmp_path / "db.log"
    dest.write_bytes(b"old line\n")
    os.chmod(dest, 0o640)
    os.chown(dest, NOBODY, NOBODY)
    write_atomic(str(dest), b"new line\n", preserve=True)
    info = dest.stat()
    assert dest.read_bytes() == b"new line\n"
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, NOBODY, NOBODY)


def test_preserve_gives_a_new_file_the_mode_open_would(tmp_path: Path) -> None:
    dest = tmp_path / "db.log"
    umask = os.umask(0o027)
    try:
        write_atomic(str(dest), b"line\n", preserve=True)
    finally:
        os.umask(umask)
    assert mode_of(dest) == 0o640


def test_backup_only_when_the_content_differs(tmp_path: Path) -> None:
    dest = tmp_path / "nginx.conf"
    assert write_atomic(str(dest), b"one\n", mode=0o644, backup=True) is None  # new: nothing to back up
    assert write_atomic(str(dest), b"one\n", mode=0o600, backup=True) is None  # same content, other mode
    assert sorted(os.listdir(tmp_path)) == ["nginx.conf"]
    os.chown(dest, NOBODY, NOBODY)
    backup = write_atomic(str(dest), b"two\n", mode=0o644, uid=0, gid=0, backup=True)
    assert backup is not None and os.path.dirname(backup) == str(tmp_path)
    assert os.path.basename(backup).startswith(f"nginx.conf.{os.getpid()}.") and backup.endswith("~")
    copy = Path(backup)
    assert copy.read_bytes() == b"one\n" and dest.read_bytes() == b"two\n"
    info = copy.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, NOBODY, NOBODY)
    assert sorted(os.listdir(tmp_path)) == sorted(["nginx.conf", copy.name])


def test_dest_keeps_its_old_content_until_the_staged_file_is_complete(tmp_path: Path) -> None:
    dest = tmp_path / "upstream.conf"
    dest.write_bytes(b"old\n")
    with staged(str(dest), mode=0o644) as handle:
        handle.write(b"new, first half\n")
        assert dest.read_bytes() == b"old\n"
        handle.write(b"second half\n")
        assert dest.read_bytes() == b"old\n"
        assert len(leftovers(tmp_path)) == 1
    assert dest.read_bytes() == b"new, first half\nsecond half\n"
    assert leftovers(tmp_path) == []


def chunks() -> t.Iterator[bytes]:
    yield b"the first block\n"
    raise RuntimeError("the data source failed")


def test_a_data_source_that_fails_leaves_dest_untouched_and_nothing_staged(tmp_path: Path) -> None:
    dest = tmp_path / "dump.rdb"
    dest.write_bytes(b"old\n")
    os.chmod(dest, 0o640)
    with pytest.raises(RuntimeError, match="the data source failed"), staged(str(dest), mode=0o600) as handle:
        for block in chunks():
            handle.write(block)
    assert dest.read_bytes() == b"old\n" and mode_of(dest) == 0o640
    assert os.listdir(tmp_path) == ["dump.rdb"]


def test_a_rename_that_fails_removes_the_staged_file(tmp_path: Path) -> None:
    dest = tmp_path / "conf.d"
    (dest / "inner").mkdir(parents=True)  # a directory in the way: rename(2) refuses to put a file over it
    with pytest.raises(OSError):
        write_atomic(str(dest), b"data\n", mode=0o644, backup=False)
    assert os.listdir(tmp_path) == ["conf.d"] and os.listdir(dest) == ["inner"]


def write_as_nobody(dest: str, queue: multiprocessing.Queue) -> None:
    # From inside the folder: the test's parents are root's own (0700), which would refuse nobody before the folder.
    os.chdir(os.path.dirname(dest))
    dest = os.path.basename(dest)
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    try:
        write_atomic(dest, b"new\n", mode=0o644)
    except OSError as exc:
        queue.put(exc.errno)
    else:
        queue.put(None)


def test_a_folder_this_user_cannot_write_leaves_dest_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    os.chmod(folder, 0o755)  # noqa: S103  (root's folder that others read but cannot write)
    dest = folder / "site.conf"
    dest.write_bytes(b"old\n")
    os.chmod(dest, 0o666)  # noqa: S103  (a writer in place would get through; a staged one cannot)
    queue: multiprocessing.Queue = FORK.Queue()
    child = FORK.Process(target=write_as_nobody, args=(str(dest), queue))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == 13  # EACCES: the staging file could not be made
    assert dest.read_bytes() == b"old\n" and os.listdir(folder) == ["site.conf"]


def test_fsync_a_tree_and_a_path(tmp_path: Path) -> None:
    (tmp_path / "set" / "dump").mkdir(parents=True)
    (tmp_path / "set" / "dump" / "toc.dat").write_bytes(b"toc")
    fsync_tree(str(tmp_path / "set"))
    fsync_path(str(tmp_path / "set" / "dump" / "toc.dat"))
    with pytest.raises(FileNotFoundError):
        fsync_path(str(tmp_path / "missing"))
