"""Leaderboard of a Hydra multirun: one row per job folder (SWEEP_DIR/0, /1, ...), best first.

    python -m kmnist.report.sweep outputs/multirun/2026-11-26/10-00-00 [--metric val/acc]

also runs by itself after every sweep through kmnist.report.sweep_callback (conf/hydra: callbacks)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

from kmnist.errors import FAILED_JOB_FILE
from kmnist.report.files import save_figure
from kmnist.report.leaderboard_chart import leaderboard_figure
from kmnist.utils.atomic import atomic_write_csv, atomic_write_text
from kmnist.utils.metrics import lower_is_better

OK, MISSING = "ok", "missing metrics"


def _status(job: Path, value: float, metrics: dict, metric: str) -> str:
    if math.isfinite(value):
        return OK
    if "epochs" in metrics:  # finished, but this job's run measured something else (e.g. dev/* alone)
        return f"finished without {metric}"
    try:
        return "failed: " + (job / FAILED_JOB_FILE).read_text().strip()
    except OSError:
        return MISSING


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def _read_metrics(job: Path) -> dict:
    try:
        metrics = json.loads((job / "metrics.json").read_text())
    except (OSError, ValueError):  # not written (failed or still running) or cut short
        return {}
    return metrics if isinstance(metrics, dict) else {}


def _read_overrides(job: Path) -> str:
    try:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return ""
    return " ".join(str(o) for o in overrides or [])


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def recorded_metric(sweep_dir: str | os.PathLike) -> str | None:
    """The metric the finished jobs say their sweep ranks by (metrics.json's `leaderboard_metric`, as
    each run resolved it: a run validating on data.val_file alone ranks by dev/acc), when they agree;
    else the sweep's composed `leaderboard_metric` (multirun.yaml); else None."""
    recorded = {
        m["leaderboard_metric"]
        for job in job_dirs(Path(sweep_dir))
        if "leaderboard_metric" in (m := _read_metrics(job))
    }
    if len(recorded) == 1:
        return recorded.pop()
    try:
        composed = yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text()).get("leaderboard_metric")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return composed if isinstance(composed, str) and "${" not in composed else None


