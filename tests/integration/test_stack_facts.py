"""The first playbook: read-only facts about each host's services, over SSH, with set_stats for AWX."""

from __future__ import annotations

import pytest

from harness.playbook import assert_read_only

pytestmark = pytest.mark.lab_hosts("all")


@pytest.mark.matrix
def test_stack_facts_reports_every_host_and_changes_nothing(hosts: dict) -> None:
    runs = assert_read_only("stackops.runbooks.stack_facts")
    assert all(count == 0 for run in runs for count in run.changed().values())
    facts = runs[1].artifacts["stack_facts"]
    assert set(facts) == set(hosts)
    for name in hosts:
        assert facts[name]["postgres"].startswith("15.")
        assert facts[name]["redis"].startswith("7.")
        assert facts[name]["nginx"].startswith("1.")
        assert facts[name]["ready"] == {"status": "ready", "database": "ok", "redis": "ok"}
        assert sorted(facts[name]["containers"]) == [
            f"stackops-{name}-{service}-1" for service in ("app", "nginx", "postgres", "redis")
        ]
