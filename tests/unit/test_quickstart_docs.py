"""The README's quickstart must not drift from the collection: its inventory is the example inventory, its variable
table names exactly the stackops_* variables the roles, playbooks and example inventory use, with the defaults the
roles apply, and its first runs are real playbooks. tests/integration/test_quickstart.py runs it on the lab."""

from __future__ import annotations

import re

import pytest

from harness import quickstart as qs
from harness.paths import LAB_INVENTORY, REPO

QUICKSTART = qs.quickstart()
TABLE = qs.variable_table(QUICKSTART)
FILES = qs.inventory_files(QUICKSTART)
# What the collection reads (roles, playbooks) and what the example inventory sets.
READ = qs.variables_in([REPO / "roles", REPO / "playbooks"])
EXAMPLE = qs.variables_in([qs.EXAMPLE_INVENTORY])
# Variables the lab inventory sets that a user's inventory never needs, and why. Nothing else of the lab's may be
# missing from the table: the lab reaches its hosts through documented variables only.
LAB_ONLY = {
    "stackops_lab_root": "the lab's own directory (lab/lab.py's ROOT) that its paths derive from; no role reads it",
    "stackops_tls_url": "the lab's TLS address, named by its own health_check_endpoints; no role reads it",
    "stackops_tls_ca": "the lab's self-signed certificate, the lab's health_check_ca_path; no role reads it",
}
_DEFAULT = re.compile(r"\b(stackops_[a-z0-9_]+)\s*\|\s*default\(\s*([^)]*?)\s*\)")


def test_the_quickstart_is_the_first_section() -> None:
    headings = re.findall(r"^## (.+)$", qs.README.read_text(), re.M)
    assert headings[0] == qs.QUICKSTART, headings


@pytest.mark.parametrize("path", sorted(FILES))
def test_each_inventory_file_shown_is_the_example_inventorys(path: str) -> None:
    example = qs.example_file(path)
    assert example.is_file(), f"the quickstart shows {qs.INVENTORY_DIR}/{path}, inventories/production has no such file"
    assert FILES[path] == example.read_text(), f"README's {qs.INVENTORY_DIR}/{path} differs from {example}"
    qs.load(FILES[path])


def test_the_quickstart_shows_every_file_of_the_example_inventory() -> None:
    shipped = {str(p.relative_to(qs.EXAMPLE_INVENTORY)) for p in qs.EXAMPLE_INVENTORY.rglob("*") if p.is_file()}
    shown = {str(qs.example_file(path).relative_to(qs.EXAMPLE_INVENTORY)) for path in FILES}
    assert shipped == shown


def test_the_vault_holds_every_secret_the_inventory_reads_as_placeholders() -> None:
    vault = qs.load(FILES["group_vars/all/vault.yml"])
    read = {name for body in FILES.values() for name in re.findall(r"\{\{ (vault_[a-z0-9_]+) \}\}", body)}
    assert read == set(vault), "vault.yml and the variables that read it differ"
    assert all(str(value).startswith("REPLACE-") for value in vault.values()), vault


def test_the_table_lists_every_variable_used_and_no_other() -> None:
    used = set(READ) | set(EXAMPLE)
    where = {name: READ.get(name, set()) | EXAMPLE.get(name, set()) for name in used - set(TABLE)}
    missing = {name: sorted(str(path.relative_to(REPO)) for path in paths) for name, paths in where.items()}
    assert not missing, f"README's variable table misses (variable: used in): {missing}"
    assert not set(TABLE) - used, f"README's variable table lists variables nothing uses: {sorted(set(TABLE) - used)}"


def test_the_example_inventory_sets_only_variables_the_collection_reads() -> None:
    assert not set(EXAMPLE) - set(READ), f"inventories/production sets what nothing reads: {set(EXAMPLE) - set(READ)}"


def test_the_lab_inventory_uses_documented_variables_or_lab_only_ones() -> None:
    lab = set(qs.variables_in([LAB_INVENTORY]))
    assert not lab - set(TABLE) - set(LAB_ONLY), (
        f"the lab inventory sets undocumented {lab - set(TABLE) - set(LAB_ONLY)}"
    )
    assert set(LAB_ONLY) <= lab - set(TABLE), (
        f"LAB_ONLY names what the lab does not set, or the table lists: {LAB_ONLY}"
    )


def _literal(text: str) -> str | None:
    """A Jinja default's value as the table writes it; None for omit and the empty string (no default)."""
    value = text.strip("'\"")
    return None if text in ("omit", "''", '""') else value


def test_the_stated_defaults_are_the_ones_the_roles_apply() -> None:
    applied: dict[str, set[str]] = {}
    for name, paths in READ.items():
        for path in paths:
            for found, text in _DEFAULT.findall(path.read_text()):
                if found == name and (value := _literal(text)) is not None:
                    applied.setdefault(name, set()).add(value)
    wrong = {}
    for name, (default, _meaning) in TABLE.items():
        if default.startswith("required"):
            continue
        stated = set(re.findall(r"`([^`]+)`", default))
        if stated != applied.get(name, set()):
            wrong[name] = f"README says {sorted(stated)}, the roles apply {sorted(applied.get(name, set()))}"
    assert not wrong, wrong


def test_the_first_runs_are_the_collections_playbooks() -> None:
    commands = qs.playbook_commands(QUICKSTART)
    assert commands == [
        f"ansible-playbook -i {qs.INVENTORY_DIR} stackops.runbooks.health_check --check",
        f"ansible-playbook -i {qs.INVENTORY_DIR} stackops.runbooks.backup",
        f"ansible-playbook -i {qs.INVENTORY_DIR} stackops.runbooks.restore_drill",
    ]
    for command in commands:
        assert (REPO / "playbooks" / f"{command.split()[3].rsplit('.', 1)[1]}.yml").is_file(), command
