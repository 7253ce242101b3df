# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""What every module of the collection shares: its error type, how main() turns it into a result, and the checks of
input that several services need (ports, control characters)."""

from __future__ import annotations

import dataclasses
import re
import typing as t
from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
Record = t.TypeVar("Record")


class StackopsError(Exception):
    """An expected failure: str() is the whole message for the user; details go into the result (cmd, rc, ...)."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.details = details


def check_port(value: int, option: str) -> int:
    """A TCP port; anything else is refused before it reaches a connection (where 0 or 70000 give odd errors)."""
    if not 1 <= value <= 65535:
        raise StackopsError(f"{option} must be a TCP port from 1 to 65535, not {value}.")
    return value


def check_no_control_characters(value: str, option: str) -> str:
    """Text that goes into a protocol line or a configuration file: a newline there could start another one."""
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise StackopsError(
            f"{option} {value!r} holds a control character ({found.group()!r}); newlines, tabs and the like have no "
            "place in it. Remove it."
        )
    return value


def options_of(record: type[Record], params: Mapping[str, t.Any], **checked: t.Any) -> Record:
    """A module's options as its frozen record, built once at the input check: each field from the option of its
    name, or from `checked`, the values the check turned into what the operations take (parsed, normalised). A
    list option is frozen into a tuple, and one left out (None) is () where the field is a tuple."""
    names = [field.name for field in dataclasses.fields(t.cast(t.Any, record))]
    unknown = sorted(set(checked) - set(names))
    if unknown:
        raise TypeError(f"{record.__name__} has no field {', '.join(unknown)}")
    hints = t.get_type_hints(record)
    return record(**{name: checked[name] if name in checked else frozen(params[name], hints[name]) for name in names})


def frozen(value: t.Any, hint: t.Any) -> t.Any:
    """An option's value as a frozen record's field of type `hint` holds it."""
    if isinstance(value, list):
        return tuple(value)
    if value is None and t.get_origin(hint) is tuple:
        return ()
    return value


@dataclasses.dataclass(frozen=True)
class Login:
    """How to reach a server and log in, as every service's connection options name it (login_host, login_port,
    login_user, login_password, login_unix_socket, connect_timeout); each service's record adds its own."""

    host: str
    port: int
    user: str | None
    password: str | None = dataclasses.field(repr=False)
    unix_socket: str | None
    connect_timeout: int

    @staticmethod
    def checked(params: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """Login's fields from the options, refused before anything connects when the timeout or port is bad."""
        if params["connect_timeout"] < 1:
            raise StackopsError(f"connect_timeout must be at least 1 second, not {params['connect_timeout']}.")
        return {
            "host": params["login_host"],
            "port": check_port(params["login_port"], "login_port"),
            "user": params["login_user"],
            "password": params["login_password"],
            "unix_socket": params["login_unix_socket"],
            "connect_timeout": params["connect_timeout"],
        }

    @property
    def target(self) -> str:
        """The server as the user named it: its socket, or host:port."""
        return self.unix_socket or f"{self.host}:{self.port}"


class StackopsModule(AnsibleModule):
    """A module whose result is exactly what its RETURN documents. AnsibleModule adds the stat of any `path` or
    `dest` in a result (owner, mode, size...), which would overwrite a backup's `size` with a directory's."""

    def add_path_info(self, kwargs: dict[str, t.Any]) -> dict[str, t.Any]:
        return kwargs


def execute(argument_spec: dict[str, t.Any], body: t.Callable[[AnsibleModule], dict[str, t.Any]]) -> None:
    """A module's main(): build it (every module supports check mode), run its body, exit with the result or fail
    with the message. fail_json is called outside the except block on purpose: an expected failure carries no
    traceback, only the message and details."""
    module = StackopsModule(argument_spec=argument_spec, supports_check_mode=True)
    error: StackopsError | None
    try:
        result = body(module)
    except StackopsError as exc:
        result, error = {}, exc
    else:
        error = None
    if error is not None:
        module.fail_json(msg=str(error), **error.details)
    module.exit_json(**result)
