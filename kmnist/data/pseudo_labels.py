"""Pseudo-labels: the rows a model predicts confidently enough, written as a labelled training CSV
(label, pixel0..783), the input of a second training stage (`train.py data.extra_train=[PATH]`).
predict.py writes them with `pseudo_label_threshold=`, the pipeline once per round."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kmnist.data.io import DigitTable, table_to_frame
from kmnist.utils.atomic import atomic_write_csv

log = logging.getLogger(__name__)


def write_pseudo_labels(table: DigitTable, probs: np.ndarray, threshold: float, path: Path) -> dict:
    """Write the rows whose top probability reaches `threshold`, labelled with their prediction, to
    `path`; returns what was written (metrics.json's `pseudo_label*` keys); no file when no row does."""
    keep = probs.max(axis=1) >= threshold
    if not keep.any():  # an empty file could not be trained on: say so rather than write one
        log.warning("pseudo-labels: no row reaches confidence %.3f; nothing written", threshold)
        return {"pseudo_labels": None, "pseudo_label_rows": 0, "pseudo_label_threshold": threshold}
    labelled = DigitTable(
        images=table.images[keep], labels=probs.argmax(axis=1)[keep].astype(np.int64), ids=None
    )
    atomic_write_csv(table_to_frame(labelled), path)
    log.info(
        "pseudo-labels: %d of %d rows at confidence >= %.3f -> %s",
        keep.sum(),
        len(keep),
        threshold,
        path.resolve(),
    )
    return {
        "pseudo_labels": str(path.resolve()),
        "pseudo_label_rows": int(keep.sum()),
        "pseudo_label_threshold": threshold,
    }
