"""Figures saved atomically, at the reports' one resolution."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from kmnist.utils.atomic import atomic_write

DPI = 120


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    # format="png" because the temporary name's suffix is ".tmp"; "tight" so no label is clipped.
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
