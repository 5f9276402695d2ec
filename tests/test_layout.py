"""The package's shape: the error classes sit at the bottom of the import graph."""

from __future__ import annotations

import ast

from conftest import ROOT


def kmnist_imports(path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    return [name for name in names if name.split(".")[0] == "kmnist"]


def test_errors_module_imports_nothing_from_kmnist():
    assert kmnist_imports(ROOT / "kmnist" / "errors.py") == []


def test_every_error_class_is_the_one_in_errors():
    from kmnist import errors
    from kmnist.data import io
    from kmnist import inference

    assert io.DataError is errors.DataError and inference.CheckpointError is errors.CheckpointError
    assert errors.user_error(RuntimeError("wrapped")) is None
    cause = errors.CheckpointError("x.ckpt: not found")
    wrapped = RuntimeError("instantiate failed")
    wrapped.__cause__ = cause
    assert errors.user_error(wrapped) is cause
