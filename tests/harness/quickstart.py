"""The README's quickstart as data: its inventory files, its variable table and its first commands. The unit tests
hold it to the collection (tests/unit/test_quickstart_docs.py); tests/integration/test_quickstart.py follows it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harness.paths import REPO

README = REPO / "README.md"
EXAMPLE_INVENTORY = REPO / "inventories" / "production"
QUICKSTART = "Quickstart: your own hosts"
# The directory the quickstart's files are in, as its commands name it (`ansible-playbook -i inventory ...`).
INVENTORY_DIR = "inventory"
VARIABLE = re.compile(r"(?<![A-Za-z0-9_$])stackops_[a-z0-9_]*[a-z0-9]")
_FILE_BLOCK = re.compile(r"^`" + INVENTORY_DIR + r"/([^`]+)`[^\n]*\n(?:[^\n]+\n)*?\n```yaml\n(.*?)^```", re.M | re.S)
_TABLE_ROW = re.compile(r"^\| `(stackops_[a-z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$", re.M)


def section(text: str, title: str) -> str:
    """A `## title` section of a Markdown page, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {title}'"
    return match[1]


def quickstart(text: str | None = None) -> str:
    return section(README.read_text() if text is None else text, QUICKSTART)


def inventory_files(text: str) -> dict[str, str]:
    """The files of the inventory the quickstart shows, by their path inside it: each a ```yaml block right after
    a paragraph that starts with the path in backticks (`inventory/group_vars/stack.yml`:)."""
    files = dict(_FILE_BLOCK.findall(text))
    assert files, "the quickstart shows no inventory files"
    return files


def example_file(path: str) -> Path:
    """The file of inventories/production/ that a quickstart file is; the vault's is a placeholder `.example`, which
    Ansible does not load."""
    shipped = EXAMPLE_INVENTORY / path
    return shipped if shipped.exists() else shipped.with_name(f"{shipped.name}.example")


def variable_table(text: str) -> dict[str, tuple[str, str]]:
    """The quickstart's variable reference: name -> (default, meaning)."""
    rows = _TABLE_ROW.findall(text)
    names = [name for name, _default, _meaning in rows]
    assert len(names) == len(set(names)), f"variables listed twice: {sorted({n for n in names if names.count(n) > 1})}"
    return {name: (default.strip(), meaning.strip()) for name, default, meaning in rows}


def playbook_commands(text: str) -> list[str]:
    """The ansible-playbook command lines of the quickstart's bash blocks, without their comments."""
    return [
        line.split("#", 1)[0].strip()
        for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)
        for line in block.splitlines()
        if line.startswith("ansible-playbook ")
    ]


def variables_in(paths: list[Path]) -> dict[str, set[Path]]:
    """Every stackops_* name in the YAML and Jinja files under the paths, with the files that use it."""
    found: dict[str, set[Path]] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if path.suffix not in (".yml", ".yaml", ".j2", ".example"):
                continue
            for name in VARIABLE.findall(path.read_text()):
                found.setdefault(name, set()).add(path)
    return found


def load(body: str) -> dict[str, object]:
    data = yaml.safe_load(body)
    assert isinstance(data, dict), body
    return data
