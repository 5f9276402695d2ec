"""An annotated heatmap (value written in every cell), shared by the confusion and per-class plots.
matplotlib has no such function; torchmetrics' plot_confusion_matrix rounds loosely and uses a
font too large for ten classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.image import AxesImage


def annotated_heatmap(
    ax: Axes,
    values: np.ndarray,
    fmt: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    cmap: str = "Blues",
    vmin: float | None = None,
    vmax: float | None = None,
    fontsize: float = 9,
    label_family: Sequence[str] | None = None,
) -> AxesImage:
    """Draw `values` (rows x cols) on `ax`, each cell annotated with `format(value, fmt)`."""
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(np.arange(len(col_labels)), labels=col_labels, fontfamily=label_family)
    ax.set_yticks(np.arange(len(row_labels)), labels=row_labels, fontfamily=label_family)
    ax.tick_params(length=0)
    for row, col in np.ndindex(values.shape):
        value = values[row, col]
        red, green, blue, _ = image.cmap(image.norm(value))
        # Dark text on light cells, white on dark ones (perceived luminance).
        colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        ax.text(col, row, format(value, fmt), ha="center", va="center", color=colour, fontsize=fontsize)
    return image
