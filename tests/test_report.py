"""Run reports: hand-computed per-class scores, real (non-blank) PNGs, sparse Lightning metrics.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib import font_manager
from matplotlib.image import imread

from kmnist.report import labels as labels_module
from kmnist.report.batch import plot_batch
from kmnist.report.curves import curves_figure, plot_curves
from kmnist.report.evaluation import evaluate, most_confident_errors
from kmnist.report.labels import digit_labels

EVALUATION_FILES = ["confusion.png", "confusion_normalized.png", "per_class.png", "errors.png"]


def assert_real_png(path, min_side: int = 300) -> None:
    assert path.is_file(), path
    pixels = imread(path)
    assert pixels.shape[0] >= min_side and pixels.shape[1] >= min_side, pixels.shape
    assert pixels[..., :3].std() > 0, f"{path} is blank"


# Three classes used out of ten, plus one wrong prediction of a class that never occurs (5):
#   true:  0 0 0 1 1 2 2 2
#   pred:  0 0 1 1 1 2 2 5
# class 0: tp 2 fp 0 fn 1 -> precision 1,   recall 2/3, F1 2*1*(2/3)/(5/3) = 0.8, support 3
# class 1: tp 2 fp 1 fn 0 -> precision 2/3, recall 1,   F1 0.8,                    support 2
# class 2: tp 2 fp 0 fn 1 -> precision 1,   recall 2/3, F1 0.8,                    support 3
# class 5: tp 0 fp 1 fn 0 -> precision 0, recall 0 (no support), F1 0; the rest all 0.
# accuracy = micro P = R = F1 = 6/8 = 0.75. Macro averages the classes seen in labels or
# predictions (0, 1, 2, 5; as torchmetrics and scikit-learn do):
#   precision (1 + 2/3 + 1 + 0)/4 = 2/3, recall (2/3 + 1 + 2/3 + 0)/4 = 7/12, F1 (0.8*3 + 0)/4 = 0.6
TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PRED = np.array([0, 0, 1, 1, 1, 2, 2, 5])
CONFIDENCE = np.array([0.9, 0.8, 0.95, 0.7, 0.9, 0.99, 0.6, 0.55])  # of each predicted class
EXPECTED_PER_CLASS = {  # digit: (precision, recall, f1, support)
    0: (1.0, 2 / 3, 0.8, 3),
    1: (2 / 3, 1.0, 0.8, 2),
    2: (1.0, 2 / 3, 0.8, 3),
    5: (0.0, 0.0, 0.0, 0),
}
EXPECTED_SUMMARY = {
    "accuracy": 0.75,
    "precision_macro": 2 / 3,
    "recall_macro": 7 / 12,
    "f1_macro": 0.6,
    "precision_micro": 0.75,
    "recall_micro": 0.75,
    "f1_micro": 0.75,
}


def probabilities(preds: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Rows summing to 1 whose argmax is `preds`, with `confidence` on it."""
    probs = np.tile(((1 - confidence) / 9)[:, None], (1, 10))
    probs[np.arange(len(preds)), preds] = confidence
    return probs


def digit_images(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def test_evaluate_matches_hand_computed_scores(tmp_path):
    summary = evaluate(
        probabilities(PRED, CONFIDENCE), TRUE, digit_images(len(TRUE)), tmp_path, title="hand example"
    )

    assert set(summary) == set(EXPECTED_SUMMARY)
    assert all(type(value) is float for value in summary.values())
    assert summary == pytest.approx(EXPECTED_SUMMARY, abs=1e-6)

    per_class = pd.read_csv(tmp_path / "per_class.csv")
    assert list(per_class.columns) == ["digit", "precision", "recall", "f1", "support"]
    assert per_class["digit"].tolist() == list(range(10))
    for digit in range(10):
        expected = EXPECTED_PER_CLASS.get(digit, (0.0, 0.0, 0.0, 0))
        row = per_class.loc[digit, ["precision", "recall", "f1", "support"]].to_numpy(dtype=float)
        assert row == pytest.approx(expected, abs=1e-6), f"digit {digit}"
    for name in EVALUATION_FILES:
        assert_real_png(tmp_path / name)


def test_most_confident_errors_come_first():
    # The errors are index 2 (0 predicted as 1 at 0.95) and index 7 (2 predicted as 5 at 0.55).
    assert most_confident_errors(probabilities(PRED, CONFIDENCE), TRUE).tolist() == [2, 7]
    assert most_confident_errors(probabilities(PRED, CONFIDENCE), TRUE, limit=1).tolist() == [2]


def test_evaluate_without_errors_writes_every_file(tmp_path):
    labels = np.arange(20) % 10
    summary = evaluate(probabilities(labels, np.full(20, 0.9)), labels, digit_images(20), tmp_path)
    assert summary == pytest.approx(dict.fromkeys(EXPECTED_SUMMARY, 1.0))
    assert pd.read_csv(tmp_path / "per_class.csv")["support"].tolist() == [2] * 10
    for name in EVALUATION_FILES:
        assert_real_png(tmp_path / name)


def test_evaluate_rejects_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match="expected probs"):
        evaluate(np.full((4, 10), 0.1), np.zeros(3, dtype=int), digit_images(4), tmp_path)


