"""The first playbook: read-only facts about each host's services, over SSH, with set_stats for AWX."""

from __future__ import annotations

import pytest

from harness.playbook import assert_read_only

pytestmark = pytest.mark.lab_hosts("all")

VERSIONS = {"bookworm": ("15.", "7.0.", "1.22."), "trixie": ("17.", "8.0.", "1.26.")}


@pytest.mark.matrix
def test_stack_facts_reports_every_host_and_changes_nothing(hosts: dict) -> None:
    runs = assert_read_only("stackops.runbooks.stack_facts")
    assert all(count == 0 for run in runs for count in run.changed().values())
    facts = runs[1].artifacts["stack_facts"]
    assert set(facts) == set(hosts)
    for name, host in hosts.items():
        # Each shape's services, on each Debian release's versions (lab3 and drill1 on trixie's).
        postgres, redis, nginx = VERSIONS[host.debian]
        assert facts[name]["postgres"].startswith(postgres)
        assert facts[name]["redis"].startswith(redis)
        assert facts[name]["nginx"].startswith(nginx)
        assert facts[name]["ready"] == {"status": "ready", "database": "ok", "redis": "ok"}
        assert sorted(facts[name]["containers"]) == sorted(
            f"stackops-{name}-{service}-1" for service in host.shape.ports
        )
