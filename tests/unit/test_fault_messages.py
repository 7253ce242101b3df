"""The messages a fault turns into (issue 9's fault suite): a client program killed inside a compose service, a Redis
that refuses the login or is not there, a full backup filesystem. Each names the cause in plain words."""

from __future__ import annotations

import errno
import io
import typing as t
from pathlib import Path

import pytest
import redis

from ansible_collections.stackops.runbooks.plugins.module_utils import _backup, _pgdump, _redis
from ansible_collections.stackops.runbooks.plugins.module_utils import _pg_backup_operations as operations
from ansible_collections.stackops.runbooks.plugins.module_utils import _redis_maintenance as redis_maintenance
from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ComposeError
from ansible_collections.stackops.runbooks.plugins.module_utils._operation import Recorder
from ansible_collections.stackops.runbooks.plugins.modules import pg_backup


@pytest.mark.parametrize(
    ("rc", "in_service", "err", "expected"),
    [
        # The OOM killer or an operator's kill -9 of pg_dump inside the postgres container: `docker compose exec`
        # exits 137 (128 + 9), as measured on Compose 2.26.1 with Engine 20.10.
        (137, True, "", "pg_dump exited with 137 (killed by signal 9, SIGKILL)"),
        (143, True, "", "pg_dump exited with 143 (killed by signal 15, SIGTERM)"),
        # On the host, subprocess reports a signal as a negative exit code.
        (-9, False, "", "pg_dump exited with -9 (killed by signal 9, SIGKILL)"),
        # On the host 137 is only an exit code (pg_dump never exits so; a wrapper script might).
        (137, False, "", "pg_dump exited with 137"),
        (1, True, 'pg_dump: error: connection failed: FATAL:  database "x" does not exist', "pg_dump exited with 1: "),
        # A signal number no Python knows still says it was a signal.
        (128 + 31, True, "", "pg_dump exited with 159 (killed by signal 31"),
    ],
)
def test_exit_reason_names_the_signal_of_a_killed_program(rc: int, in_service: bool, err: str, expected: str) -> None:
    reason = _pgdump.exit_reason("pg_dump", rc, in_service, err)
    assert reason.startswith(expected)
    assert reason.endswith(err)
    assert not reason.endswith(": "), "an empty stderr leaves no dangling colon"


@pytest.mark.parametrize(
    "exc",
    [
        redis.AuthenticationError("WRONGPASS invalid username-password pair or user is disabled."),
        # What redis-py 4.3.4 (Debian 12's python3-redis, the lab hosts' library) raises for Redis 7's WRONGPASS.
        redis.ResponseError("WRONGPASS invalid username-password pair or user is disabled."),
    ],
)
def test_redis_refusing_the_login_is_not_called_unreachable(exc: Exception) -> None:
    msg = _redis.unavailable("127.0.2.2:6379", exc)
    assert msg == (
        "Redis at 127.0.2.2:6379 refused the login: WRONGPASS invalid username-password pair or user is disabled. "
        "Check login_user and login_password."
    )


def test_a_stopped_redis_is_unreachable_with_one_full_stop() -> None:
    exc = redis.ConnectionError("Error 111 connecting to 127.0.2.2:6379. Connection refused.")
    msg = _redis.unavailable("127.0.2.2:6379", exc)
    assert msg.startswith("Cannot reach Redis at 127.0.2.2:6379: Error 111 connecting to 127.0.2.2:6379. Connection ")
    assert "refused. Check login_host" in msg and ".." not in msg


def test_no_space_hint_is_its_own_clause(tmp_path: Path) -> None:
    hint = _backup.no_space_hint("[Errno 28] No space left on device", str(tmp_path))
    assert hint.startswith(f"; {tmp_path} is full (") and hint.endswith("point dest at a larger filesystem.")
    # docker cp's words, and a destination that was never made (the free space of the nearest parent).
    hint = _backup.no_space_hint("write /x/dump.rdb: no space left on device", str(tmp_path / "a" / "b"))
    assert hint.startswith(f"; {tmp_path / 'a' / 'b'} is full (") and "KiB free" in hint


@pytest.mark.parametrize(
    "text",
    ["[Errno 13] Permission denied", "pg_dump exited with 1: 2026-11-28 server closed the connection", "sha256 28ab"],
)
def test_no_space_hint_only_for_a_full_disk(tmp_path: Path, text: str) -> None:
    assert _backup.no_space_hint(text, str(tmp_path)) == ""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "[Errno 28] No space left on device; "),
        (OSError(errno.EROFS, "Read-only file system"), "[Errno 30] Read-only file system"),
        (ComposeError("`cp redis:/data/dump.rdb /d/x` failed with exit code 1: write /d/x: no space left on device"),
         "no space left on device; "),
    ],
)  # fmt: skip
def test_a_snapshot_the_destination_refuses_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    def refused(*_args: object) -> dict:
        raise error

    monkeypatch.setattr(redis_maintenance, "place_snapshot", refused)
    with pytest.raises(redis_maintenance.MaintenanceError) as caught:
        redis_maintenance.copy_snapshot(t.cast(t.Any, None), "/data/dump.rdb", str(tmp_path))
    assert str(caught.value).startswith(f"Copying the snapshot into {tmp_path} failed: ")
    assert expected in str(caught.value)


def test_a_failed_snapshot_check_keeps_its_own_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mismatch = redis_maintenance.MaintenanceError("The copy of /data/dump.rdb has sha256 a, the server's file b")

    def refused(*_args: object) -> dict:
        raise mismatch

    monkeypatch.setattr(redis_maintenance, "place_snapshot", refused)
    with pytest.raises(redis_maintenance.MaintenanceError) as caught:
        redis_maintenance.copy_snapshot(t.cast(t.Any, None), "/data/dump.rdb", str(tmp_path))
    assert caught.value is mismatch


class Module:
    """What pg_backup's backup operation asks of its AnsibleModule outside the dump itself."""

    check_mode = False

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def test_a_backup_failing_on_docker_leaves_no_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Docker daemon that stops answering raises ComposeError, not BackupError: the unfinished backup must still
    go, and the message say that nothing was kept (a fleet run with dockerd stopped left a `.partial`)."""
    daemon = "The Docker daemon does not answer (Cannot connect to the Docker daemon); start it and run again."

    def take(*_args: object) -> dict:
        raise ComposeError(daemon)

    monkeypatch.setattr(operations, "take", take)
    # The database answered its first connection (checked before dest is touched); the dump is what fails.
    monkeypatch.setattr(operations, "must_connect", lambda *_args, **_kwargs: io.StringIO())
    params = {name: option.get("default") for name, option in pg_backup.argument_spec().items()}
    params.update(db="app", dest=str(tmp_path))
    with pytest.raises(_backup.BackupError) as caught:
        operations.backup(t.cast(t.Any, Module()), operations.check_inputs(params), Recorder(check=False))
    assert str(caught.value) == f"The backup of app failed and nothing was kept: {daemon}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".app.lock"]
