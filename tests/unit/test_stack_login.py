"""The stack_login lookup (issue 18 item 5): the one place that turns a host's stackops_pg_* and stackops_redis_*
variables into the login options of a service's modules, with the roles' old <role>_login_* variables still
winning, deprecated, and no login at all refused rather than left to the modules' default, localhost."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleError

from ansible_collections.stackops.runbooks.plugins.lookup.stack_login import stack_login

LAB1 = {
    "stackops_pg_host": "127.0.2.1",
    "stackops_pg_port": 5432,
    "stackops_pg_user": "postgres",
    "stackops_pg_password": "pw",
    "stackops_redis_host": "127.0.2.1",
    "stackops_redis_password": "rpw",
}


def login(found: dict[str, t.Any], service: str, role: str | None = None) -> tuple[dict[str, t.Any], list[str]]:
    warnings: list[str] = []
    return stack_login(service, found.get, role, warnings.append), warnings


def test_each_service_takes_its_own_stackops_variables_and_leaves_out_those_not_set() -> None:
    assert login(LAB1, "postgres") == (
        {"login_host": "127.0.2.1", "login_port": 5432, "login_user": "postgres", "login_password": "pw"},
        [],
    )
    assert login(LAB1, "redis") == ({"login_host": "127.0.2.1", "login_password": "rpw"}, [])


def test_a_roles_deprecated_login_variable_wins_with_a_warning_naming_the_variable_to_set() -> None:
    found, warnings = login({**LAB1, "backup_login_host": "10.0.0.9", "backup_login_user": ""}, "postgres", "backup")
    assert found["login_host"] == "10.0.0.9" and found["login_user"] == "postgres"
    assert warnings == [
        "backup_login_host is deprecated: set stackops_pg_host instead (the same for every role of the collection)."
    ]
    assert login({**LAB1, "backup_login_host": "10.0.0.9"}, "postgres", "restore")[0]["login_host"] == "127.0.2.1"


@pytest.mark.parametrize(
    ("service", "role", "message"),
    [
        ("postgres", None, "No postgres host to log into: set stackops_pg_host for this host"),
        ("redis", "redis_maintenance", "set stackops_redis_host \\(or the deprecated redis_maintenance_login_host\\)"),
        ("mysql", None, "unknown service 'mysql'"),
    ],
)
def test_no_host_is_refused_instead_of_the_modules_localhost(service: str, role: str | None, message: str) -> None:
    with pytest.raises(AnsibleError, match=message):
        login({"stackops_pg_port": 5432, "stackops_redis_host": ""}, service, role)
