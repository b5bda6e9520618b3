"""Tests for the package's shape: what imports JAX, import cycles, module sizes.

The run readers (`amla_jax.rundir`, `amla_jax.report`, `amla_jax.tasks`) and the spec
must import without JAX or Flax, so that ``amla list`` and ``amla report`` answer in a
fraction of a second; the package must have no import cycle; no module may outgrow 400
lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "amla_jax"
MAX_LINES = 400
JAX_FREE = [
    "amla_jax.rundir",
    "amla_jax.run_record",
    "amla_jax.report",
    "amla_jax.plots",
    "amla_jax.tasks",
    "amla_jax.tasks.cli",
    "amla_jax.selection",
    "amla_jax.errors",
    "amla_jax.faults",
    "amla_jax.strict_json",
    "amla_jax.compose",
    "amla_jax.spec",
    "amla_jax.amla",
    "amla_jax.amla.task_config",
    "amla_jax.config",
    "amla_jax.export",
    "amla_jax.export.cli",
]
# Modules that read runs or queue them: they must not reach the search or the entry
# point, not even inside a function (that is what made `amla status` import JAX).
RUN_READERS = (
    "amla_jax.rundir",
    "amla_jax.run_record",
    "amla_jax.report",
    "amla_jax.tasks",
    "amla_jax.compose",
)
FORBIDDEN_FOR_READERS = ("amla_jax.__main__", "amla_jax.search", "amla_jax.runner")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", JAX_FREE)
def test_module_imports_without_jax_or_flax(module):
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in ('jax', 'flax') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import {module} imports {result.stdout.strip()}"


def test_composing_a_config_imports_no_jax():
    # `amla add` validates its overrides by composing them: that must not start JAX.
    code = (
        "import sys\n"
        "from amla_jax.compose import compose_config\n"
        "assert compose_config(['algo=nac', 'dataset=cifar10']).algo.iterations == 5\n"
        "print(','.join(sorted(m for m in ('jax', 'flax', 'grain') if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"compose_config imports {result.stdout.strip()}"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    is_package = MODULES.get(module, Path()).name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + is_package]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path) -> tuple[set[str], set[str]]:
    """The package modules ``module`` imports: (at module level, inside functions).

    ``from amla_jax.x import y`` counts as importing ``amla_jax.x.y`` where that is a
    module, else ``amla_jax.x``. Imports under ``if TYPE_CHECKING:`` count as module level.
    """
    top: set[str] = set()
    nested: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, child)
                names = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                    for a in child.names
                ]
            for name in names:
                if name in MODULES:
                    (nested if inner else top).add(name)
            visit(child, inner)

    visit(ast.parse(path.read_text()), in_function=False)
    return top, nested


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, ..., a]``), or None if there is none."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == "open":
                return stack[stack.index(succ) :] + [succ]
            if succ not in state and (cycle := dfs(succ)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = {name: imports_of(name, path)[0] - {name} for name, path in MODULES.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_run_readers_never_import_the_search_or_the_entry_point():
    offences = []
    for name, path in MODULES.items():
        if not name.startswith(RUN_READERS):
            continue
        top, nested = imports_of(name, path)
        offences += [f"{name} -> {m}" for m in sorted(top | nested) if m in FORBIDDEN_FOR_READERS]
    assert not offences, offences


def test_imports_of_sees_module_and_function_level_imports():
    top, nested = imports_of("amla_jax.report.write", MODULES["amla_jax.report.write"])
    assert "amla_jax.report.runs" in top and "amla_jax.plots" in nested


def test_no_module_is_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines: {too_long}"