# As Lightning's CSVLogger writes it: one logged value per row; LearningRateMonitor rows carry only
# the step; the last val row (epoch 2) is the post-fit re-validation of the best checkpoint.
SPARSE_METRICS = """epoch,lr-Adam,step,train/acc,train/loss,val/acc,val/loss
,0.01,0,,,,
0,,99,,,0.90,0.30
0,,99,0.80,0.60,,
,0.001,100,,,,
1,,199,,,0.95,0.20
1,,199,0.93,0.25,,
2,,200,,,0.95,0.20
"""


def write_metrics(tmp_path, text: str):
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    return path


def line_data(ax) -> dict[str, list[float]]:
    return {line.get_label(): list(line.get_xdata()) for line in ax.get_lines()}


def test_curves_per_epoch_train_and_val_and_lr_per_step(tmp_path):
    frame = pd.read_csv(write_metrics(tmp_path, SPARSE_METRICS))
    loss_ax, acc_ax, lr_ax = curves_figure(frame).axes[:3]
    assert line_data(loss_ax) == {"train": [0, 1], "val": [0, 1]}  # re-validation row dropped
    assert list(acc_ax.get_lines()[1].get_ydata()) == [0.90, 0.95]
    assert line_data(lr_ax) == {"Adam": [0, 100]}
    assert lr_ax.get_xlabel() == "step"
    assert lr_ax.get_yscale() == "linear"  # 0.01 -> 0.001 is one decade, not more

    out = plot_curves(tmp_path / "metrics.csv", tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    assert_real_png(out)


def test_curves_without_val_and_with_lr_spanning_decades(tmp_path):
    text = "epoch,lr-SGD/pg1,step,train/acc,train/loss\n,0.1,0,,\n0,,9,0.5,1.5\n,0.0001,10,,\n1,,19,0.7,0.9\n"
    frame = pd.read_csv(write_metrics(tmp_path, text))
    loss_ax, acc_ax, lr_ax = curves_figure(frame).axes[:3]
    assert line_data(loss_ax) == {"train": [0, 1]}
    assert line_data(lr_ax) == {"SGD/pg1": [0, 10]}
    assert lr_ax.get_yscale() == "log"
    assert_real_png(plot_curves(tmp_path / "metrics.csv", tmp_path / "curves.png"))


def test_curves_one_epoch_and_no_lr_column(tmp_path):
    text = "epoch,step,train/acc,train/loss,val/acc,val/loss\n0,3,,,0.4,2.1\n0,3,0.2,2.2,,\n"
    frame = pd.read_csv(write_metrics(tmp_path, text))
    loss_ax, _, lr_ax = curves_figure(frame).axes[:3]
    assert line_data(loss_ax) == {"train": [0], "val": [0]}
    assert loss_ax.get_lines()[0].get_marker() != "None"  # a lone point must be visible
    assert list(loss_ax.get_xticks()) == [0]
    assert lr_ax.get_lines() == []
    assert_real_png(plot_curves(tmp_path / "metrics.csv", tmp_path / "curves.png"))


def test_plot_batch_normalised_three_channel_tensor(tmp_path):
    images = torch.randn(40, 3, 28, 28) * 0.3 - 1.5  # normalised: negative, not 0..1
    images[5] = 2.0  # a constant image must not divide by zero
    out = plot_batch(images, torch.arange(40) % 10, tmp_path / "batch.png", n=36)
    assert out == tmp_path / "batch.png"
    assert_real_png(out)
    with pytest.raises(ValueError):
        plot_batch(images[0], torch.arange(1), tmp_path / "bad.png")


def test_digit_labels_fall_back_to_plain_digits_without_a_kannada_font(monkeypatch):
    # matplotlib's bundled "Last Resort" font claims every code point in its cmap but only draws
    # placeholder boxes: it must not count. DejaVu Sans has no Kannada.
    keep = [f for f in font_manager.fontManager.ttflist if f.name.startswith(("Last Resort", "DejaVu Sans"))]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", keep)
    labels_module.kannada_font.cache_clear()
    try:
        assert labels_module.kannada_font() is None
        assert digit_labels() == [str(d) for d in range(10)]
    finally:
        labels_module.kannada_font.cache_clear()


def test_digit_labels_with_a_kannada_font(monkeypatch):
    monkeypatch.setattr(labels_module, "kannada_font", lambda: "Noto Sans Kannada")
    assert digit_labels()[3] == "3 \u0ce9"
    assert digit_labels()[0] == "0 ೦" and digit_labels()[9] == "9 ೯"
    assert labels_module.label_font_family() == ["sans-serif", "Noto Sans Kannada"]
