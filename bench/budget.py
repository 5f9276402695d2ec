"""Validation accuracy of each architecture after a short, fixed CPU training budget.

    python bench/budget.py [--models dnn,cnn,dcnn] [--epochs 1] [--out FILE] [-- extra overrides]

Runs the real `train.py` (default recipe: writer-held-out validation, light augmentation, Adam
with one-cycle) for `--epochs` epochs per model in a subprocess, and collects each run's
`metrics.json`: writer-held-out validation accuracy, training wall time and epochs. Writes
bench/results/budget_<machine>_<date>.json unless --out says otherwise (benchmeta.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmeta import default_out, meta, write_result

ROOT = Path(__file__).resolve().parents[1]


def run(model: str, epochs: int, extra: list[str], log_dir: Path) -> dict:
    args = [
        sys.executable,
        str(ROOT / "train.py"),
        f"model={model}",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        "report=false",
        f"paths.log_dir={log_dir}",
        *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: {model} failed:\n{done.stderr[-2000:]}")
    metrics_file = max(log_dir.glob("runs/*/*/metrics.json"), key=lambda p: p.stat().st_mtime)
    metrics = json.loads(metrics_file.read_text())
    return {
        "model": model,
        "epochs": epochs,
        "val_acc": metrics["val/acc"],
        "train_seconds": metrics["train_seconds"],
        "process_seconds": round(wall, 1),
        "overrides": extra,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="dnn,cnn,dcnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", help="default: bench/results/budget_<machine>_<date>.json")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides (after --)")
    args = parser.parse_args(argv)

    rows = []
    print(f"{'model':<10} {'epochs':>6} {'val/acc (writer)':>17} {'train s':>8} {'process s':>10}")
    with tempfile.TemporaryDirectory() as log_dir:
        for model in args.models.split(","):
            row = run(model, args.epochs, args.overrides, Path(log_dir))
            rows.append(row)
            print(
                f"{model:<10} {args.epochs:>6} {row['val_acc']:>17.4f} {row['train_seconds']:>8.1f} "
                f"{row['process_seconds']:>10.1f}",
                flush=True,
            )
    write_result(args.out or default_out("budget"), {"rows": rows}, meta(__file__, argv))


if __name__ == "__main__":
    main()
