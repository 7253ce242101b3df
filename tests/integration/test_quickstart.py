"""The README's quickstart followed literally on the lab: its inventory files, taken from README.md, written to a
fresh inventory with the lab's values put in for the example values it says to replace (lab3 as the stack host and
drill1 as the drill host: addresses, the lab's SSH settings, services, database, users, directories; the lab's
generated passwords in the vault, encrypted as it says), then its three first runs as it writes them. Nothing is
added but the SSH settings it leaves to the user, so lab3's other shape is reached through documented variables."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness import quickstart as qs
from harness.paths import lab_credentials, lab_hosts, lab_postgres_thresholds
from harness.playbook import check_run, run_module, run_playbook

pytestmark = pytest.mark.lab_hosts("lab3", "drill1")

# The lab host that plays each group of the README's hosts.yml.
LAB_HOST = {"stack": "lab3", "drill": "drill1"}
# What the README leaves to the user beside its files ("whatever else your SSH connection needs"): the lab's.
SSH_SETTINGS = ("ansible_port", "ansible_ssh_private_key_file", "ansible_ssh_common_args")
VAULT = "group_vars/all/vault.yml"
ABSENT = "__not set by the lab inventory__"


@dataclass
class Quickstart:
    path: Path  # the inventory directory, `inventory` in the README's commands
    files: dict[str, dict]  # what was written, by path inside it (the vault in clear)
    readme: dict[str, dict]  # the README's files
    report_dir: Path
    secrets: list[str]


def lab_values(host: str, names: list[str]) -> dict[str, object]:
    """The lab inventory's values of these variables for a host, rendered by Ansible (its templates name the lab's
    root and the host's address); ABSENT where the lab leaves a variable to the roles' default."""
    msg = {name: f"{{{{ {name} if {name} is defined else '{ABSENT}' }}}}" for name in names}
    run = run_module("ansible.builtin.debug", {"msg": msg}, hosts=host)
    run.assert_ok()
    return run.result(host)["msg"]


def table_default(name: str) -> str:
    """The one default the README's table gives a variable (a value in backticks)."""
    default, _meaning = qs.variable_table(qs.quickstart())[name]
    values = default.split("`")[1::2]
    assert len(values) == 1, f"the lab leaves {name} to its default, and README's table gives {default!r}"
    return values[0]


def fill(readme: dict, host: str, report_dir: Path) -> dict:
    """A group's variables with the lab host's values; a secret stays a reference to the vault."""
    lab = lab_values(host, [name for name, value in readme.items() if "vault_" not in str(value)])
    filled = {}
    for name, value in readme.items():
        if "vault_" in str(value):
            filled[name] = value
        elif name == "stackops_report_dir":
            filled[name] = str(report_dir)  # a controller directory of the test's own
        elif name == "ansible_become":
            filled[name] = lab[name] if lab[name] != ABSENT else False  # the lab connects as root, without sudo
        else:
            filled[name] = lab[name] if lab[name] != ABSENT else table_default(name)
    return filled


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quickstart]:
    readme = {path: qs.load(body) for path, body in qs.inventory_files(qs.quickstart()).items()}
    base = tmp_path_factory.mktemp("quickstart")
    inventory, report_dir = base / qs.INVENTORY_DIR, base / "reports"
    files: dict[str, dict] = {}

    groups = readme["hosts.yml"]["all"]["children"]
    assert set(groups) == set(LAB_HOST), groups
    for members in groups.values():
        (example,) = members["hosts"].values()  # one example host per group
        assert set(example) == {"ansible_host"}, example
    files["hosts.yml"] = {
        "all": {
            "children": {
                group: {"hosts": {host: {"ansible_host": lab_hosts()[host].addr}}} for group, host in LAB_HOST.items()
            }
        }
    }
    common = readme["group_vars/all/main.yml"]
    files["group_vars/all/main.yml"] = fill(common, LAB_HOST["stack"], report_dir) | lab_values(
        LAB_HOST["stack"], list(SSH_SETTINGS)
    )
    assert fill(common, LAB_HOST["drill"], report_dir) == fill(common, LAB_HOST["stack"], report_dir)
    secrets: dict[str, str] = {}
    for group, host in LAB_HOST.items():
        path = f"group_vars/{group}.yml"
        files[path] = fill(readme[path], host, report_dir)
        for name, value in readme[path].items():
            if "vault_" in str(value):
                secrets[str(value).strip("{} ")] = lab_credentials(host)[name]
    files[VAULT] = secrets

    for path, data in files.items():
        (inventory / path).parent.mkdir(parents=True, exist_ok=True)
        (inventory / path).write_text("---\n" + yaml.safe_dump(data, sort_keys=False))
    # "Encrypt it before anything else", and give each run the vault password.
    password = base / "vault-password"
    password.write_text("quickstart-test-vault-password\n")
    password.chmod(0o600)
    env = {**os.environ, "ANSIBLE_VAULT_PASSWORD_FILE": str(password)}
    encrypt = subprocess.run(
        ["ansible-vault", "encrypt", str(inventory / VAULT)], env=env, capture_output=True, text=True, check=False
    )
    assert encrypt.returncode == 0, encrypt.stdout + encrypt.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password))
        yield Quickstart(inventory, files, readme, report_dir, list(secrets.values()))


