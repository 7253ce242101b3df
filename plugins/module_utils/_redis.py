# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Redis connections for the redis_* modules: options (documented once in the stackops.runbooks.redis doc
fragment), the library check, and connecting in one place."""

from __future__ import annotations

import traceback
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.stackops.runbooks.plugins.module_utils._common import Login, StackopsError

try:
    import redis
except ImportError:
    HAS_REDIS = False
    REDIS_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None

RedisError: type[Exception] = redis.RedisError if HAS_REDIS else Exception
# What Redis answers to SELECT of a database number it does not have.
OUT_OF_RANGE = "DB index is out of range"
# How Redis (6 and 7) and redis-py word a refused login.
LOGIN_REFUSED = ("wrongpass", "noauth", "invalid password", "invalid username")


def connection_argument_spec() -> dict[str, t.Any]:
    return {
        "login_host": {"type": "str", "default": "localhost"},
        "login_port": {"type": "int", "default": 6379},
        "login_user": {"type": "str"},
        "login_password": {"type": "str", "no_log": True},
        "login_unix_socket": {"type": "path"},
        "db": {"type": "int", "default": 0},
        "tls": {"type": "bool", "default": False},
        "validate_certs": {"type": "bool", "default": True},
        "ca_certs": {"type": "path"},
        "connect_timeout": {"type": "int", "default": 5},
    }


def ensure_libs(module: t.Any) -> None:
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=REDIS_IMPORT_ERROR)


@dataclass(frozen=True)
class RedisLogin(Login):
    """How to reach the server and log in: the connection options once checked, built at a module's input check,
    so that a bad port, db or timeout is refused before anything connects."""

    db: int
    tls: bool
    validate_certs: bool
    ca_certs: str | None

    @classmethod
    def of(cls, params: Mapping[str, t.Any]) -> RedisLogin:
        """From the options of connection_argument_spec."""
        login = cls.checked(params)
        if params["db"] < 0:
            raise StackopsError(f"db must be 0 or more, not {params['db']}.")
        return cls(
            **login,
            db=params["db"],
            tls=params["tls"],
            validate_certs=params["validate_certs"],
            ca_certs=params["ca_certs"],
        )


def client(login: RedisLogin, name: str | None = None) -> t.Any:
    """A client (not yet connected); `name` is its CLIENT SETNAME, so that CLIENT LIST shows who it is."""
    common: dict[str, t.Any] = {
        "db": login.db,
        "username": login.user,
        "password": login.password,
        "socket_timeout": login.connect_timeout,
        "socket_connect_timeout": login.connect_timeout,
        "client_name": name,
    }
    if login.unix_socket:
        return redis.Redis(unix_socket_path=login.unix_socket, **common)
    tls: dict[str, t.Any] = {}
    if login.tls:
        tls = {
            "ssl": True,
            "ssl_cert_reqs": "required" if login.validate_certs else "none",
            "ssl_ca_certs": login.ca_certs,
        }
    return redis.Redis(host=login.host, port=login.port, **common, **tls)


def describe(exc: Exception, db: int) -> str:
    """Why a command or the connection failed; the server's answer to a db it does not have, with the fix."""
    text = str(exc).strip() or type(exc).__name__
    if OUT_OF_RANGE in text:
        return f"db {db} is not a database of this server ({text}; see its `databases` setting): fix db"
    return text


def connect(login: RedisLogin, name: str) -> t.Any:
    """A client that has answered PING, for modules that change something: an unreachable server or a refused
    password is an error naming the server (redis_health reports it as a finding instead)."""
    r = client(login, name)
    try:
        r.ping()
    except RedisError as exc:
        if str(exc).startswith("MISCONF"):
            # Since Redis 7 PING is refused, like writes, after a failed RDB save; the server is there, and a
            # successful save (redis_maintenance snapshot) is what lifts it.
            return r
        if OUT_OF_RANGE in str(exc):
            raise StackopsError(f"{describe(exc, login.db)}.") from None
        raise StackopsError(unavailable(login.target, exc)) from None
    return r


def unavailable(where: str, exc: Exception) -> str:
    """Why a server could not be used, and what to check: a refused login is not a server that is down."""
    reason = (str(exc).strip() or type(exc).__name__).rstrip(".")
    # redis-py 4.3 (Debian 12) raises a plain ResponseError for WRONGPASS; later versions an AuthenticationError.
    if (HAS_REDIS and isinstance(exc, redis.AuthenticationError)) or reason.lower().startswith(LOGIN_REFUSED):
        return f"Redis at {where} refused the login: {reason}. Check login_user and login_password."
    return (
        f"Cannot reach Redis at {where}: {reason}. Check login_host, login_port and login_password "
        "(or login_unix_socket), and that the server runs."
    )
