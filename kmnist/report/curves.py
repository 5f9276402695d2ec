"""Training curves from Lightning's CSVLogger metrics.csv: loss, accuracy and learning rate."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kmnist.report.files import save_figure

SPLITS = ("train", "val", "dev")  # dev: data.val_file, when the run has one


def _metric_column(frame: pd.DataFrame, split: str, name: str) -> str | None:
    # `on_epoch=True` together with `on_step=True` makes Lightning log "<name>_epoch" instead.
    for column in (f"{split}/{name}", f"{split}/{name}_epoch"):
        if column in frame and frame[column].notna().any():
            return column
    return None


def _per_epoch(frame: pd.DataFrame, column: str, last_train_epoch: float | None) -> pd.Series:
    rows = frame[["epoch", column]].dropna()
    series = rows.groupby("epoch")[column].last()
    if last_train_epoch is not None:
        # The project re-validates the best checkpoint after fit(); Lightning logs that at
        # epoch = max_epochs, one past the last trained epoch. It is not a point on the curve.
        series = series[series.index <= last_train_epoch]
    return series


def _last_train_epoch(frame: pd.DataFrame) -> float | None:
    train_columns = [c for c in frame if c.startswith("train/")]
    epochs = frame.loc[frame[train_columns].notna().any(axis=1), "epoch"].dropna() if train_columns else []
    return float(epochs.max()) if len(epochs) else None


def _show_x_values(ax: Axes, xs: np.ndarray) -> None:
    """Whole-number ticks; a single x (a 1-epoch run) gets one tick, not matplotlib's +-0.05 span."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    unique = np.unique(xs)
    if len(unique) == 1:
        ax.set_xlim(unique[0] - 1, unique[0] + 1)
        ax.set_xticks(unique)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_split_metric(ax: Axes, frame: pd.DataFrame, name: str, label: str) -> None:
    ax.set_title(label)
    if "epoch" not in frame:
        _no_data(ax, label)
        return
    last_train_epoch = _last_train_epoch(frame)
    xs = []
    for split, marker in zip(SPLITS, ("o", "s", "^")):
        column = _metric_column(frame, split, name)
        if column is None:
            continue
        series = _per_epoch(frame, column, last_train_epoch)
        ax.plot(series.index, series.values, marker=marker, label=split)
        xs.extend(series.index)
    if not xs:
        _no_data(ax, label)
        return
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    _show_x_values(ax, np.asarray(xs))
    ax.grid(alpha=0.3)
    ax.legend()


def _plot_learning_rate(ax: Axes, frame: pd.DataFrame) -> None:
    ax.set_title("learning rate")
    lr_columns = [c for c in frame if c.startswith("lr-") and frame[c].notna().any()]
    lr_rows = frame[lr_columns].notna().any(axis=1)
    # Prefer the step (finer than the epoch); LearningRateMonitor fills it on its rows.
    x_column = next(
        (c for c in ("step", "epoch") if c in frame and frame.loc[lr_rows, c].notna().any()), None
    )
    if not lr_columns or x_column is None:
        _no_data(ax, "learning rate")
        return
    values, xs = [], []
    for column in lr_columns:
        rows = frame[[x_column, column]].dropna()
        ax.plot(
            rows[x_column], rows[column], marker=".", drawstyle="steps-post", label=column.removeprefix("lr-")
        )
        values.append(rows[column].to_numpy())
        xs.append(rows[x_column].to_numpy())
    values = np.concatenate(values)
    if len(values) and values.min() == values.max():
        ax.set_title(f"learning rate (constant {values[0]:g})")
    positive = values[values > 0]
    if len(positive) and positive.max() / positive.min() > 10:
        ax.set_yscale("log")
    ax.set_xlabel(x_column)
    ax.set_ylabel("learning rate")
    _show_x_values(ax, np.concatenate(xs))
    ax.grid(alpha=0.3)
    ax.legend()


def curves_figure(frame: pd.DataFrame, title: str = "") -> Figure:
    """Three panels: loss and accuracy per epoch (train, val and dev), learning rate per step."""
    fig = Figure(figsize=(15, 4.5), layout="constrained")
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    _plot_split_metric(loss_ax, frame, "loss", "loss")
    _plot_split_metric(acc_ax, frame, "acc", "accuracy")
    _plot_learning_rate(lr_ax, frame)
    fig.suptitle(title or "training curves")
    return fig


def plot_curves(metrics_csv: str | os.PathLike, out_png: str | os.PathLike, title: str = "") -> Path:
    """Plot a CSVLogger metrics.csv (sparse rows: each logged value on its own row) to `out_png`."""
    return save_figure(curves_figure(pd.read_csv(metrics_csv), title), out_png)
