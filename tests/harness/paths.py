"""Where the repository, the lab inventory and the collection path are; the lab's own module is the source."""

from __future__ import annotations

import yaml

import lab

REPO = lab.REPO
LAB_INVENTORY = lab.INVENTORY
COLLECTIONS = REPO / ".build" / "collections"
ANSIBLE_CONFIG = REPO / "ansible.cfg"


def lab_hosts() -> dict[str, lab.Host]:
    return {host.name: host for host in lab.load_hosts()}


def lab_credentials(host: str) -> dict[str, str]:
    """The generated credentials of a lab host: stackops_pg_password, stackops_pg_app_password, ..."""
    return yaml.safe_load((LAB_INVENTORY / "host_vars" / host / lab.CREDENTIALS_FILE).read_text())


def lab_postgres_thresholds() -> dict[str, float]:
    """The PostgreSQL health thresholds the lab inventory sets (why: group_vars/all.yml), for modules run directly."""
    group_vars = yaml.safe_load((LAB_INVENTORY / "group_vars" / "all.yml").read_text())
    return dict(group_vars["health_check_postgres_thresholds"])
