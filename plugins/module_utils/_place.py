"""Where a program runs and where its files are: the managed host, or one compose service's container.

The one layer behind pg_backup's and pg_restore's client programs, nginx_config's nginx and redis_maintenance's
files: a program's argv and output, a private temporary directory, a file's mode, copies in and out. Each call is the
same whichever side it is; only this file knows the difference (`docker compose exec -T` and `docker compose cp`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import typing as t
from collections.abc import Iterable, Iterator, Mapping

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError

if t.TYPE_CHECKING:
    from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ComposeProject


class Place:
    """The managed host (project None) or the container of `service` in a compose project; failures raise `error`."""

    def __init__(
        self,
        module: t.Any,
        error: type[StackopsError],
        project: ComposeProject | None = None,
        service: str | None = None,
    ) -> None:
        if project is not None and not service:
            raise error("A place in a compose project needs the service's name.")
        self.module = module
        self.error = error
        self.project = project
        self.service = service or ""

    @property
    def in_service(self) -> bool:
        return self.project is not None

    @property
    def where(self) -> str:
        return f"service {self.service}" if self.project is not None else "this host"

    def argv(self, program: str, *args: str, env_names: Iterable[str] = (), missing: str | None = None) -> list[str]:
        """The command that runs a program here. In a service, the variables named in env_names are passed through
        `exec -e NAME` by name only: their values come from the environment, never from the command line."""
        if self.project is None:
            binary = program if os.path.isabs(program) else self.module.get_bin_path(program)
            if not binary:
                raise self.error(missing or f"{program} is not installed on this host.")
            return [binary, *args]
        names = [arg for name in sorted(env_names) for arg in ("-e", name)]
        return [*self.project.base_args(), "exec", "-T", *names, self.service, program, *args]

    def environ(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """What a program's environment adds here: the compose CLI's settings in a service, and env."""
        return {**(self.project.environ() if self.project is not None else {}), **(env or {})}

    def call(
        self, program: str, *args: str, env: Mapping[str, str] | None = None, missing: str | None = None
    ) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of a short program, whatever its exit code."""
        argv = self.argv(program, *args, env_names=env or {}, missing=missing)
        rc, out, err = self.module.run_command(argv, environ_update=self.environ(env))
        return rc, out, err

    def output(self, program: str, *args: str, env: Mapping[str, str] | None = None, missing: str | None = None) -> str:
        """The output of a short program; a failure is an error naming the program and where it ran."""
        rc, out, err = self.call(program, *args, env=env, missing=missing)
        if rc != 0:
            raise self.error(f"`{program} {' '.join(args)}` in {self.where} failed: {(err or out).strip()}")
        return out

    def mode(self, path: str) -> int | None:
        """A file's permission bits; None on the host when it cannot be seen from here."""
        if self.project is not None:
            return int(self.output("stat", "-c", "%a", path).strip(), 8)
        try:
            return os.stat(path).st_mode & 0o7777
        except OSError:
            return None

    def chmod(self, path: str, mode: int) -> None:
        if self.project is not None:
            self.output("chmod", f"{mode:o}", path)
        else:
            os.chmod(path, mode)

    def sha256(self, path: str) -> str:
        """The sha256 of a file here, computed where it is (in a service, before it is copied anywhere)."""
        return self.output("sha256sum", path).split()[0]

    @contextlib.contextmanager
    def temp_dir(self) -> Iterator[str]:
        """A private directory here (mktemp: mode 0700), removed afterwards whatever happens."""
        if self.project is None:
            path = tempfile.mkdtemp(prefix="stackops.")
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)
            return
        inside = self.output("mktemp", "-d", "-t", "stackops.XXXXXXXX").strip()
        try:
            yield inside
        finally:
            self.call("rm", "-rf", inside)

    def copy_in(self, source: str, target: str) -> None:
        """A file or directory of the managed host to `target` here (a trailing / copies into a directory)."""
        self._copy(source, target, inward=True)

    def copy_out(self, source: str, target: str) -> None:
        """A file or directory here to `target` on the managed host."""
        self._copy(source, target, inward=False)

    def _copy(self, source: str, target: str, inward: bool) -> None:
        if self.project is None:
            raise self.error(f"Copying {'into' if inward else 'out of'} a service needs compose_project_src.")
        side = f"{self.service}:"
        self.project.call("cp", source if inward else side + source, side + target if inward else target)
