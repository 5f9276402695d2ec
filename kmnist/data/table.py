"""A table of digits as the readers return it, and the 28x28 layout it comes in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
PIXEL_COLUMNS = [f"pixel{k}" for k in range(N_PIXELS)]


@dataclass
class DigitTable:
    """Images as uint8 (N, 28, 28); labels int64 (N,) or None; ids (N,) or None."""

    images: np.ndarray
    labels: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)
