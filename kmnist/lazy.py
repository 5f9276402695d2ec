"""Lazy package exports: `from kmnist.data import X` imports X's module on first use, so a light
entry point (predict.py, the sweep CLI) does not pay for Lightning or matplotlib imports."""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]):
    """Return (`__getattr__`, `__dir__`) for a package whose names live in the given modules."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
