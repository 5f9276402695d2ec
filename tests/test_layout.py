"""The package's shape: layers import downwards only, no import circle, short modules, and the
error classes at the bottom of the import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "kmnist"
# Each layer may import only from layers after it in this list (and from itself).
LAYERS = ["tasks", "engine", "callbacks", "report", "models", "data", "errors", "utils"]
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def kmnist_imports(path: Path) -> set[str]:
    """kmnist modules `path` imports, anywhere in the file (lazy imports inside functions count)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            found.add(module)
            # `from kmnist.engine import distributed` imports the module kmnist.engine.distributed
            found |= {f"{module}.{alias.name}" for alias in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): kmnist_imports(p) for p in PACKAGE.rglob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None. A package's `__init__`
    edge to its own modules is not a circle: Python imports the package first."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if node.startswith(dep + "."):  # a module importing its own package
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_among_kmnist_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_layers_import_only_downwards():
    wrong = []
    for module, deps in import_graph().items():
        if (own := layer(module)) is None:
            continue
        for dep in deps:
            theirs = layer(dep)
            if theirs is not None and LAYERS.index(theirs) < LAYERS.index(own):
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "upward imports: " + ", ".join(sorted(wrong))


def test_every_module_is_short_and_in_a_layer():
    long = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, "modules over ~250 lines: " + ", ".join(long)
    loose = [module_name(p) for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "errors")]
    assert not loose, f"modules outside a layer folder: {loose}"


def test_errors_module_imports_nothing_from_kmnist():
    assert kmnist_imports(PACKAGE / "errors.py") == set()


@pytest.mark.parametrize("error", ["ConfigError", "DataError", "CheckpointError", "ExportError"])
def test_every_error_class_lives_in_errors_only(error):
    defined = [
        p.relative_to(ROOT)
        for p in PACKAGE.rglob("*.py")
        if any(
            isinstance(n, ast.ClassDef) and n.name.endswith("Error") and n.name == error
            for n in ast.walk(ast.parse(p.read_text()))
        )
    ]
    assert defined == [Path("kmnist/errors.py")]


def test_user_error_finds_the_cause_hydra_wrapped():
    from kmnist import errors

    assert errors.user_error(RuntimeError("a bug")) is None
    cause = errors.CheckpointError("x.ckpt: not found")
    wrapped = RuntimeError("instantiate failed")
    wrapped.__cause__ = cause
    assert errors.user_error(wrapped) is cause
