"""Horizontal bar chart of a sweep's jobs, best highlighted, labelled by their overrides."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

MAX_JOBS_SHOWN = 40
LABEL_WIDTH = 48  # characters per line of an override label before wrapping


def _job_label(row: pd.Series) -> str:
    overrides = row["overrides"] or "(no overrides)"
    return f"#{row['job']}: " + "\n".join(textwrap.wrap(overrides, LABEL_WIDTH, break_long_words=True))


def leaderboard_figure(board: pd.DataFrame, metric: str, title: str) -> Figure:
    """`board` is sorted best first; the best job sits on top."""
    shown = board.head(MAX_JOBS_SHOWN).iloc[::-1]  # barh draws bottom-up
    labels = [_job_label(row) for _, row in shown.iterrows()]
    line_count = sum(label.count("\n") + 1 for label in labels)
    fig = Figure(figsize=(11, 1.4 + 0.26 * line_count + 0.2 * len(shown)), layout="constrained")
    ax = fig.subplots()
    values = shown[metric].to_numpy(dtype=float)
    finished = np.isfinite(values)
    best = board[metric].first_valid_index()
    colours = ["tab:orange" if index == best else "tab:blue" for index in shown.index]
    positions = np.arange(len(shown))
    ax.barh(positions[finished], values[finished], color=np.array(colours)[finished], height=0.7)
    ax.set_yticks(positions, labels=labels, fontsize=9)
    ax.set_ylim(-0.6, len(shown) - 0.4)  # room for a bottom row without a bar

    if finished.any():
        low, high = values[finished].min(), values[finished].max()
        # Sweep scores often differ in the third decimal: zoom the axis to the scores' range,
        # and write each value on its bar so the zoom can't mislead.
        pad = (high - low) * 0.25 or max(abs(high) * 0.02, 1e-3)
        left = low - pad if low - pad > 0 or low < 0 else 0
        ax.set_xlim(left, high + pad)
        for position, value in zip(positions[finished], values[finished]):
            ax.text(value, position, f" {value:.4f}", va="center", ha="left", fontsize=9)
    for position in positions[~finished]:
        ax.text(
            0.01,
            position,
            "no result (missing metrics)",
            va="center",
            ha="left",
            color="grey",
            fontsize=9,
            transform=ax.get_yaxis_transform(),
        )
    ax.set_xlabel(metric + ("  (axis zoomed to the scores' range)" if finished.sum() > 1 else ""))
    ax.grid(axis="x", alpha=0.3)
    more = f", best {MAX_JOBS_SHOWN} of {len(board)} shown" if len(board) > MAX_JOBS_SHOWN else ""
    ax.set_title(f"{title}\n{metric} per job (best in orange{more})")
    return fig
