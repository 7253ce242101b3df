"""The input checks the bad-input suite found missing, each on the values that must pass and those that must be
refused with the value named: ports, control characters, database names (libpq connection strings, names the
modules create), LIKE patterns, Redis globs of wildcards only and protected settings, words written into nginx's
configuration, HTTP request parts, nginx_test, compose env names, and docs/bad_input.md being current."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _http, _nginx, _postgres, _redis
from ansible_collections.stackops.runbooks.plugins.module_utils import _nginx_operations as nginx_operations
from ansible_collections.stackops.runbooks.plugins.module_utils import _pg_operations as pg_maintenance
from ansible_collections.stackops.runbooks.plugins.module_utils import _redis_maintenance as redis_maintenance
from ansible_collections.stackops.runbooks.plugins.module_utils._common import (
    StackopsError,
    check_no_control_characters,
    check_port,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._restore_plan import like_literal
from ansible_collections.stackops.runbooks.plugins.modules import (
    compose_exec,
    compose_logs,
    docker_prune,
    nginx_config,
    stack_health,
)
from ansible_collections.stackops.runbooks.plugins.modules import (
    pg_maintenance as pg_maintenance_module,
)

SQLI = 'x"; DROP TABLE users;--'


@pytest.mark.parametrize("port", [1, 5432, 65535])
def test_ports_in_range_pass(port: int) -> None:
    assert check_port(port, "login_port") == port


@pytest.mark.parametrize("port", [0, -1, 65536, 99999])
def test_ports_out_of_range_are_named(port: int) -> None:
    with pytest.raises(StackopsError, match=f"login_port must be a TCP port from 1 to 65535, not {port}"):
        check_port(port, "login_port")


@pytest.mark.parametrize("text", ["64mb\r\nFLUSHALL", "a\nb", "tab\there", "nul\x00", "del\x7f"])
def test_control_characters_are_refused(text: str) -> None:
    with pytest.raises(StackopsError, match=r"config maxmemory .* holds a control character"):
        check_no_control_characters(text, "config maxmemory")


@pytest.mark.parametrize("name", ["app", "my-app", "app_2026", "Ünïcode", "with space", SQLI, "d" * 63])
def test_existing_database_names_pass(name: str) -> None:
    assert _postgres.check_database_name(name, "db") == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "db is empty"),
        ("dbname=app host=127.0.2.2", "looks like a libpq connection string"),
        ("postgresql://evil/app", "looks like a libpq connection string"),
        ("app\nDROP", "holds a control character"),
        ("d" * 64, "is 64 bytes long; PostgreSQL cuts names to 63 bytes"),
        ("é" * 32, "is 64 bytes long"),
    ],
)
def test_bad_database_names_are_named(name: str, message: str) -> None:
    with pytest.raises(StackopsError, match=message):
        _postgres.check_database_name(name, "db")


@pytest.mark.parametrize("name", [SQLI, "it's", "a`b", "a;b", "a\\b", "a$b"])
def test_names_a_module_creates_hold_no_quotes_or_semicolons(name: str) -> None:
    assert _postgres.check_database_name(name, "db") == name
    with pytest.raises(StackopsError, match="which have no place in the name of a database this module creates"):
        _postgres.check_database_name(name, "db", new=True)


def test_login_db_port_and_timeout_are_checked_when_the_login_is_built() -> None:
    params = {
        "login_host": "127.0.0.1",
        "login_port": 5432,
        "login_user": "postgres",
        "login_password": "s3cr3t",
        "login_unix_socket": None,
        "login_db": "postgres",
        "ssl_mode": "prefer",
        "ca_cert": None,
        "connect_timeout": 5,
    }
    login = _postgres.PgLogin.of(params)
    assert login.libpq("test")["dbname"] == "postgres" and "ca_cert" not in login.libpq("test")
    assert login.to("app").libpq("test")["dbname"] == "app" and login.target == "127.0.0.1:5432"
    assert "s3cr3t" not in repr(login)
    with pytest.raises(StackopsError, match="login_db 'host=evil dbname=x' looks like a libpq connection string"):
        _postgres.PgLogin.of({**params, "login_db": "host=evil dbname=x"})
    with pytest.raises(StackopsError, match="login_db 'host=evil dbname=x' looks like a libpq connection string"):
        login.to("host=evil dbname=x")
    with pytest.raises(StackopsError, match="login_port must be a TCP port from 1 to 65535, not 70000"):
        _postgres.PgLogin.of({**params, "login_port": 70000})
    with pytest.raises(StackopsError, match="connect_timeout must be at least 1 second, not 0"):
        _postgres.PgLogin.of({**params, "connect_timeout": 0})


def test_the_redis_login_is_checked_when_built_and_hides_its_password() -> None:
    params = {name: option.get("default") for name, option in _redis.connection_argument_spec().items()}
    login = _redis.RedisLogin.of({**params, "login_password": "s3cr3t", "login_unix_socket": "/run/redis.sock"})
    assert (login.target, login.db, login.port) == ("/run/redis.sock", 0, 6379) and "s3cr3t" not in repr(login)
    for changes, message in (
        ({"db": -1}, "db must be 0 or more, not -1"),
        ({"login_port": 0}, "login_port must be a TCP port from 1 to 65535, not 0"),
        ({"connect_timeout": 0}, "connect_timeout must be at least 1 second, not 0"),
    ):
        with pytest.raises(StackopsError, match=message):
            _redis.RedisLogin.of({**params, **changes})


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("app", "app"), ("%", "\\%"), ("a_b", "a\\_b"), ("50%_off\\x", "50\\%\\_off\\\\x")],
)
def test_like_literal_matches_only_the_name(name: str, pattern: str) -> None:
    assert like_literal(name) == pattern


def test_a_missing_redis_database_is_named_with_the_fix() -> None:
    exc = Exception("DB index is out of range")
    assert _redis.describe(exc, 99).startswith("db 99 is not a database of this server")
    assert _redis.describe(Exception("Connection refused"), 0) == "Connection refused"


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("*", ""),
        ("**", ""),
        ("?*", ""),
        ("*?*", ""),
        ("[a-z]*", ""),
        ("[^a]*?", ""),
        ("[unclosed", ""),
        ("[\\]]*", ""),
        ("session:*", "session:"),
        ("\\*", "*"),
        ("cache:[0-9]*:page", "cache::page"),
        ("user:?", "user:"),
    ],
)
def test_literal_characters_of_redis_globs(pattern: str, literal: str) -> None:
    assert redis_maintenance.literal_characters(pattern) == literal


@pytest.mark.parametrize("name", ["dir", "dbfilename", "DIR", "appendfilename"])
def test_redis_file_places_are_refused(name: str) -> None:
    with pytest.raises(StackopsError, match="decides where Redis writes its files"):
        redis_maintenance.config_texts({name: "/tmp/elsewhere"})


def test_a_redis_value_with_a_newline_is_refused() -> None:
    with pytest.raises(StackopsError, match="config maxmemory '64mb\\\\r\\\\nFLUSHALL' holds a control character"):
        redis_maintenance.config_texts({"maxmemory": "64mb\r\nFLUSHALL"})


@pytest.mark.parametrize(
    ("value", "spaces"),
    [("127.0.0.1:8000", False), ("10.0.0.5:8000 backup weight=2", True), ("/etc/nginx/maintenance/on", False)],
)
def test_nginx_words_pass(value: str, spaces: bool) -> None:
    assert _nginx.check_word(value, "option", spaces=spaces) == value


@pytest.mark.parametrize(
    ("value", "spaces"),
    [
        ("127.0.2.1:8000; } server { listen 8081; } upstream x {", True),
        ("127.0.2.1:8000;keepalive 1", True),
        ("/etc/nginx/on) { return 200; } if (-f /x", False),
        ("/a path/on", False),
        ("10.0.0.5:8000\nbackup", True),
        ("/$uri", False),
        ("/x#comment", False),
        ('/health"', False),
        ("", False),
    ],
)
def test_nginx_words_that_would_add_directives_are_refused(value: str, spaces: bool) -> None:
    with pytest.raises(StackopsError, match="nginx would read that as the end of the directive"):
        _nginx.check_word(value, "option", spaces=spaces)


@pytest.mark.parametrize("value", ["127.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32", "192.168.1.7/24"])
def test_geo_addresses_pass(value: str) -> None:
    assert _nginx.check_address(value, "maintenance_allow entry") == value


@pytest.mark.parametrize("value", ["127.0.0.1 1; default 1", "all", "10.0.0.0/33", "", "localhost"])
def test_geo_non_addresses_are_refused(value: str) -> None:
    with pytest.raises(StackopsError, match="is not an IP address or network"):
        _nginx.check_address(value, "maintenance_allow entry")


def nginx_params(**extra: t.Any) -> dict[str, t.Any]:
    """nginx_config's params as Ansible hands them over: every option at its default, and a TLS report to do."""
    base = {name: spec.get("default") for name, spec in nginx_config.argument_spec().items()}
    return {**base, "tls_report": True, **extra}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"reload_timeout": 0}, "reload_timeout must be at least 1 second, not 0"),
        ({"websocket_send_timeout": -1}, "websocket_send_timeout must be at least 1 second"),
        ({"upstream_servers": ["127.0.0.1:8000;"]}, "upstream_servers entry '127.0.0.1:8000;' holds ';'"),
        ({"maintenance_allow": ["all"]}, "maintenance_allow entry 'all' is not an IP address"),
        ({"maintenance_exempt_paths": ["health"]}, "entry 'health' is not a URI path; start it with /"),
        ({"maintenance_exempt_paths": ["/a b"]}, "maintenance_exempt_paths entry '/a b' holds"),
        ({"maintenance_probe_timeout": 0}, "maintenance_probe_timeout must be at least 1 second, not 0"),
        ({"maintenance_exempt_paths": ["/"]}, "entry '/' exempts the path the module asks to prove maintenance"),
    ],
)
def test_nginx_config_refuses_bad_options_before_nginx_is_read(extra: dict[str, t.Any], message: str) -> None:
    nginx_operations.check_inputs(nginx_params())
    with pytest.raises(StackopsError, match=message):
        nginx_operations.check_inputs(nginx_params(**extra))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:99999/", "has a bad port"),
        ("http://127.0.0.1:0/", "has port 0"),
        ("http://127.0.0.1:http/", "has a bad port"),
        ("http://127.0.0.1/a\r\nX-Injected: 1", "holds a space or a control character"),
        ("http://127.0.0.1/a b", "holds a space or a control character"),
        ("file:///etc/passwd", "is not an http:// or https:// URL"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StackopsError, match=message):
        _http.check_url(url)


