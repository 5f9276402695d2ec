"""Leaderboard of a Hydra multirun: one row per job folder (SWEEP_DIR/0, /1, ...), best first
(the folders are read by kmnist.report.sweep_jobs), and one per arm when jobs differ only in seed.

    python -m kmnist.report.sweep outputs/multirun/2026-11-26/10-00-00 [--metric val/acc]

also runs by itself after every sweep through kmnist.report.sweep_callback (conf/hydra: callbacks)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

from kmnist.report.files import save_figure
from kmnist.report.leaderboard_chart import leaderboard_figure
from kmnist.report.sweep_jobs import OK, find_sweep, gather, recorded_metric
from kmnist.utils.atomic import atomic_write_csv, atomic_write_text
from kmnist.utils.metrics import lower_is_better


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
    heading = (
        f"# Sweep {sweep_dir}\n\n"
        f"{finished} of {len(board)} jobs finished; sorted by {metric}, best first.\n\n"
    )
    table = markdown_table(board, metric, sweep_dir)
    csv_path = atomic_write_csv(board, sweep_dir / "leaderboard.csv")
    by_arm = arms(board, metric, maximize)
    arm_section = ""
    if (by_arm["seeds"] > 1).any():  # a grid run over seeds: the arms' means are what to compare
        atomic_write_csv(by_arm, sweep_dir / "arms.csv")
        arm_section = f"\n## Arms: jobs that differ only in seed, mean ± std of {metric}\n\n"
        arm_section += arms_markdown(by_arm, metric)
        print(arm_section, end="")
    atomic_write_text(sweep_dir / "leaderboard.md", heading + table + arm_section + _optuna_note(sweep_dir))
    save_figure(
        leaderboard_figure(board, metric, f"sweep {sweep_dir.parent.name}/{sweep_dir.name}"),
        sweep_dir / "leaderboard.png",
    )
    print(table, end="")
    return csv_path


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
