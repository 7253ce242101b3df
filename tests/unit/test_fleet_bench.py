"""bench/fleet.py's pure parts: the aliases and their generated inventory (unique, loopback only, nothing of one alias
shared with another, credentials by symlink), the playbook recap it reads, and its results table."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"lab1": "127.0.2.1", "lab2": "127.0.2.2", "lab3": "127.0.2.4", "drill1": "127.0.2.3"}


def load_fleet() -> t.Any:
    spec = importlib.util.spec_from_file_location("fleet_bench", ROOT / "bench" / "fleet.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


fleet = load_fleet()


def scratch_database(host: str, db: str) -> str:
    """The restore_drill role's scratch database name (roles/restore_drill/tasks/main.yml, __drill_scratch)."""
    return f"{re.sub('[^A-Za-z0-9_]', '_', host)}_{db}"


@pytest.mark.parametrize("count", [1, 3, 10, 30, 100])
def test_aliases_are_unique_and_spread_over_the_sources(count: int) -> None:
    aliases = fleet.make_aliases(count, ADDRESSES)
    assert len(aliases) == count
    assert len({a.name for a in aliases}) == count
    per_source = [sum(a.source == s for a in aliases) for s in fleet.SOURCES]
    assert max(per_source) - min(per_source) <= 1
    assert all(a.address == ADDRESSES[a.source] for a in aliases)


def test_each_alias_has_its_own_backup_directory_scratch_database_and_connection() -> None:
    aliases = fleet.make_aliases(100, ADDRESSES)
    hosts = {
        name: hostvars
        for group in fleet.inventory(aliases, ADDRESSES["drill1"])["all"]["children"]["stack"]["children"].values()
        for name, hostvars in group["hosts"].items()
    }
    assert sorted(hosts) == sorted(a.name for a in aliases)
    for key in ("stackops_backup_dest", "ansible_control_path"):
        assert len({v[key] for v in hosts.values()}) == 100, key
    assert all(v["stackops_backup_dest"].endswith(f"/{fleet.BACKUP_ROOT}/{name}") for name, v in hosts.items())
    assert len({scratch_database(name, "app") for name in hosts}) == 100
    # The lab's own backups (backups/<host>) are never an alias's.
    assert not {v["stackops_backup_dest"] for v in hosts.values()} & {
        f"{{{{ stackops_lab_root }}}}/backups/{h}" for h in ADDRESSES
    }


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.5", "8.8.8.8", "::1", "128.0.0.1"])
def test_an_address_outside_loopback_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        fleet.make_aliases(3, {**ADDRESSES, "lab2": address})
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        fleet.inventory(fleet.make_aliases(3, ADDRESSES), address)


def test_every_address_of_the_inventory_is_loopback() -> None:
    document = fleet.inventory(fleet.make_aliases(30, ADDRESSES), ADDRESSES["drill1"])
    found = re.findall(r"'ansible_host': '([^']+)'", str(document))
    assert len(found) == 31
    assert all(a.startswith("127.") for a in found)


def fake_lab(root: Path) -> Path:
    """A lab inventory shaped as inventories/lab/: group_vars/all.yml naming the project after inventory_hostname."""
    (root / "group_vars").mkdir(parents=True)
    (root / "group_vars" / "all.yml").write_text(
        "stackops_compose_project_src: /lab/hosts/{{ inventory_hostname }}\n"
        "stackops_compose_project_name: stackops-{{ inventory_hostname }}\n"
        "stackops_backup_dest: /lab/backups/{{ inventory_hostname }}\nstackops_pg_db: app\n"
    )
    for host in ADDRESSES:
        (root / "host_vars" / host).mkdir(parents=True)
        (root / "host_vars" / host / "lab_credentials.yml").write_text(f"stackops_pg_password: secret-{host}\n")
    (root / "host_vars" / "lab3" / "main.yml").write_text("stackops_pg_db: sovd_db\n")
    return root


def test_the_written_inventory_is_private_and_links_the_lab_credentials(tmp_path: Path) -> None:
    lab = fake_lab(tmp_path / "lab")
    inv = fleet.write_inventory(tmp_path / "inv", fleet.make_aliases(4, ADDRESSES), ADDRESSES["drill1"], lab)
    assert stat.S_IMODE((inv / "hosts.yml").stat().st_mode) == 0o600
    assert stat.S_IMODE(inv.stat().st_mode) == 0o700
    assert "secret" not in (inv / "hosts.yml").read_text()
    assert (inv / "group_vars" / "fleet_lab3").resolve() == (lab / "host_vars" / "lab3").resolve()
    assert (inv / "host_vars" / "drill1").resolve() == (lab / "host_vars" / "drill1").resolve()
    assert yaml.safe_load((inv / "hosts.yml").read_text()) == fleet.inventory(
        fleet.make_aliases(4, ADDRESSES), ADDRESSES["drill1"]
    )