def endpoint(**extra: t.Any) -> dict[str, t.Any]:
    base = {"method": "GET", "cors_method": "GET", "headers": {}, "cors_origin": None, "status": None}
    return {**base, **extra}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"method": "GET / HTTP/1.1\r\nHost: x"}, "method 'GET / HTTP/1.1\\\\r\\\\nHost: x' is not an HTTP method"),
        ({"cors_method": "PO ST"}, "cors_method 'PO ST' is not an HTTP method"),
        ({"headers": {"X-A": "v\r\nX-Injected: 1"}}, "the value of header X-A holds a control character"),
        ({"headers": {"X A": "v"}}, "header name 'X A' is not a token"),
        ({"cors_origin": "https://a\r\nb"}, "is not an origin"),
        ({"status": [200, 999, 42]}, "status 999, 42 is not an HTTP status"),
    ],
)
def test_bad_request_parts_are_refused(extra: dict[str, t.Any], message: str) -> None:
    _http.check_request("e", endpoint(method="delete", headers={"Authorization": "Bearer x"}, status=[204]))
    with pytest.raises(StackopsError, match=message):
        _http.check_request("e", endpoint(**extra))


def test_a_header_value_is_never_in_the_message() -> None:
    with pytest.raises(StackopsError) as caught:
        _http.check_request("e", endpoint(headers={"Authorization": "Bearer s3cret\n"}))
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "argv",
    [["nginx", "-t"], ["/usr/sbin/nginx", "-t", "-c", "/etc/nginx/x.conf"], ["nginx-debug", "-T"], ["openresty", "-t"]],
)
def test_nginx_tests_pass(argv: list[str]) -> None:
    stack_health.check_nginx_test(argv)


