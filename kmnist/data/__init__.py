"""Data: readers, splits, augmentation, preprocessing, the data module and the downloader.

Exports load lazily: `predict.py` needs the readers, not Lightning (seconds to import)."""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "BatchAugment": "kmnist.data.augment",
    "KannadaMNISTDataModule": "kmnist.data.datamodule",
    "DataError": "kmnist.data.io",
    "DigitTable": "kmnist.data.io",
    "read_digits": "kmnist.data.io",
    "read_idx": "kmnist.data.io",
    "Preprocess": "kmnist.data.preprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
