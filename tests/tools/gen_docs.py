"""Generate docs/modules/<module>.md and docs/roles/<role>.md from the modules' documentation and the roles'
argument specs (via ansible-doc), so the pages never drift from the code. `--check` fails when a page is stale."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "stackops.runbooks"
MARKUP = [
    (re.compile(r"L\(([^,()]+),\s*([^)]+)\)"), r"[\1](\2)"),
    (re.compile(r"U\(([^)]+)\)"), r"\1"),
    (re.compile(r"I\(([^)]+)\)"), r"*\1*"),
    (re.compile(r"B\(([^)]+)\)"), r"**\1**"),
    (re.compile(r"\b(?:C|O|V|E|RV|M)\(((?:[^()]|\([^()]*\))+)\)"), r"`\1`"),
]


def text(value: object) -> str:
    parts = value if isinstance(value, list) else [value] if value else []
    out = " ".join(str(p) for p in parts)
    for pattern, repl in MARKUP:
        out = pattern.sub(repl, out)
    return out.replace("|", "\\|").replace("\n", " ")


def ansible_doc(kind: str, names: list[str]) -> dict:
    proc = subprocess.run(
        ["ansible-doc", "--json", "-t", kind, *[f"{NAMESPACE}.{n}" for n in names]],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def options_table(options: dict, prefix: str = "") -> list[str]:
    rows = []
    for name, spec in sorted(options.items()):
        default = spec.get("default")
        detail = text(spec.get("description"))
        if spec.get("choices"):
            detail += f" Choices: {', '.join(f'`{c}`' for c in spec['choices'])}."
        kind = spec.get("type", "str") + (f" of {spec['elements']}" if spec.get("elements") else "")
        rows.append(
            f"| `{prefix}{name}` | {kind} | {'yes' if spec.get('required') else ''} | "
            f"{'' if default is None else f'`{json.dumps(default)}`'} | {detail} |"
        )
        if spec.get("suboptions"):
            rows.extend(options_table(spec["suboptions"], f"{prefix}{name}."))
    return rows


def module_page(name: str, doc: dict) -> str:
    d, examples, returns = doc["doc"], doc.get("examples", ""), doc.get("return") or {}
    lines = [f"# {NAMESPACE}.{name}", "", f"{text(d['short_description'])}.", ""]
    lines += [f"{text(p)}" + "\n" for p in d.get("description", [])]
    if d.get("requirements"):
        lines += ["## Requirements", "", *[f"- {text(r)}" for r in d["requirements"]], ""]
    lines += [
        "## Options",
        "",
        "| option | type | required | default | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [*options_table(d.get("options", {})), ""]
    attributes = d.get("attributes") or {}
    if attributes:
        lines += ["## Attributes", "", "| attribute | support | details |", "| --- | --- | --- |"]
        lines += [
            f"| {k} | {v.get('support', '')} | {text(v.get('details', ''))} |" for k, v in sorted(attributes.items())
        ]
        lines.append("")
    if d.get("notes"):
        lines += ["## Notes", "", *[f"- {text(n)}" for n in d["notes"]], ""]
    lines += ["## Examples", "", "```yaml", examples.strip(), "```", ""]
    if returns:
        lines += ["## Return values", "", "| key | type | returned | description |", "| --- | --- | --- | --- |"]
        lines += [
            f"| `{k}` | {v.get('type', '')} | {text(v.get('returned', ''))} | {text(v.get('description'))} |"
            for k, v in sorted(returns.items())
        ]
        lines.append("")
    lines += ["_Generated from the module's documentation by `tests/tools/gen_docs.py`._", ""]
    return "\n".join(lines)


def role_page(name: str, doc: dict) -> str:
    spec = doc["entry_points"]["main"]
    lines = [f"# {NAMESPACE}.{name} (role)", "", f"{text(spec['short_description'])}.", ""]
    lines += [f"{text(p)}" + "\n" for p in spec.get("description", [])]
    lines += [
        "## Variables",
        "",
        "| variable | type | required | default | description |",
        "| --- | --- | --- | --- | --- |",
        *options_table(spec.get("options", {})),
        "",
    ]
    lines += ["_Generated from the role's `meta/argument_specs.yml` by `tests/tools/gen_docs.py`._", ""]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())
    result = {}
    for name, doc in ansible_doc("module", modules).items():
        result[REPO / "docs" / "modules" / f"{name.rsplit('.', 1)[1]}.md"] = module_page(name.rsplit(".", 1)[1], doc)
    for name, doc in (ansible_doc("role", roles) if roles else {}).items():
        result[REPO / "docs" / "roles" / f"{name.rsplit('.', 1)[1]}.md"] = role_page(name.rsplit(".", 1)[1], doc)
    return result


def main() -> int:
    stale = []
    for path, content in pages().items():
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != content:
                stale.append(str(path.relative_to(REPO)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    if stale:
        print(f"stale generated docs: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
