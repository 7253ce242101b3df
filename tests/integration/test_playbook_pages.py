"""Command lines of the playbook pages (docs/playbooks/*.md) run on the lab in --check mode.

Every `ansible-playbook` line of every page is checked without the lab in tests/unit/test_examples.py: the
playbook exists and passes --syntax-check, its variables are declared by the playbook or its roles'
meta/argument_specs.yml and their values pass that spec (Ansible's ArgumentSpecValidator), its tags exist. Run in
full, --check, the 42 lines would cost about fifteen minutes on a busy lab (15-95 s each, measured), so a chosen
subset runs here, each line as the page shows it, with the lab inventory and `--limit lab1`, through the harness's
check_run: it succeeds, acts on lab1 (a tag that selected nothing would fail it), and an independent snapshot of lab1
after it is the one before (tests/harness/playbook.py, tests/harness/snapshot.py):

- health_check-1: the health check, the most run;
- db_maintenance-5: the online REINDEX of named tables, which must exist in the stack's schema (the page named
  them unqualified, and the run refused them);
- db_maintenance-7: the missing-database line; `-e db_maintenance_ensure_database=true` is the string "true",
  which the role's `when:` refused until it read it with `| bool`;
- redis_maintenance-2: the cache clear by pattern (check mode counts the keys).

The lines run as written, the health check's report folder included: the snapshot reads the lab's
/var/tmp/stackops-health, in which --check must write nothing.

Lines with production values (a registry image, a webhook, a host name) stay out of the subset: their check runs
would reach outside the lab (deploy --check of an image not on the host has Compose look up the registry).
"""

from __future__ import annotations

import pytest

from harness.examples import CommandLine, page_commands
from harness.playbook import check_run, run_playbook

pytestmark = pytest.mark.lab_hosts("lab1")

CHECKED = ("health_check-1", "db_maintenance-5", "db_maintenance-7", "redis_maintenance-2")
COMMANDS = {c.id: c for c in page_commands()}


@pytest.mark.parametrize("command", [COMMANDS[i] for i in CHECKED], ids=lambda c: c.id)
def test_page_command_runs_in_check_mode(command: CommandLine) -> None:
    run = check_run(run_playbook, command.playbook, extravars=command.extravars, tags=command.tags, limit="lab1")
    assert run.hosts == {"lab1"}, run.hosts
