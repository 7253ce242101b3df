"""nginx_config's pure parts: the upstream switch, the maintenance snippets, and where and how the proof of
maintenance asks nginx."""

from __future__ import annotations

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import (
    maintenance_snippets,
    switch_upstream,
    under,
)
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx_probe import (
    Target,
    listen_address,
    probe_problem,
    probe_targets,
)

SITE = """upstream app {
    server 10.0.0.1:8000 max_fails=3;
    server 10.0.0.2:8000;  # old
    keepalive 16;
}
upstream other {
    server 10.0.0.9:9000;
}
"""


def test_switch_upstream_replaces_only_that_blocks_servers() -> None:
    switched = switch_upstream(SITE, "app", ["10.0.1.1:8000", "10.0.1.2:8000 backup"])
    assert switched.splitlines()[:5] == [
        "upstream app {",
        "    server 10.0.1.1:8000;",
        "    server 10.0.1.2:8000 backup;",
        "    keepalive 16;",
        "}",
    ]
    assert "server 10.0.0.9:9000;" in switched
    assert switch_upstream(switched, "app", ["10.0.1.1:8000", "10.0.1.2:8000 backup"]) == switched


def test_switch_upstream_names_a_missing_block() -> None:
    with pytest.raises(StackopsError, match="No `upstream ap"):
        switch_upstream(SITE, "ap", ["x:1"])


def test_maintenance_snippets_escape_paths_and_list_allowed_networks() -> None:
    snippets = maintenance_snippets("/m/on", "/m/page.html", 60, ["10.0.0.0/8"], ["/health", "/api/v1.0/ping"])
    assert "    10.0.0.0/8 1;\n" in snippets["http.conf"]
    server = snippets["server.conf"]
    assert 'if ($uri ~ "^(?:/stackops-maintenance\\.html|/health|/api/v1\\.0/ping)")' in server
    assert "error_page 597 =503 /stackops-maintenance.html;" in server
    assert "add_header Retry-After 60 always;" in server and "if (-f /m/on)" in server


def test_under() -> None:
    assert under("/a/b/c.conf", "/a") == "b/c.conf"
    assert under("/ab/c", "/a") is None
    assert under("/a", "/a/") == ""


def test_maintenance_snippets_judge_a_probe_as_any_visitor_and_echo_its_token() -> None:
    snippets = maintenance_snippets("/m/on", "/m/page.html", 60, ["127.0.0.1"], ["/health"])
    http = snippets["http.conf"]
    # The header can only take access away: with it, the allow list is not consulted.
    bypass = "map $http_x_stackops_maintenance_probe $stackops_maintenance_bypass {\n"
    assert bypass + '    "" $stackops_maintenance_allowed;\n    default 0;\n}' in http
    assert '"~^[0-9a-f]{32}$" $http_x_stackops_maintenance_probe;' in http
    assert "add_header X-Stackops-Maintenance-Probe $stackops_maintenance_probe always;" in snippets["server.conf"]


# The shape of `nginx -T` output (nginx 1.22.1): each file read, after a `# configuration file PATH:` line.
DUMP = """nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
# configuration file /etc/nginx/nginx.conf:
user www-data;
http {
    include /etc/nginx/conf.d/*.conf;
    server { listen 127.0.0.1:8081; location / { return 200 "status { } ;"; } }
}
stream {
    server { listen 5433; proxy_pass db; }
}

# configuration file /etc/nginx/conf.d/app.conf:
upstream app {
    server 10.0.0.1:8000;  # server { listen 1; }
}
server {
    listen 80 default_server;
    listen [::]:443 ssl http2;
    listen 443 quic;
    listen unix:/run/app.sock;
    server_name _ *.example.com app.example.com;
    location /x { listen_not_a_listen 9; }
}
server {
    server_name "~^www";
}
"""


def test_probe_targets_are_every_listen_of_every_http_server_with_its_name() -> None:
    found = [(t.url, t.host, t.source) for t in probe_targets(DUMP, [])]
    assert found == [
        ("http://127.0.0.1:8081/stackops-maintenance-probe", "127.0.0.1", "/etc/nginx/nginx.conf:4"),
        ("http://127.0.0.1:80/stackops-maintenance-probe", "app.example.com", "/etc/nginx/conf.d/app.conf:4"),
        ("https://[::1]:443/stackops-maintenance-probe", "app.example.com", "/etc/nginx/conf.d/app.conf:4"),
        ("http://127.0.0.1:80/stackops-maintenance-probe", "127.0.0.1", "/etc/nginx/conf.d/app.conf:12"),
    ]


def test_probe_targets_from_urls_and_refusals() -> None:
    (target,) = probe_targets(DUMP, ["https://app.example.com:8443/ping?x=1"])
    assert target == Target("https", "app.example.com", 8443, "app.example.com", "/ping?x=1", "maintenance_probe_urls")
    with pytest.raises(StackopsError, match="'ftp://x/' is not an http:// or https:// URL"):
        probe_targets(DUMP, ["ftp://x/"])
    with pytest.raises(StackopsError, match="no http server block listening on an address"):
        probe_targets("# configuration file /n.conf:\nevents {}\n", [])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["80"], ("http", "127.0.0.1", 80)),
        (["*:8080"], ("http", "127.0.0.1", 8080)),
        (["10.0.0.5"], ("http", "10.0.0.5", 80)),
        (["10.0.0.5:443", "ssl", "default_server"], ("https", "10.0.0.5", 443)),
        (["[::]:80"], ("http", "::1", 80)),
        (["[::1]"], ("http", "::1", 80)),
        (["unix:/run/x.sock"], None),
        (["443", "quic"], None),
        (["host:$port"], None),
    ],
)
def test_listen_address(args: list[str], expected: tuple | None) -> None:
    assert listen_address(args) == expected


def answer(status: int | None, retry_after: str | None = None, page: bool = False) -> dict:
    base = {"url": "http://a:80/p", "host": "a", "server": "f:1", "status": status, "retry_after": retry_after}
    return {**base, "maintenance_page": page, **({"error": "Connection refused"} if status is None else {})}


@pytest.mark.parametrize(
    ("got", "want_page", "problem"),
    [
        (answer(503, "60", page=True), True, None),
        (answer(200), False, None),
        (answer(404), False, None),
        (answer(503, "60"), True, "answered 503, Retry-After 60, not the maintenance page"),  # the app's own 503
        (answer(503, "30", page=True), True, "answered 503, Retry-After 30, the maintenance page"),
        (answer(200), True, "answered 200, Retry-After missing, not the maintenance page"),
        (answer(503, "60", page=True), False, "answered 503, Retry-After 60, the maintenance page"),
        (answer(None), False, "could not be asked: Connection refused"),
    ],
)
def test_probe_problem(got: dict, want_page: bool, problem: str | None) -> None:
    found = probe_problem(got, want_page, 60)
    assert found == problem if problem is None else problem in (found or "")