def test_the_inventory_is_the_readmes_with_the_lab_values_and_documented_variables(quickstart: Quickstart) -> None:
    table = qs.variable_table(qs.quickstart())
    for path, data in quickstart.files.items():
        added = set(data) - set(quickstart.readme[path])
        assert added <= (set(SSH_SETTINGS) if path == "group_vars/all/main.yml" else set()), (path, added)
        assert set(quickstart.readme[path]) <= set(data), path
        undocumented = {name for name in data if name.startswith("stackops_")} - set(table)
        assert not undocumented, f"{path} uses variables the README's table does not list: {undocumented}"
    # The stack host's services, database and superuser are lab3's own, not the classic shape's.
    stack = quickstart.files["group_vars/stack.yml"]
    assert (stack["stackops_postgres_service"], stack["stackops_app_service"]) == ("db", "backend")
    assert (stack["stackops_pg_user"], stack["stackops_pg_db"]) == ("dba", "sovd_db")
    vault = (quickstart.path / VAULT).read_text()
    assert vault.startswith("$ANSIBLE_VAULT;") and not any(secret in vault for secret in quickstart.secrets)


def test_the_three_first_runs(quickstart: Quickstart) -> None:
    stack, drill = LAB_HOST["stack"], LAB_HOST["drill"]
    outputs = []

    # ansible-playbook -i inventory stackops.runbooks.health_check --check: nothing on the hosts changes (an
    # independent snapshot of lab3 and drill1 before and after), and every service of lab3's shape is judged. The
    # limit names the inventory's every host, so the run is the README's; it keeps the snapshot off the other lab
    # hosts, which other tests may be changing.
    # The one value not from the README: the lab's cache-hit sample size (inventories/lab/group_vars/all.yml says
    # why), since lab3's only reads are other tests' backups and restores; a real site's traffic needs no such value.
    health = check_run(
        run_playbook,
        "stackops.runbooks.health_check",
        inventory=quickstart.path,
        limit=",".join(LAB_HOST.values()),
        extravars={"health_check_postgres_thresholds": lab_postgres_thresholds()},
    )
    verdict = health.artifacts["health_check"][stack]
    assert set(verdict["services"]) == {"db", "redis", "backend", "frontend", "nginx"}, verdict
    outputs.append(health.stdout)

    # ansible-playbook -i inventory stackops.runbooks.backup: a verified backup of sovd_db in lab3's directory.
    backup = run_playbook("stackops.runbooks.backup", inventory=quickstart.path)
    backup.assert_ok()
    taken = backup.artifacts["backup"][stack]
    backup_dest = quickstart.files["group_vars/stack.yml"]["stackops_backup_dest"]
    assert Path(taken["path"]).parent == Path(backup_dest) and Path(taken["path"]).name.startswith("sovd_db-")
    manifest = json.loads((Path(taken["path"]) / "manifest.json").read_text())
    assert manifest["database"] == "sovd_db" and int(taken["rows"]) > 0, manifest["database"]
    outputs.append(backup.stdout)

    # ansible-playbook -i inventory stackops.runbooks.restore_drill: that backup restored on drill1 and proven.
    drilled = run_playbook("stackops.runbooks.restore_drill", inventory=quickstart.path)
    drilled.assert_ok()
    document = json.loads(Path(drilled.artifacts["restore_drill"]["report_json"]).read_text())
    assert Path(drilled.artifacts["restore_drill"]["report_json"]).parent == quickstart.report_dir
    (result,) = document["results"]
    assert (result["host"], result["database"], result["drill_host"], result["status"]) == (
        stack,
        "sovd_db",
        drill,
        "pass",
    ), result
    assert result["backup"]["name"] == Path(taken["path"]).name, result["backup"]
    outputs.append(drilled.stdout)

    for secret in quickstart.secrets:
        assert not any(secret in out for out in outputs), "a vault secret is in a run's output"
