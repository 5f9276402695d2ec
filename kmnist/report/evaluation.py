"""Evaluate predicted probabilities against labels: confusion matrices, per-class scores, and the
most confidently wrong images, written as files into one folder."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from kmnist import NUM_CLASSES
from kmnist.report.files import save_figure
from kmnist.report.heatmap import annotated_heatmap
from kmnist.report.labels import digit_labels, label_font_family
from kmnist.utils.atomic import atomic_write_csv

MAX_ERRORS_SHOWN = 36


def _with_title(title: str, what: str) -> str:
    return f"{title}: {what}" if title else what


def per_class_scores(preds: torch.Tensor, target: torch.Tensor) -> pd.DataFrame:
    """digit, precision, recall, f1, support per class. torchmetrics scores 0 where a class has no
    predictions or no support (zero_division=0) instead of failing."""
    kwargs = dict(num_classes=NUM_CLASSES, average=None)
    return pd.DataFrame(
        {
            "digit": np.arange(NUM_CLASSES),
            "precision": multiclass_precision(preds, target, **kwargs).numpy(),
            "recall": multiclass_recall(preds, target, **kwargs).numpy(),
            "f1": multiclass_f1_score(preds, target, **kwargs).numpy(),
            "support": torch.bincount(target, minlength=NUM_CLASSES).numpy(),
        }
    )


def summary_scores(preds: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Accuracy plus macro and micro precision/recall/F1. Macro averages over the classes that
    occur in labels or predictions (torchmetrics drops classes with no tp, fp or fn)."""
    scores = {"accuracy": multiclass_accuracy(preds, target, num_classes=NUM_CLASSES, average="micro")}
    for average in ("macro", "micro"):
        kwargs = dict(num_classes=NUM_CLASSES, average=average)
        scores[f"precision_{average}"] = multiclass_precision(preds, target, **kwargs)
        scores[f"recall_{average}"] = multiclass_recall(preds, target, **kwargs)
        scores[f"f1_{average}"] = multiclass_f1_score(preds, target, **kwargs)
    # torchmetrics computes in float32 (a perfect macro score reads 1.0000001): six decimals is exact enough.
    return {name: round(float(value), 6) for name, value in scores.items()}


def _confusion_figure(
    matrix: np.ndarray, fmt: str, what: str, title: str, vmax: float | None = None
) -> Figure:
    fig = Figure(figsize=(8, 6.8), layout="constrained")
    ax = fig.subplots()
    labels = digit_labels()
    image = annotated_heatmap(
        ax, matrix, fmt, labels, labels, cmap="Blues", vmin=0, vmax=vmax, label_family=label_font_family()
    )
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(_with_title(title, what))
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def _per_class_figure(scores: pd.DataFrame, summary: dict[str, float], title: str) -> Figure:
    fig = Figure(figsize=(6, 7), layout="constrained")
    ax = fig.subplots()
    rows = [f"{label}  (n={n})" for label, n in zip(digit_labels(), scores["support"])]
    image = annotated_heatmap(
        ax,
        scores[["precision", "recall", "f1"]].to_numpy(),
        ".2f",
        rows,
        ["precision", "recall", "F1"],
        cmap="RdYlGn",
        vmin=0,
        vmax=1,
        fontsize=10,
        label_family=label_font_family(),
    )
    ax.xaxis.tick_top()
    ax.set_ylabel("true digit (support)")
    ax.set_title(
        _with_title(
            title, f"per-class scores\naccuracy {summary['accuracy']:.4f}, macro F1 {summary['f1_macro']:.4f}"
        )
    )
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def most_confident_errors(probs: np.ndarray, labels: np.ndarray, limit: int = MAX_ERRORS_SHOWN) -> np.ndarray:
    """Indices of misclassified examples, highest probability of the wrong class first."""
    preds = probs.argmax(axis=1)
    wrong = np.flatnonzero(preds != labels)
    confidence = probs[wrong, preds[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:limit]]


def _errors_figure(
    probs: np.ndarray, labels: np.ndarray, preds: np.ndarray, images: np.ndarray, title: str
) -> Figure:
    shown = most_confident_errors(probs, labels)
    if len(shown) == 0:
        fig = Figure(figsize=(5, 3), layout="constrained")
        ax = fig.subplots()  # a framed, tick-less panel: "tight" saving would crop a bare text to a sliver
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no errors", ha="center", va="center", fontsize=20, transform=ax.transAxes)
        fig.suptitle(_with_title(title, f"misclassified images (0 of {len(labels)})"))
        return fig
    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(max(2.1 * cols, 5), 2.2 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, shown):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {labels[i]} → pred {preds[i]} ({probs[i, preds[i]]:.2f})", fontsize=9)
    fig.suptitle(
        _with_title(
            title,
            f"most confidently wrong: {len(shown)} shown of {int((preds != labels).sum())} errors "
            f"in {len(labels)} images",
        )
    )
    return fig


def evaluate(probs, labels, images, out_dir: str | os.PathLike, title: str = "") -> dict[str, float]:
    """Write confusion.png, confusion_normalized.png, per_class.csv, per_class.png and errors.png
    into `out_dir` and return accuracy and macro/micro precision, recall and F1 as floats.

    probs: (N, 10) class probabilities; labels: (N,) true digits; images: (N, 28, 28) uint8."""
    probs = np.asarray(probs, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64)
    images = np.asarray(images)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES or not len(probs) == len(labels) == len(images):
        raise ValueError(
            f"expected probs (N, {NUM_CLASSES}), labels (N,), images (N, H, W); "
            f"got {probs.shape}, {labels.shape}, {images.shape}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    preds_t, target_t = torch.from_numpy(probs).argmax(dim=1), torch.from_numpy(labels)
    preds = preds_t.numpy()
    counts = multiclass_confusion_matrix(preds_t, target_t, num_classes=NUM_CLASSES).numpy()
    # Row-normalised = recall per true class; a class with no examples keeps a row of zeros.
    recall_matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    scores = per_class_scores(preds_t, target_t)
    summary = summary_scores(preds_t, target_t)

    save_figure(
        _confusion_figure(counts, "d", f"confusion matrix (counts, {len(labels)} images)", title),
        out_dir / "confusion.png",
    )
    save_figure(
        _confusion_figure(recall_matrix, ".2f", "confusion matrix (row-normalised = recall)", title, vmax=1),
        out_dir / "confusion_normalized.png",
    )
    atomic_write_csv(scores, out_dir / "per_class.csv")
    save_figure(_per_class_figure(scores, summary, title), out_dir / "per_class.png")
    save_figure(_errors_figure(probs, labels, preds, images, title), out_dir / "errors.png")
    return summary
