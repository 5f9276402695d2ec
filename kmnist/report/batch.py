"""Show a batch as the network receives it, like fastai's show_batch: a grid of images with labels."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from kmnist.report.files import save_figure


def _to_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, possibly on the GPU; no torch import needed here
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _display_scale(image: np.ndarray) -> np.ndarray:
    # Normalised inputs have any range; scale each image to [0, 1] so contrast is comparable.
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def plot_batch(
    images, labels, out_png: str | os.PathLike, n: int = 36, title: str = "a training batch"
) -> Path:
    """batch_figure(...) saved as `out_png`."""
    return save_figure(batch_figure(images, labels, n, title), out_png)


def batch_figure(images, labels, n: int = 36, title: str = "a training batch") -> Figure:
    """Grid of the first `n` images of a (B, C, H, W) batch (channel 0, min-max scaled per image,
    grey), each titled with its label."""
    images = _to_numpy(images).astype(np.float32)
    labels = _to_numpy(labels).reshape(-1)
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(
            f"expected images (B, C, H, W) and labels (B,); got {images.shape} and {labels.shape}"
        )
    count = min(n, len(images))
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    fig = Figure(figsize=(max(1.6 * cols, 4), 1.7 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, label in zip(axes, images[:count], labels[:count]):
        ax.imshow(_display_scale(image[0]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(str(label.item() if hasattr(label, "item") else label), fontsize=11)
    lo, hi = float(images.min()), float(images.max())
    fig.suptitle(
        f"{title}\n{count} of {len(images)} images, {images.shape[1]} channel(s), "
        f"{images.shape[2]}x{images.shape[3]}, values {lo:.2f}..{hi:.2f} (shown: channel 0, scaled per image)"
    )
    return fig
