"""module_utils/_place: the one host-or-service layer of pg_backup/pg_restore's client programs, nginx_config's nginx
and redis_maintenance's files. The host side runs for real on this machine's files and programs; the service side is
checked for the exact `docker compose` argv it hands to run_command (the integration tests run it in the lab)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._place import Place


class RefusedError(StackopsError):
    pass


class Host:
    """The parts of AnsibleModule a Place uses, running programs for real and keeping each argv and environment."""

    def __init__(self, answers: list[tuple[int, str, str]] | None = None) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def get_bin_path(self, program: str) -> str | None:
        for folder in os.environ["PATH"].split(os.pathsep):
            if os.access(os.path.join(folder, program), os.X_OK):
                return os.path.join(folder, program)
        return None

    def run_command(self, argv: list[str], environ_update: dict[str, str] | None = None) -> tuple[int, str, str]:
        self.calls.append((argv, dict(environ_update or {})))
        if self.answers is not None:
            return self.answers.pop(0)
        env = {**os.environ, **(environ_update or {})}
        done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
        return done.returncode, done.stdout, done.stderr


class Project:
    """What a Place asks of a ComposeProject, with its `docker compose cp` calls kept."""

    def __init__(self) -> None:
        self.copies: list[tuple[str, ...]] = []

    def base_args(self) -> list[str]:
        return ["/usr/bin/docker", "compose", "--ansi", "never", "--project-directory", "/srv/app"]

    def environ(self) -> dict[str, str]:
        return {"COMPOSE_ANSI": "never"}

    def call(self, *args: str) -> tuple[int, str, str]:
        self.copies.append(args)
        return 0, "", ""


def in_service(answers: list[tuple[int, str, str]]) -> tuple[Place, Host, Project]:
    module, project = Host(answers), Project()
    return Place(module, RefusedError, project, "db"), module, project  # type: ignore[arg-type]


def test_on_the_host_a_program_runs_from_path_with_its_environment() -> None:
    module = Host()
    place = Place(module, RefusedError)
    assert (place.in_service, place.where) == (False, "this host")
    assert place.output("sh", "-c", 'printf %s "$STACKOPS_PLACE"', env={"STACKOPS_PLACE": "here"}) == "here"
    assert module.calls[0][0][0] == module.get_bin_path("sh")
    assert place.argv("/bin/true") == ["/bin/true"]


def test_on_the_host_a_missing_program_and_a_failure_name_what_and_where() -> None:
    place = Place(Host(), RefusedError)
    with pytest.raises(RefusedError, match=r"^stackops-no-such-program is not installed on this host\.$"):
        place.output("stackops-no-such-program")
    with pytest.raises(RefusedError, match=r"^install it$"):
        place.call("stackops-no-such-program", missing="install it")
    with pytest.raises(RefusedError, match=r"^`sh -c echo broken >&2; exit 3` in this host failed: broken$"):
        place.output("sh", "-c", "echo broken >&2; exit 3")


def test_on_the_host_modes_and_a_private_temporary_directory(tmp_path: Path) -> None:
    place = Place(Host(), RefusedError)
    target = tmp_path / "redis.conf"
    target.write_text("requirepass x\n")
    place.chmod(str(target), 0o640)
    assert place.mode(str(target)) == 0o640 == stat.S_IMODE(target.stat().st_mode)
    assert place.mode(str(tmp_path / "absent")) is None
    with place.temp_dir() as scratch:
        assert stat.S_IMODE(os.stat(scratch).st_mode) == 0o700
        Path(scratch, "left").write_text("behind")
    assert not os.path.exists(scratch)
    with pytest.raises(RefusedError, match="Copying out of a service needs compose_project_src"):
        place.copy_out("/a", str(tmp_path / "b"))


def test_in_a_service_programs_run_through_compose_exec_with_variables_by_name_only() -> None:
    place, module, _project = in_service([(0, "pg_dump (PostgreSQL) 17.2\n", "")])
    assert (place.in_service, place.where) == (True, "service db")
    assert place.output("pg_dump", "--version", env={"PGPASSWORD": "s3cret", "PGAPPNAME": "x"}).startswith("pg_dump")
    argv, environ = module.calls[0]
    assert argv == [
        *Project().base_args(),
        "exec",
        "-T",
        "-e",
        "PGAPPNAME",
        "-e",
        "PGPASSWORD",
        "db",
        "pg_dump",
        "--version",
    ]
    assert "s3cret" not in " ".join(argv)
    assert environ == {"COMPOSE_ANSI": "never", "PGPASSWORD": "s3cret", "PGAPPNAME": "x"}


def test_in_a_service_stat_chmod_checksums_and_temporary_directories() -> None:
    place, module, project = in_service(
        [(0, "600\n", ""), (0, "", ""), (0, "ab12  /data/dump.rdb\n", ""), (0, "/tmp/stackops.Xy\n", ""), (0, "", "")]
    )
    assert place.mode("/data/redis.conf") == 0o600
    place.chmod("/data/redis.conf", 0o640)
    assert place.sha256("/data/dump.rdb") == "ab12"
    with place.temp_dir() as inside:
        place.copy_in("/var/backups/app.dump", f"{inside}/")
        place.copy_out(f"{inside}/app.dir", "/work/app.dir")
    ran = [argv[len(Project().base_args()) + 3 :] for argv, _env in module.calls]
    assert ran == [
        ["stat", "-c", "%a", "/data/redis.conf"],
        ["chmod", "640", "/data/redis.conf"],
        ["sha256sum", "/data/dump.rdb"],
        ["mktemp", "-d", "-t", "stackops.XXXXXXXX"],
        ["rm", "-rf", "/tmp/stackops.Xy"],
    ]
    assert project.copies == [
        ("cp", "/var/backups/app.dump", "db:/tmp/stackops.Xy/"),
        ("cp", "db:/tmp/stackops.Xy/app.dir", "/work/app.dir"),
    ]


def test_the_temporary_directory_in_a_service_is_removed_when_the_work_fails() -> None:
    place, module, _project = in_service([(0, "/tmp/stackops.Ab\n", ""), (0, "", "")])
    with pytest.raises(RefusedError, match="the work failed"), place.temp_dir():
        raise RefusedError("the work failed")
    assert module.calls[-1][0][-3:] == ["rm", "-rf", "/tmp/stackops.Ab"]


def test_a_service_place_needs_the_service_name() -> None:
    with pytest.raises(RefusedError, match="needs the service's name"):
        Place(Host(), RefusedError, Project(), "")  # type: ignore[arg-type]
