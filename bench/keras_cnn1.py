"""CNN1 per-epoch training time: kmnist vs the seed notebook's Keras code, side by side.

    python bench/keras_cnn1.py --keras-python /path/to/venv-with-tensorflow/bin/python [--epochs 2]

Both train the same network (Conv 12@7x7, 32@3x3, 64@3x3 with pooling; Dense 128, 64 with
dropout 0.5) with Adam (lr 0.001) at batch 32 on the notebook's split (the first 1,000 rows
validate, 59,000 train), no augmentation. kmnist runs `train.py experiment=notebook_cnn`; its
training time per epoch comes from the TrainTimer callback (validation excluded). Keras runs
`model.fit` in the given interpreter (TensorFlow is not a kmnist dependency:
`python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu pandas`), timed per epoch by a
callback, validation excluded too. The first epoch includes each framework's warm-up, so the
table reports the last epoch as well.
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

ROOT = Path(__file__).resolve().parents[1]


def keras_worker(train_csv: str, epochs: int) -> None:
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
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(12, 7, padding="same", activation="relu"), layers.MaxPool2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPool2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPool2D(2),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
        layers.Dense(64, activation="relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times: list[float] = []
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0, callbacks=[EpochTimes()])
    val_acc = float(model.evaluate(x[:1000], y[:1000], verbose=0)[1])
    print(json.dumps({"framework": f"keras (tensorflow {tf.__version__})", "epoch_seconds": times, "val_acc": val_acc}))


def kmnist_run(epochs: int, batch_size: int = 32) -> dict:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "train.py"), "experiment=notebook_cnn", f"trainer.max_epochs={epochs}", "report=false",
               f"data.batch_size={batch_size}", "trainer.enable_progress_bar=false", "~callbacks.show_batch", f"hydra.run.dir={tmp}/run"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"error: kmnist run failed:\n{done.stderr[-2000:]}")
        metrics = pd.read_csv(f"{tmp}/run/csv/metrics.csv")
        cumulative = metrics["time/train_seconds"].dropna().tolist()[:epochs]
        val_acc = json.loads(Path(f"{tmp}/run/metrics.json").read_text())["val/acc"]
    import torch

    per_epoch = [b - a for a, b in zip([0.0, *cumulative], cumulative)]
    return {"framework": f"kmnist, batch {batch_size} (torch {torch.__version__.split('+')[0]})", "epoch_seconds": per_epoch, "val_acc": val_acc}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keras-python", help="interpreter with tensorflow installed")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-csv", default=str(Path(os.environ.get("KMNIST_DATA", "data/kannada_mnist")) / "train.csv.gz"))
    parser.add_argument("--out", default=str(Path(__file__).with_name("keras_cnn1.json")))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return keras_worker(args.train_csv, args.epochs)
    if not args.keras_python:
        raise SystemExit("error: --keras-python is required (an interpreter with tensorflow-cpu installed)")

    rows = [kmnist_run(args.epochs, 32)]
    done = subprocess.run([args.keras_python, __file__, "--worker", "--epochs", str(args.epochs), "--train-csv", args.train_csv],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: keras run failed:\n{done.stderr[-2000:]}")
    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows.append(kmnist_run(args.epochs, 256))  # the same network with a batch size that suits the hardware

    print(f"CNN1, Adam, batch 32, 59,000 training images, {args.epochs} epoch(s); seconds per epoch (validation excluded)")
    print(f"{'framework':<40} {'first epoch':>12} {'last epoch':>11} {'val acc':>8}")
    for row in rows:
        print(f"{row['framework']:<40} {row['epoch_seconds'][0]:>12.1f} {row['epoch_seconds'][-1]:>11.1f} {row['val_acc']:>8.4f}")
    keras = rows[1]["epoch_seconds"][-1]
    speedup = {row["framework"]: keras / row["epoch_seconds"][-1] for row in rows if row is not rows[1]}
    for name, ratio in speedup.items():
        print(f"{name}: {ratio:.2f}x Keras' speed per epoch (last epoch)")
    Path(args.out).write_text(json.dumps({"epochs": args.epochs, "rows": rows, "speedup_last_epoch": speedup}, indent=2))


if __name__ == "__main__":
    main()
