"""Atomic writers for report files: a reader (or a crashed run) never sees half a file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from kmnist.atomic import atomic_write  # noqa: F401  (re-exported for the report modules)

DPI = 120


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    # format="png" because the temporary name's suffix is ".tmp"; "tight" so no label is clipped.
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
