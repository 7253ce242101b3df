"""Every module runs at least once on the newest ansible-core inside `make test`: some integration test marked
`matrix` (whose runs the newest's controller makes, tests/integration/conftest.py) calls it, read from the tests'
source. A module counts when its FQCN is in a matrix test's body or in a module-level function or constant that body
reaches. A module that a matrix test's playbook only reaches through a role does not count: a role's task can be
skipped (`when`, tags, a failed host before it) without the test noticing, while a direct call's result is what the
test asserts on."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from harness.sources import string_constants

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
PREFIX = "stackops.runbooks."


def is_matrix(mark: ast.expr) -> bool:
    """`pytest.mark.matrix`, called or not."""
    mark = mark.func if isinstance(mark, ast.Call) else mark
    return isinstance(mark, ast.Attribute) and mark.attr == "matrix" and ast.unparse(mark.value) == "pytest.mark"


def module_marked(tree: ast.Module) -> bool:
    """`pytestmark` marks every test of the module `matrix` (one mark or a list of them)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            marks = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return any(is_matrix(mark) for mark in marks)
    return False


def strings(
    node: ast.AST, constants: dict[str, str], functions: dict[str, ast.FunctionDef], seen: set[str]
) -> Iterator[str]:
    """The string literals under node, module-level string constants it names, and those of the module-level
    functions it calls, transitively."""
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child.value
        elif isinstance(child, ast.Name) and child.id in constants:
            yield constants[child.id]
        elif isinstance(child, ast.Name) and child.id in functions and child.id not in seen:
            seen.add(child.id)
            yield from strings(functions[child.id], constants, functions, seen)


def matrix_calls(source: str) -> set[str]:
    """The `stackops.runbooks.*` names (modules and playbooks alike) a test module's matrix-marked tests reach."""
    tree = ast.parse(source)
    constants = string_constants(tree)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    everything = module_marked(tree)
    found = set()
    for name, node in functions.items():
        if name.startswith("test_") and (everything or any(is_matrix(mark) for mark in node.decorator_list)):
            found |= {
                s.removeprefix(PREFIX) for s in strings(node, constants, functions, {name}) if s.startswith(PREFIX)
            }
    return found


@cache
def covered() -> set[str]:
    return set().union(*(matrix_calls(p.read_text()) for p in (REPO / "tests" / "integration").glob("test_*.py")))


def test_the_modules_are_found() -> None:
    assert len(MODULES) >= 10 and "redis_health" in MODULES and "README" not in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_every_module_runs_in_a_matrix_test(module: str) -> None:
    assert module in covered(), (
        f"{module}: no integration test marked `matrix` calls stackops.runbooks.{module}, so `make test` never runs it "
        "on the newest ansible-core; mark a test that calls it (or add one) with @pytest.mark.matrix"
    )


def test_the_reader_follows_helpers_and_constants_of_matrix_tests_only() -> None:
    source = (
        'MODULE = "stackops.runbooks.alpha"\n'
        "def backup(args):\n"
        '    return run_module("stackops.runbooks.beta", args)\n'
        "def helper():\n"
        "    return backup({})\n"
        "@pytest.mark.matrix\n"
        "def test_x():\n"
        "    run_module(MODULE, {})\n"
        "    helper()\n"
        "@pytest.mark.matrix()\n"
        "def test_y():\n"
        '    run_playbook("stackops.runbooks.gamma")\n'
        "@pytest.mark.lab\n"
        "def test_z():\n"
        '    run_module("stackops.runbooks.delta", {})\n'
        "def test_w():\n"
        '    run_module("stackops.runbooks.epsilon", {})\n'
    )
    assert matrix_calls(source) == {"alpha", "beta", "gamma"}
    marked = 'pytestmark = [pytest.mark.lab_hosts("lab1"), pytest.mark.matrix]\n' + source
    assert matrix_calls(marked) == {"alpha", "beta", "gamma", "delta", "epsilon"}