def test_ansible_gives_each_alias_its_source_project_credentials_and_own_backups(tmp_path: Path) -> None:
    """What ansible-playbook will see: group_vars/all.yml must not win over an alias's project (it would name a
    project after the alias, which does not exist)."""
    lab = fake_lab(tmp_path / "lab")
    inv = fleet.write_inventory(tmp_path / "inv", fleet.make_aliases(4, ADDRESSES), ADDRESSES["drill1"], lab)
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inv), "--list"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_CONFIG")},
        cwd=tmp_path,
    )
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    lab3 = hostvars["fleet003-lab3"]
    assert lab3["stackops_compose_project_src"] == "{{ stackops_lab_root }}/hosts/lab3"
    assert lab3["stackops_compose_project_name"] == "stackops-lab3"
    assert lab3["stackops_pg_password"] == "secret-lab3"
    assert lab3["stackops_pg_db"] == "sovd_db"
    assert hostvars["fleet004-lab1"]["stackops_pg_password"] == "secret-lab1"
    assert hostvars["fleet004-lab1"]["stackops_backup_dest"].endswith("/fleet004-lab1")
    assert hostvars["drill1"]["stackops_pg_password"] == "secret-drill1"


def test_recap_counts_hosts_that_failed_or_were_unreachable() -> None:
    recap = (
        "PLAY RECAP *****\n"
        "fleet001-lab1              : ok=9    changed=1    unreachable=0    failed=0    skipped=2    rescued=0\n"
        "fleet002-lab2              : ok=3    changed=0    unreachable=1    failed=0    skipped=0    rescued=0\n"
        "fleet003-lab3              : ok=5    changed=0    unreachable=0    failed=2    skipped=0    rescued=1\n"
        "drill1                     : ok=4    changed=0    unreachable=0    failed=0    skipped=0    rescued=0\n"
    )
    assert fleet.recap_failures(recap) == 2
    assert fleet.recap_failures("no recap at all") == 0


def run(**changes: t.Any) -> t.Any:
    base = {
        "playbook": "backup", "hosts": 10, "forks": 10, "extra": "", "wall_s": 25.0, "controller_cpu_s": 12.0,
        "lab_sshd_cpu_s": 8.0, "machine_cpu_s": 50.0, "load_start": 1.5, "load_end": 2.25, "rc": 0,
        "failed_hosts": 0, "timed_out": False,
    }  # fmt: skip
    return fleet.Run(**{**base, **changes})


def test_table_gives_totals_and_per_host_figures() -> None:
    lines = fleet.table([run(), run(hosts=100, wall_s=300.0, timed_out=True, failed_hosts=3, extra="x=1")]).splitlines()
    assert len(lines) == 4
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert len({len(c) for c in cells}) == 1
    header = cells[0]
    row = dict(zip(header, cells[2]))
    assert row["wall s"] == "25.0"
    assert row["wall s/host"] == "2.50"
    assert row["controller CPU s/host"] == "1.20"
    assert row["lab sshd CPU s/host"] == "0.80"
    assert row["machine CPU s/host"] == "5.00"
    assert row["load 1 min start → end"] == "1.50 → 2.25"
    assert row["extra"] == "-"
    second = dict(zip(header, cells[3]))
    assert second["wall s"] == "300.0 (timed out)"
    assert second["wall s/host"] == "3.00"
    assert second["failed hosts"] == "3"
    assert second["extra"] == "x=1"


def test_plan_runs_each_size_in_playbook_order_with_its_forks() -> None:
    assert fleet.plan([3, 100], "health_check,backup,restore_drill", [10], [3]) == [
        (3, "health_check", 10),
        (3, "backup", 10),
        (3, "restore_drill", 10),
        (100, "health_check", 10),
        (100, "backup", 10),
    ]
    assert fleet.plan([100], "backup:5,backup:50,restore_drill", [10, 20]) == [
        (100, "backup", 5),
        (100, "backup", 50),
        (100, "restore_drill", 10),
        (100, "restore_drill", 20),
    ]
    with pytest.raises(ValueError, match="not one of"):
        fleet.plan([3], "backup,deploy", [10])
