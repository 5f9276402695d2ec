"""Time to a good model: `experiment=quick` against the seed notebook's Keras CNN1, end to end.

    python bench/keras_cnn1.py --keras-python /path/to/venv-with-tensorflow/bin/python

Keras: the notebook's CNN1 (Conv 12@7x7, 32@3x3, 64@3x3 with pooling; Dense 128, 64 with dropout
0.5), Adam (lr 0.001), batch 32, 20 epochs, on the notebook's split (the first 1,000 rows
validate, 59,000 train), no augmentation. kmnist: `python train.py experiment=quick`. Each is one
process, timed by wall clock from its start to its score: imports, CSV loading, training and
predicting the dev file (test_dev.csv.gz: 4 test writers neither ever trained on). TensorFlow is
not a kmnist dependency: `python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu pandas`.
The target (issue #12): quick's dev accuracy >= Keras', in at most half of Keras' wall time.
`--per-epoch` also times CNN1 per epoch in both frameworks (the older comparison). Writes
bench/results/keras_cnn1_quick_<machine>_<date>.json unless --out says otherwise (benchmeta.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmeta import default_out, meta, write_result

ROOT = Path(__file__).resolve().parents[1]


def keras_worker(train_csv: str, epochs: int, dev_csv: str | None = None) -> None:
    """Runs under the TensorFlow interpreter; prints one JSON line."""
    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    frame = pd.read_csv(train_csv)
    y = frame.pop("label").to_numpy()
    x = frame.to_numpy(dtype=np.float32).reshape(-1, 28, 28, 1) / 255.0
    x_train, y_train = x[1000:], y[1000:]
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(12, 7, padding="same", activation="relu"),
            layers.MaxPool2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPool2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPool2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times: list[float] = []
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0, callbacks=[EpochTimes()])
    val_acc = float(model.evaluate(x[:1000], y[:1000], verbose=0)[1])
    result = {"framework": f"keras (tensorflow {tf.__version__})", "epoch_seconds": times, "val_acc": val_acc}
    if dev_csv:
        dev = pd.read_csv(dev_csv)
        dev_y = dev.pop("label").to_numpy()
        dev_x = (
            dev.drop(columns=["id"], errors="ignore").to_numpy(dtype=np.float32).reshape(-1, 28, 28, 1)
            / 255.0
        )
        result["dev_acc"] = float(model.evaluate(dev_x, dev_y, verbose=0)[1])
    print(json.dumps(result))


def kmnist_run(epochs: int, batch_size: int = 32) -> dict:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(ROOT / "train.py"),
            "experiment=notebook_cnn",
            f"trainer.max_epochs={epochs}",
            "report=false",
            f"data.batch_size={batch_size}",
            "trainer.enable_progress_bar=false",
            "~callbacks.show_batch",
            f"hydra.run.dir={tmp}/run",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"error: kmnist run failed:\n{done.stderr[-2000:]}")
        metrics = pd.read_csv(f"{tmp}/run/csv/metrics.csv")
        cumulative = metrics["time/train_seconds"].dropna().tolist()[:epochs]
        val_acc = json.loads(Path(f"{tmp}/run/metrics.json").read_text())["val/acc"]
    import torch

    per_epoch = [b - a for a, b in zip([0.0, *cumulative], cumulative)]
    return {
        "framework": f"kmnist, batch {batch_size} (torch {torch.__version__.split('+')[0]})",
        "epoch_seconds": per_epoch,
        "val_acc": val_acc,
    }


def timed(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done, time.perf_counter() - start


def quick_end_to_end(data_dir: Path, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(ROOT / "train.py"),
            "experiment=quick",
            f"data.dir={data_dir}",
            "trainer.enable_progress_bar=false",
            *overrides,
            f"hydra.run.dir={tmp}/run",
        ]
        done, wall = timed(cmd)
        if done.returncode != 0:
            raise SystemExit(f"error: kmnist run failed:\n{done.stderr[-2000:]}")
        metrics = json.loads(Path(f"{tmp}/run/metrics.json").read_text())
    return {
        "what": "kmnist experiment=quick " + " ".join(overrides),
        "wall_seconds": wall,
        "train_seconds": metrics["train_seconds"],
        "dev_acc": metrics["dev/acc"],
        "val_acc": metrics.get("val/acc"),
    }


def keras_end_to_end(python: str, data_dir: Path, epochs: int) -> dict:
    done, wall = timed(
        [
            python,
            __file__,
            "--worker",
            "--epochs",
            str(epochs),
            "--train-csv",
            str(data_dir / "train.csv.gz"),
            "--dev-csv",
            str(data_dir / "test_dev.csv.gz"),
        ]
    )
    if done.returncode != 0:
        raise SystemExit(f"error: keras run failed:\n{done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "what": f"{row['framework']} CNN1, batch 32, {epochs} epochs",
        "wall_seconds": wall,
        "train_seconds": sum(row["epoch_seconds"]),
        "dev_acc": row["dev_acc"],
        "val_acc": row["val_acc"],
    }


def per_epoch_table(args) -> dict:
    """The older comparison: CNN1 seconds per epoch in both frameworks (validation excluded)."""
    rows = [kmnist_run(args.epochs, 32)]
    done = subprocess.run(
        [
            args.keras_python,
            __file__,
            "--worker",
            "--epochs",
            str(args.epochs),
            "--train-csv",
            args.train_csv,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: keras run failed:\n{done.stderr[-2000:]}")
    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows.append(kmnist_run(args.epochs, 256))  # the same network with a batch size that suits the hardware
    print(
        f"CNN1, Adam, 59,000 training images, {args.epochs} epoch(s); seconds per epoch (validation excluded)"
    )
    print(f"{'framework':<40} {'first epoch':>12} {'last epoch':>11} {'val acc':>8}")
    for row in rows:
        print(
            f"{row['framework']:<40} {row['epoch_seconds'][0]:>12.1f} {row['epoch_seconds'][-1]:>11.1f} "
            f"{row['val_acc']:>8.4f}"
        )
    return {"epochs": args.epochs, "rows": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keras-python", help="interpreter with tensorflow installed")
    parser.add_argument("--epochs", type=int, default=20, help="Keras' epochs (the notebook's 20)")
    parser.add_argument("--data-dir", default=os.environ.get("KMNIST_DATA", "data/kannada_mnist"))
    parser.add_argument("--quick", nargs="*", default=[], help="extra overrides for experiment=quick")
    parser.add_argument(
        "--per-epoch", action="store_true", help="also time CNN1 per epoch in both (2 epochs)"
    )
    parser.add_argument("--train-csv", help=argparse.SUPPRESS)
    parser.add_argument("--dev-csv", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="default: bench/results/keras_cnn1_quick_<machine>_<date>.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return keras_worker(args.train_csv, args.epochs, args.dev_csv)
    if not args.keras_python:
        raise SystemExit("error: --keras-python is required (an interpreter with tensorflow-cpu installed)")
    data_dir = Path(args.data_dir)

    keras = keras_end_to_end(args.keras_python, data_dir, args.epochs)
    quick = quick_end_to_end(data_dir, args.quick)
    print("End to end, one process each, wall clock from start to a dev score (test_dev.csv.gz)")
    print(f"{'run':<62} {'wall s':>7} {'train s':>8} {'dev acc':>8}")
    for row in (keras, quick):
        print(
            f"{row['what']:<62} {row['wall_seconds']:>7.1f} {row['train_seconds']:>8.1f} "
            f"{row['dev_acc']:>8.4f}"
        )
    ratio = quick["wall_seconds"] / keras["wall_seconds"]
    met = quick["dev_acc"] >= keras["dev_acc"] and ratio <= 0.5
    print(
        f"quick takes {ratio:.2f}x Keras' wall time at "
        f"{100 * (quick['dev_acc'] - keras['dev_acc']):+.2f} points of dev "
        f"accuracy: target {'met' if met else 'NOT met'} (>= Keras' accuracy in <= 0.5x its time)"
    )
    result = {"end_to_end": [keras, quick], "wall_ratio": ratio, "target_met": met}
    if args.per_epoch:
        args.epochs, args.train_csv = 2, str(data_dir / "train.csv.gz")
        result["per_epoch"] = per_epoch_table(args)
    what = "keras_cnn1_quick" + ("_per_epoch" if args.per_epoch else "")
    write_result(args.out or default_out(what), result, meta(__file__, argv))


if __name__ == "__main__":
    main()