@pytest.mark.parametrize(
    "argv", [["sh", "-c", "touch /tmp/x"], ["nginx", "-s", "stop"], ["nginxx", "-t"], [], ["/bin/nginx;", "-t"]]
)
def test_other_commands_as_nginx_test_are_refused(argv: list[str]) -> None:
    with pytest.raises(StackopsError, match="nginx_test must be nginx's config test"):
        stack_health.check_nginx_test(argv)


def given(module: t.Any, **changes: t.Any) -> dict[str, t.Any]:
    """A module's params as Ansible hands them over: every option at its default unless changed."""
    return {name: option.get("default") for name, option in module.argument_spec().items()} | changes


def exec_params(**extra: t.Any) -> dict[str, t.Any]:
    return given(compose_exec, project_src="/srv/app", argv=["true"], **extra)


def test_compose_exec_passes_env_values_by_name_only() -> None:
    o = compose_exec.check_inputs(exec_params(service="app", env={"PGPASSWORD": "x", "_A1": "y"}, workdir="/srv"))
    args = compose_exec.exec_args(o)
    assert args == ["exec", "-T", "--index", "1", "--workdir", "/srv", "-e", "PGPASSWORD", "-e", "_A1", "app", "true"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"env": {"X=1": "v"}}, "env name 'X=1' is not a variable name"),
        ({"env": {"1X": "v"}}, "env name '1X' is not a variable name"),
        ({"env": {"A B": "v"}}, "env name 'A B' is not a variable name"),
        ({"workdir": "$(touch /tmp/x)"}, "workdir '\\$\\(touch /tmp/x\\)' is not an absolute path"),
    ],
)
def test_compose_exec_refuses_env_names_and_relative_workdirs(extra: dict[str, t.Any], message: str) -> None:
    with pytest.raises(StackopsError, match=message):
        compose_exec.check_inputs(exec_params(service="app", **extra))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"return_lines": -2}, "return_lines must be -1 .*, not -2"),
        ({"dest": "../../tmp/x.log"}, "dest ../../tmp/x.log is not an absolute path"),
    ],
)
def test_compose_logs_refuses_bad_output_options(extra: dict[str, t.Any], message: str) -> None:
    compose_logs.check_inputs(given(compose_logs, project_src="/srv/app", dest="/var/log/x.log"))
    with pytest.raises(StackopsError, match=message):
        compose_logs.check_inputs(given(compose_logs, project_src="/srv/app", **extra))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"labels": ["=x"]}, "labels has '=x', a label without a name"),
        ({"keep_labels": [""]}, "keep_labels has '', a label without a name"),
        ({"keep_labels": [" =1"]}, "keep_labels has ' =1'"),
    ],
)
def test_docker_prune_refuses_labels_without_a_name(extra: dict[str, t.Any], message: str) -> None:
    base = {"labels": ["job=nightly"], "keep_labels": ["com.docker.compose.project"]}
    docker_prune.check_inputs(given(docker_prune, **base))
    with pytest.raises(StackopsError, match=message):
        docker_prune.check_inputs(given(docker_prune, **{**base, **extra}))


