"""Training wall time until the flagship recipe first reaches given accuracies on the dev writers
(`dev/acc`: test_dev.csv.gz, which experiment=best* validate on), and its final accuracy there,
mean ± std over seeds. `--metric val/acc` times the held-out training writers instead.

    python bench/time_to_accuracy.py [--experiment best] [--runs 1] [--metric dev/acc]
                                     [--thresholds 0.98,0.985] [--out FILE] [--keep DIR] [-- overrides]

Runs the real `train.py experiment=best` (or `--experiment best_gpu`; extra Hydra overrides after
`--`) for seeds 0..runs-1 as one Hydra multirun in one process (so imports and the data load are
paid once), and reads each run's metrics.csv, where the TrainTimer callback logs
`time/train_seconds` (training wall time, validation excluded) and `time/epoch_seconds` at every
validation. Warm-up (cuDNN autotuning, torch.compile) is the first epoch's excess over the median
later epoch; times to accuracy are given with and without it. Process time covers everything.
Writes bench/results/time_to_accuracy_<experiment>_<machine>_<date>.json unless --out says
otherwise (benchmeta.py).
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
import torch
from benchmeta import default_out, meta, write_result

ROOT = Path(__file__).resolve().parents[1]


def run_seeds(
    experiment: str, seeds: list[int], overrides: list[str], log_dir: Path, metric: str
) -> tuple[list[dict], float]:
    """One `train.py -m` process over the seeds; returns each run's curve and the process time."""
    args = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"experiment={experiment}",
        f"seed={','.join(map(str, seeds))}",
        "report=false",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={log_dir}",
        "hydra.sweep.subdir=seed${seed}",
        *overrides,
    ]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: train.py failed:\n{done.stderr[-3000:]}")
    return [read_run(seed, log_dir / f"seed{seed}", metric) for seed in seeds], wall


def read_run(seed: int, run_dir: Path, metric: str) -> dict:
    metrics = pd.read_csv(run_dir / "csv" / "metrics.csv")
    if metric not in metrics:
        raise SystemExit(
            f"error: --metric {metric}: the run logged no such metric "
            f"(logged: {', '.join(metrics.columns)}); "
            "dev/acc needs data.val_file"
        )
    columns = ["epoch", metric, "time/train_seconds"] + (
        ["time/epoch_seconds"] if "time/epoch_seconds" in metrics else []
    )
    # The timer logs at validation; with two validation sets each metric has its own rows: merge per epoch.
    curve = (
        metrics[columns].groupby("epoch", as_index=False).max().dropna(subset=[metric, "time/train_seconds"])
    )
    summary = json.loads((run_dir / "metrics.json").read_text())
    epochs = curve["time/epoch_seconds"].tolist() if "time/epoch_seconds" in curve else []
    warmup = max(epochs[0] - statistics.median(epochs[1:]), 0.0) if len(epochs) > 1 else 0.0
    return {
        "seed": seed,
        "curve": curve.to_dict(orient="list"),
        "final": summary[metric],
        "final_val_acc": summary.get("val/acc"),
        "final_dev_acc": summary.get("dev/acc"),
        "train_seconds": summary["train_seconds"],
        "warmup_seconds": round(warmup, 2),
        "best_ckpt": summary.get("best_ckpt"),
    }


def first_reach(curve: dict, metric: str, threshold: float) -> tuple[float | None, int | None]:
    for acc, seconds, epoch in zip(curve[metric], curve["time/train_seconds"], curve["epoch"]):
        if acc >= threshold:
            return seconds, int(epoch)
    return None, None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", default="best", help="the experiment config to time (best, best_gpu)")
    parser.add_argument("--runs", type=int, default=1, help="seeds 0..runs-1")
    parser.add_argument(
        "--metric", default="dev/acc", help="dev/acc (the dev writers) or val/acc (held-out training writers)"
    )
    parser.add_argument("--thresholds", default="0.98,0.985")
    parser.add_argument(
        "--out", help="default: bench/results/time_to_accuracy_<experiment>_<machine>_<date>.json"
    )
    parser.add_argument(
        "--keep", help="keep the runs (checkpoints, logs) under this folder instead of a temporary one"
    )
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides (after --)")
    args = parser.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(args.keep) if args.keep else Path(tmp)
        runs, process_seconds = run_seeds(
            args.experiment, list(range(args.runs)), args.overrides, log_dir, args.metric
        )
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"experiment={args.experiment} {' '.join(args.overrides)}  ({args.runs} run(s), {device}, "
        f"{process_seconds:.1f} s process time in all)"
    )
    print(
        f"{'seed':>4} {'final ' + args.metric:>14} {'train s':>8} {'warm-up s':>9} "
        + " ".join(f"{'t@' + str(t) + ' (-warm-up)':>24}" for t in thresholds)
    )
    table = []
    for run in runs:
        reach = [first_reach(run["curve"], args.metric, t) for t in thresholds]
        warm = run["warmup_seconds"]
        table.append(
            {
                "seed": run["seed"],
                "metric": args.metric,
                "final": run["final"],
                "final_val_acc": run["final_val_acc"],
                "final_dev_acc": run["final_dev_acc"],
                "train_seconds": run["train_seconds"],
                "warmup_seconds": warm,
                "best_ckpt": run["best_ckpt"],
                **{f"seconds_to_{t}": s for t, (s, _) in zip(thresholds, reach)},
                **{
                    f"seconds_to_{t}_without_warmup": (round(s - warm, 2) if s is not None else None)
                    for t, (s, _) in zip(thresholds, reach)
                },
                **{f"epoch_reaching_{t}": e for t, (_, e) in zip(thresholds, reach)},
            }
        )
        cells = " ".join(
            f"{(f'{s:.1f} s ({s - warm:.1f} s) ep {e}' if s is not None else 'not reached'):>24}"
            for s, e in reach
        )
        print(f"{run['seed']:>4} {run['final']:>14.4f} {run['train_seconds']:>8.1f} {warm:>9.1f} {cells}")
    finals = [r["final"] for r in runs]
    spread = f" ± {statistics.stdev(finals):.4f} (std)" if len(finals) > 1 else ""
    print(
        f"final {args.metric} of the kept checkpoints over {len(runs)} run(s): "
        f"{statistics.mean(finals):.4f}{spread}"
    )
    result = {
        "experiment": args.experiment,
        "overrides": args.overrides,
        "device": device,
        "metric": args.metric,
        "process_seconds": round(process_seconds, 1),
        "runs": table,
        "curves": [r["curve"] for r in runs],
        "mean_final": statistics.mean(finals),
        "std_final": statistics.stdev(finals) if len(finals) > 1 else None,
    }
    out = args.out or default_out(f"time_to_accuracy_{args.experiment}")
    write_result(out, result, meta(__file__, argv))


if __name__ == "__main__":
    main()
