"""Data: readers, splits, augmentation, preprocessing, the data module and the downloader.

Exports load lazily: `predict.py` needs the readers, not Lightning (seconds to import)."""

from __future__ import annotations

from kmnist.lazy import lazy_exports

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
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