def maintenance_params(**extra: t.Any) -> dict[str, t.Any]:
    """pg_maintenance's params as Ansible hands them over: every option at its default, but vacuum and states."""
    base = {name: option.get("default") for name, option in pg_maintenance_module.argument_spec().items()}
    return {**base, "vacuum": True, "states": ["idle"], **extra}


def new_database(name: str, template: str | None = None) -> dict[str, t.Any]:
    return {"name": name, "template": template}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"min_dead_pct": 150.0}, "min_dead_pct is a percentage of the table's rows: 0 to 100, not 150"),
        ({"min_modified_pct": 100.5}, "min_modified_pct is a percentage"),
        ({"ensure_database": new_database(SQLI)}, "ensure_database.name 'x\"; DROP TABLE users;--' holds"),
        ({"ensure_database": new_database("n" * 70)}, "is 70 bytes long"),
        ({"ensure_database": new_database("new", "host=evil")}, "ensure_database.template 'host=evil' looks like"),
    ],
)
def test_pg_maintenance_refuses_out_of_range_and_bad_names(extra: dict[str, t.Any], message: str) -> None:
    pg_maintenance.check_inputs(maintenance_params(min_dead_pct=100.0, ensure_database=new_database("my-app_2")))
    with pytest.raises(StackopsError, match=message):
        pg_maintenance.check_inputs(maintenance_params(**extra))
