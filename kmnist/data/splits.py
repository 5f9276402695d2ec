"""Deterministic train/validation splits of the training file.

Rows of the official `train.csv.gz` are grouped by writer (row r comes from writer r // 1280,
PROVENANCE.md). The official test writers never appear in training, so only a split that holds
out whole writers estimates test accuracy; a random split mixes each writer into both sides and
reads about 2 points optimistic.
"""

from __future__ import annotations

import numpy as np

from kmnist.errors import ConfigError

ROWS_PER_WRITER = 1280
SPLITS = ("writer", "stratified", "first_n")


def writer_of_row(n_rows: int, rows_per_writer: int = ROWS_PER_WRITER) -> np.ndarray:
    return np.arange(n_rows) // rows_per_writer


def writer_order_share(labels: np.ndarray) -> float:
    """How much of a file keeps the official order, in which each writer's page cycles through the
    digits (label = row mod 10): the share of rows whose label is the most common one among the rows
    at their position mod 10. 1.0 for the official file (and for one relabelled in place, a label
    fixed or all of them permuted); about 0.1 once the rows are shuffled, when a "writer" split
    (writer = row // 1280) would be a random split in disguise."""
    if len(labels) == 0:
        return 1.0
    residue = np.arange(len(labels)) % 10
    counts = np.zeros((10, int(labels.max()) + 1), dtype=np.int64)
    np.add.at(counts, (residue, labels), 1)
    return float(counts.max(axis=1).sum() / len(labels))


def writer_split(
    n_rows: int, val_writers: int, seed: int, rows_per_writer: int = ROWS_PER_WRITER
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out `val_writers` whole writers, chosen by `seed`."""
    writers = writer_of_row(n_rows, rows_per_writer)
    n_writers = int(writers.max()) + 1 if n_rows else 0
    if val_writers < 0 or (val_writers > 0 and val_writers >= n_writers):
        raise ConfigError(
            f"data.val_writers={val_writers}: must be between 0 and {max(n_writers - 1, 0)}: "
            f"the {n_rows:,} rows hold "
            f"{n_writers} writer(s) of up to {rows_per_writer} rows, and one at least must train "
            "(data.split=stratified validates on a share of fewer rows)"
        )
    held_out = np.random.default_rng(seed).choice(n_writers, size=val_writers, replace=False)
    is_val = np.isin(writers, held_out)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random split keeping each class's share: round(val_fraction * count) rows of every class."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"data.val_fraction={val_fraction}: must be in [0, 1)")
    rng = np.random.default_rng(seed)
    val = []
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        val.append(rng.permutation(rows)[: int(round(val_fraction * len(rows)))])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    # Rounded per class, a small share of few rows holds out nothing (or everything): the run would
    # train without validation (no val/acc, no best checkpoint), or on nothing, without a word.
    if val_fraction > 0 and len(val_idx) == 0:
        raise ConfigError(
            f"data.val_fraction={val_fraction}: of {len(labels):,} rows this holds out no row "
            "(round(val_fraction x a class's rows) is 0 for every class); "
            "raise it, use more rows, or data.val_fraction=0 to validate on none"
        )
    if len(labels) and len(val_idx) == len(labels):
        raise ConfigError(
            f"data.val_fraction={val_fraction}: of {len(labels):,} rows every one validates and there is "
            "nothing to train on (round(val_fraction x a class's rows) is all of them); "
            "lower it or use more rows"
        )
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def first_n_split(n_rows: int, val_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed notebook's split: the first `val_rows` rows validate, the rest train."""
    if not 0 <= val_rows < n_rows:
        raise ConfigError(f"data.val_rows={val_rows}: must be between 0 and {n_rows - 1}")
    return np.arange(val_rows, n_rows), np.arange(val_rows)


def make_split(
    split: str, labels: np.ndarray, *, val_writers: int, val_fraction: float, val_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    if split == "writer":
        return writer_split(len(labels), val_writers, seed)
    if split == "stratified":
        return stratified_split(labels, val_fraction, seed)
    if split == "first_n":
        return first_n_split(len(labels), val_rows)
    raise ConfigError(f"data.split={split!r}: expected one of {', '.join(SPLITS)}")