def gather(
    sweep_dir: str | os.PathLike, metric: str = "val/acc", maximize: bool | None = None
) -> pd.DataFrame:
    """One row per job folder: job, overrides, <metric>, epochs, train_seconds, best_ckpt, model, status,
    best first (NaN last). `maximize` defaults to False for losses and errors, True otherwise."""
    maximize = not lower_is_better(metric) if maximize is None else maximize
    rows = []
    for job in job_dirs(Path(sweep_dir)):
        metrics = _read_metrics(job)
        value = _number(metrics.get(metric))
        rows.append(
            {
                "job": int(job.name),
                "overrides": _read_overrides(job),
                metric: value,
                "epochs": _number(metrics.get("epochs")),
                "train_seconds": _number(metrics.get("train_seconds")),
                "best_ckpt": metrics.get("best_ckpt") or "",
                "model": metrics.get("model") or "",
                "status": _status(job, value, metrics, metric),
            }
        )
    columns = ["job", "overrides", metric, "epochs", "train_seconds", "best_ckpt", "model", "status"]
    board = pd.DataFrame(rows, columns=columns)
    board["epochs"] = (
        board["epochs"].astype(float).round().astype("Int64")
    )  # whole epochs; <NA> for a failed job (float: an empty board is object-typed)
    # Stable sort on (metric, job) so ties keep job order.
    return board.sort_values(
        [metric, "job"], ascending=[not maximize, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


def arm_name(overrides: str, shared: frozenset[str] = frozenset()) -> str:
    """A job's overrides without its seed and without those every job shares: jobs that differ
    only in seed are one arm."""
    return (
        " ".join(o for o in overrides.split() if not o.startswith("seed=") and o not in shared)
        or "(shared settings)"
    )


def arms(board: pd.DataFrame, metric: str, maximize: bool | None = None) -> pd.DataFrame:
    """One row per arm: mean, std and count of `metric` over its seeds, and mean train seconds, best first."""
    maximize = not lower_is_better(metric) if maximize is None else maximize
    # Shared over every job, finished or not: an arm whose jobs all failed still differs from the others.
    token_sets = [set(o.split()) for o in board["overrides"]]
    shared = frozenset(set.intersection(*token_sets)) if token_sets else frozenset()
    board = board.assign(arm=board["overrides"].map(lambda o: arm_name(o, shared)))
    grouped = board[board["status"] == OK].groupby("arm", sort=False)
    table = pd.DataFrame(
        {
            "mean": grouped[metric].mean(),
            "std": grouped[metric].std(),
            "seeds": grouped[metric].size(),
            "train_seconds": grouped["train_seconds"].mean(),
        }
    )
    # An arm with no finished seed stays in the table (0 seeds, no mean), last.
    table = table.reindex(list(dict.fromkeys(board["arm"]))).rename_axis("arm").reset_index()
    table["seeds"] = table["seeds"].fillna(0).astype(int)
    return table.sort_values(
        ["mean", "arm"], ascending=[not maximize, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


def arms_markdown(table: pd.DataFrame, metric: str) -> str:
    lines = [f"| rank | arm | {metric} mean ± std | seeds | train s (mean) |", "|---:|---|---:|---:|---:|"]
    for rank, (_, row) in enumerate(table.iterrows(), start=1):
        spread = f" ± {row['std']:.4f}" if math.isfinite(row["std"]) else ""
        mean = f"{row['mean']:.4f}{spread}" if math.isfinite(row["mean"]) else "no finished job"
        seconds = f"{row['train_seconds']:.1f}" if math.isfinite(row["train_seconds"]) else ""
        lines.append(f"| {rank} | `{_cell(row['arm'])}` | {mean} | {row['seeds']} | {seconds} |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    text = (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
        else str(value)
    )
    return text.replace("|", "\\|")


def markdown_table(board: pd.DataFrame, metric: str, sweep_dir: Path) -> str:
    """GitHub markdown, rank first, the metric to 4 decimals (pandas' to_markdown needs tabulate)."""

    def checkpoint(path: str) -> str:
        # Relative to the sweep folder when inside it: absolute paths make the table unreadable.
        try:
            return str(Path(path).resolve().relative_to(sweep_dir.resolve())) if path else ""
        except ValueError:
            return path

    header = ["rank", "job", metric, "epochs", "train s", "status", "overrides", "best checkpoint"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * 5 + ["---"] * 3) + "|"]
    for rank, (_, row) in enumerate(board.iterrows(), start=1):
        value, seconds = row[metric], row["train_seconds"]
        cells = [
            rank,
            row["job"],
            f"{value:.4f}" if math.isfinite(value) else "",
            row["epochs"],
            f"{seconds:.1f}" if math.isfinite(seconds) else "",
            row["status"],
            f"`{row['overrides']}`" if row["overrides"] else "",
            checkpoint(row["best_ckpt"]),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _optuna_note(sweep_dir: Path) -> str:
    """Optuna's sweeper leaves optimization_results.yaml with the best parameters it found."""
    try:
        results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ""
    params = results.get("best_params") if isinstance(results, dict) else None
    if not params:
        return ""
    joined = " ".join(f"{k}={v}" for k, v in params.items())
    return f"\nOptuna best: `{joined}` (value {results.get('best_value')})\n"


def write_leaderboard(
    sweep_dir: str | os.PathLike,
    metric: str | None = None,
    maximize: bool | None = None,
    fallback: str = "val/acc",
) -> Path:
    """Write leaderboard.csv, leaderboard.md and leaderboard.png into `sweep_dir`, print the table,
    and return the csv path. `metric` None: the one the jobs recorded (recorded_metric), else `fallback`.
    Raises FileNotFoundError / ValueError for a missing or jobless folder."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no such folder: {sweep_dir}")
    metric = metric or recorded_metric(sweep_dir) or fallback
    board = gather(sweep_dir, metric, maximize)
    if board.empty:
        raise ValueError(f"no job folders (0, 1, ...) in {sweep_dir}")
    finished = int((board["status"] == OK).sum())
    heading = f"# Sweep {sweep_dir}\n\n{finished} of {len(board)} jobs finished; sorted by {metric}, best first.\n\n"
    table = markdown_table(board, metric, sweep_dir)
    csv_path = atomic_write_csv(board, sweep_dir / "leaderboard.csv")
    by_arm = arms(board, metric, maximize)
    arm_section = ""
    if (by_arm["seeds"] > 1).any():  # a grid run over seeds: the arms' means are what to compare
        atomic_write_csv(by_arm, sweep_dir / "arms.csv")
        arm_section = f"\n## Arms: jobs that differ only in seed, mean ± std of {metric}\n\n" + arms_markdown(
            by_arm, metric
        )
        print(arm_section, end="")
    atomic_write_text(sweep_dir / "leaderboard.md", heading + table + arm_section + _optuna_note(sweep_dir))
    save_figure(
        leaderboard_figure(board, metric, f"sweep {sweep_dir.parent.name}/{sweep_dir.name}"),
        sweep_dir / "leaderboard.png",
    )
    print(table, end="")
    return csv_path


def find_sweep(path: str | os.PathLike) -> Path:
    """`path` itself when it holds job folders, else the newest sweep below it (up to two levels,
    e.g. outputs/multirun/DATE or outputs/multirun): Hydra's DATE/TIME names sort by time."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such folder: {path}")
    if job_dirs(path):
        return path
    candidates = [d for pattern in ("*", "*/*") for d in path.glob(pattern) if d.is_dir() and job_dirs(d)]
    if not candidates:
        raise ValueError(f"no sweep job folders (0, 1, ...) in {path} or its subfolders")
    # Newest by when it was written, not by name: `multirun/optuna/cnn` would sort after every DATE folder.
    return max(candidates, key=lambda d: (_written_at(d), d.relative_to(path).parts))


def _written_at(sweep_dir: Path) -> float:
    return max(
        (p.stat().st_mtime for p in (sweep_dir / "multirun.yaml", *job_dirs(sweep_dir)) if p.exists()),
        default=0.0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kmnist.report.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", help="a multirun folder (or a DATE folder holding them)")
    parser.add_argument(
        "--metric",
        default=None,
        help="metrics.json key to rank by (default: the sweep's own "
        "leaderboard_metric, as its jobs recorded it; else val/acc)",
    )
    args = parser.parse_args(argv)
    try:
        sweep_dir = find_sweep(args.sweep_dir)
        csv_path = write_leaderboard(sweep_dir, args.metric)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"\nwrote {csv_path}, leaderboard.md and leaderboard.png in {sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
