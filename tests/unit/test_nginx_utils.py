"""nginx_config's pure parts: the upstream switch and the maintenance snippets."""

from __future__ import annotations

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._nginx import (
    maintenance_snippets,
    switch_upstream,
    under,
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
