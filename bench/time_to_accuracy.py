"""Training wall time until the flagship recipe first reaches 98.5% and 99.0% writer-held-out
validation accuracy.

    python bench/time_to_accuracy.py [--runs 1] [--thresholds 0.985,0.99] [--out bench/time_to_accuracy.json] [-- overrides]

Runs the real `train.py experiment=best` (extra Hydra overrides after `--`, e.g. `trainer=gpu
data.on_device=true` on a GPU) in a subprocess per seed and reads the run's metrics.csv, where
the TrainTimer callback logs `time/train_seconds` (training wall time, validation excluded) at
every validation. Process start-up, data loading and validation are reported separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def one_run(seed: int, overrides: list[str], log_dir: Path) -> dict:
    run_dir = log_dir / f"seed{seed}"
    args = [sys.executable, str(ROOT / "train.py"), "experiment=best", f"seed={seed}", "report=false",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}", *overrides]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: train.py failed (seed {seed}):\n{done.stderr[-2000:]}")
    metrics = pd.read_csv(run_dir / "csv" / "metrics.csv")
    curve = metrics.dropna(subset=["val/acc", "time/train_seconds"])[["epoch", "val/acc", "time/train_seconds"]]
    summary = json.loads((run_dir / "metrics.json").read_text())
    return {"seed": seed, "curve": curve.to_dict(orient="list"), "final_val_acc": summary["val/acc"],
            "train_seconds": summary["train_seconds"], "process_seconds": round(wall, 1)}


def first_reach(curve: dict, threshold: float) -> tuple[float | None, int | None]:
    for acc, seconds, epoch in zip(curve["val/acc"], curve["time/train_seconds"], curve["epoch"]):
        if acc >= threshold:
            return seconds, int(epoch)
    return None, None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="seeds 0..runs-1")
    parser.add_argument("--thresholds", default="0.985,0.99")
    parser.add_argument("--out", default=str(Path(__file__).with_name("time_to_accuracy.json")))
    parser.add_argument("--keep", help="keep the runs (checkpoints, logs) under this folder instead of a temporary one")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides (after --)")
    args = parser.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(args.keep) if args.keep else Path(tmp)
        runs = [one_run(seed, args.overrides, log_dir) for seed in range(args.runs)]
    print(f"experiment=best {' '.join(args.overrides)}  ({args.runs} run(s))")
    print(f"{'seed':>4} {'final val/acc':>14} {'train s':>8} {'process s':>10} " + " ".join(f"{'t@' + str(t):>12}" for t in thresholds))
    table = []
    for run in runs:
        reach = [first_reach(run["curve"], t) for t in thresholds]
        table.append({"seed": run["seed"], "final_val_acc": run["final_val_acc"], "train_seconds": run["train_seconds"],
                      "process_seconds": run["process_seconds"],
                      **{f"seconds_to_{t}": s for t, (s, _) in zip(thresholds, reach)},
                      **{f"epoch_reaching_{t}": e for t, (_, e) in zip(thresholds, reach)}})
        cells = " ".join(f"{(f'{s:.1f} s (ep {e})' if s is not None else 'not reached'):>12}" for s, e in reach)
        print(f"{run['seed']:>4} {run['final_val_acc']:>14.4f} {run['train_seconds']:>8.1f} {run['process_seconds']:>10.1f} {cells}")
    mean_acc = statistics.mean(r["final_val_acc"] for r in runs)
    print(f"mean final val/acc over {len(runs)} run(s): {mean_acc:.4f}")
    Path(args.out).write_text(json.dumps({"overrides": args.overrides, "runs": table, "curves": [r["curve"] for r in runs],
                                          "mean_final_val_acc": mean_acc}, indent=2))


if __name__ == "__main__":
    main()
