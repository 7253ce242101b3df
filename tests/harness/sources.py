"""Reading the test suites' own source (the unit tests that check what the integration tests run)."""

from __future__ import annotations

import ast


def string_constants(tree: ast.Module) -> dict[str, str]:
    """The module-level `NAME = "..."` assignments of a parsed test module, as the names a call may pass."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
