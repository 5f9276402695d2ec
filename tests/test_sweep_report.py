"""Sweep leaderboard: order, contents, files, the CLI, and the Hydra callback."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from matplotlib.image import imread
from omegaconf import OmegaConf

from kmnist.report.sweep import write_leaderboard
from kmnist.report.sweep_callback import LeaderboardCallback
from kmnist.report.sweep_jobs import find_sweep, gather

ROOT = Path(__file__).resolve().parents[1]
JOBS = {  # job: (overrides, metrics.json or None when the job never finished)
    0: (
        ["model=cnn", "optim.lr=0.01"],
        {"val/acc": 0.95, "val/loss": 0.2, "epochs": 3, "train_seconds": 10.5, "model": "cnn"},
    ),
    1: (
        ["model=resnet", "optim.lr=0.001", "data.batch_size=256", "trainer.max_epochs=30"],
        {"val/acc": 0.99, "val/loss": 0.05, "epochs": 30, "train_seconds": 99.0, "model": "resnet"},
    ),
    2: (["model=mlp"], None),
    3: (
        ["model=dnn"],
        {"val/acc": 0.97, "val/loss": 0.1, "epochs": 5, "train_seconds": 20.25, "model": "dnn"},
    ),
}


def make_sweep(sweep_dir: Path) -> Path:
    for job, (overrides, metrics) in JOBS.items():
        job_dir = sweep_dir / str(job)
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if metrics is not None:
            payload = {**metrics, "best_ckpt": str(job_dir / "checkpoints" / "best.ckpt")}
            (job_dir / "metrics.json").write_text(json.dumps(payload))
    return sweep_dir


@pytest.fixture
def sweep(tmp_path) -> Path:
    return make_sweep(tmp_path / "multirun" / "2026-11-26" / "10-00-00")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kmnist.report.sweep", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gather_sorts_best_first_and_marks_missing(sweep):
    board = gather(sweep)
    assert board["job"].tolist() == [1, 3, 0, 2]
    assert board["status"].tolist() == ["ok", "ok", "ok", "missing metrics"]
    assert math.isnan(board.loc[3, "val/acc"])
    assert board.loc[3, "overrides"] == "model=mlp"
    assert {"job", "overrides", "val/acc", "epochs", "train_seconds", "best_ckpt", "status"} <= set(
        board.columns
    )


def test_best_row_equals_its_metrics_json(sweep):
    best = gather(sweep).iloc[0]
    metrics = json.loads((sweep / "1" / "metrics.json").read_text())
    assert best["val/acc"] == metrics["val/acc"]
    assert best["epochs"] == metrics["epochs"]
    assert best["train_seconds"] == metrics["train_seconds"]
    assert best["best_ckpt"] == metrics["best_ckpt"]
    assert best["overrides"] == "model=resnet optim.lr=0.001 data.batch_size=256 trainer.max_epochs=30"


def test_a_loss_metric_ranks_lowest_first(sweep):
    assert gather(sweep, metric="val/loss")["job"].tolist() == [1, 3, 0, 2]
    assert gather(sweep, metric="val/acc", maximize=False)["job"].tolist() == [0, 3, 1, 2]


def test_write_leaderboard_files(sweep, capsys):
    csv_path = write_leaderboard(sweep)
    assert csv_path == sweep / "leaderboard.csv"
    assert pd.read_csv(csv_path)["job"].tolist() == [1, 3, 0, 2]

    markdown = (sweep / "leaderboard.md").read_text()
    assert "| rank | job | val/acc |" in markdown
    assert "| 1 | 1 | 0.9900 |" in markdown and "| 2 | 3 | 0.9700 |" in markdown
    assert "| 4 | 2 |" in markdown and "missing metrics" in markdown
    assert "| 1 | 1 | 0.9900 |" in capsys.readouterr().out  # printed, too

    pixels = imread(sweep / "leaderboard.png")
    assert min(pixels.shape[:2]) >= 300 and pixels[..., :3].std() > 0


def test_write_leaderboard_rejects_a_folder_without_jobs(tmp_path):
    with pytest.raises(ValueError, match="no job folders"):
        write_leaderboard(tmp_path)


def test_find_sweep_picks_the_newest_sweep_in_a_date_folder(tmp_path):
    make_sweep(tmp_path / "2026-11-26" / "09-00-00")
    newest = make_sweep(tmp_path / "2026-11-26" / "10-00-00")
    assert find_sweep(tmp_path / "2026-11-26") == newest
    assert find_sweep(tmp_path) == newest  # the multirun folder, two levels up
    assert find_sweep(newest) == newest


def test_cli_on_a_sweep_folder(sweep):
    result = run_cli(str(sweep), "--metric", "val/acc")
    assert result.returncode == 0, result.stderr
    assert "| 1 | 1 | 0.9900 |" in result.stdout
    assert (sweep / "leaderboard.csv").is_file() and (sweep / "leaderboard.png").is_file()


def test_cli_on_a_date_folder_reports_its_newest_sweep(tmp_path):
    older = make_sweep(tmp_path / "2026-11-26" / "09-00-00")
    newer = make_sweep(tmp_path / "2026-11-26" / "10-00-00")
    result = run_cli(str(tmp_path / "2026-11-26"))
    assert result.returncode == 0, result.stderr
    assert (newer / "leaderboard.md").is_file()
    assert not (older / "leaderboard.md").exists()


@pytest.mark.parametrize("make_dir", [False, True], ids=["missing folder", "folder without jobs"])
def test_cli_errors_exit_1_with_one_line(tmp_path, make_dir):
    target = tmp_path / "nowhere"
    if make_dir:
        target.mkdir()
    result = run_cli(str(target))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_callback_writes_the_leaderboard_after_a_multirun(sweep):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "optimized_metric": "val/loss"})
    LeaderboardCallback().on_multirun_end(config=config)
    assert pd.read_csv(sweep / "leaderboard.csv")["val/loss"].tolist()[:3] == [0.05, 0.1, 0.2]


def test_callback_never_raises(tmp_path, caplog):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "missing")}}})
    with caplog.at_level(logging.WARNING, logger="kmnist.report.sweep_callback"):
        LeaderboardCallback().on_multirun_end(config=config)
    assert "could not write the sweep leaderboard" in caplog.text


def test_jobs_that_differ_only_in_seed_form_arms_with_mean_and_std(tmp_path):
    from kmnist.report.sweep import arms

    sweep_dir = tmp_path / "grid"
    results = {
        0: ("model=a seed=0", 0.90),
        1: ("model=a seed=1", 0.94),
        2: ("model=b seed=0", 0.95),
        3: ("model=b seed=1", 0.97),
        4: ("model=b seed=2", 0.96),
        5: ("model=c seed=0", None),
    }
    for job, (overrides, acc) in results.items():
        (sweep_dir / str(job) / ".hydra").mkdir(parents=True)
        (sweep_dir / str(job) / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides.split()))
        if acc is not None:
            (sweep_dir / str(job) / "metrics.json").write_text(
                json.dumps({"dev/acc": acc, "train_seconds": 10.0 + job})
            )
    table = arms(gather(sweep_dir, "dev/acc"), "dev/acc")
    assert table["arm"].tolist() == [
        "model=b",
        "model=a",
        "model=c",
    ]  # best mean first; an arm with no finished job last
    assert table["mean"].tolist()[:2] == pytest.approx([0.96, 0.92]) and math.isnan(table["mean"][2])
    assert table["std"].tolist()[:2] == pytest.approx([0.01, 0.028284271])  # sample std over the seeds
    assert table["seeds"].tolist() == [3, 2, 0] and table["train_seconds"].tolist()[:2] == pytest.approx(
        [13.0, 10.5]
    )
    write_leaderboard(sweep_dir, "dev/acc")
    assert pd.read_csv(sweep_dir / "arms.csv")["arm"].tolist() == ["model=b", "model=a", "model=c"]
    board_md = (sweep_dir / "leaderboard.md").read_text()
    assert (
        "| 1 | `model=b` | 0.9600 ± 0.0100 | 3 |" in board_md
        and "| 3 | `model=c` | no finished job | 0 |" in board_md
    )


def test_an_arm_whose_jobs_all_failed_keeps_its_name_and_the_others_theirs(tmp_path):
    """Shared overrides are those of every job: with model=c unfinished, model=a alone is not 'shared'."""
    from kmnist.report.sweep import arms

    sweep_dir = tmp_path / "grid"
    for job, (overrides, acc) in enumerate(
        [
            ("model=a seed=0", 0.9),
            ("model=a seed=1", 0.92),
            ("model=c seed=0", None),
            ("model=c seed=1", None),
        ]
    ):
        (sweep_dir / str(job) / ".hydra").mkdir(parents=True)
        (sweep_dir / str(job) / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides.split()))
        if acc is not None:
            (sweep_dir / str(job) / "metrics.json").write_text(
                json.dumps({"dev/acc": acc, "train_seconds": 1.0, "epochs": 1})
            )
    assert arms(gather(sweep_dir, "dev/acc"), "dev/acc")["arm"].tolist() == ["model=a", "model=c"]


def test_the_leaderboard_ranks_by_the_metric_the_jobs_recorded(tmp_path):
    """Jobs validating on data.val_file alone derive optimized_metric=dev/acc: the composed config's
    val/acc (the callback's fallback) must not turn every finished job into 'missing'."""
    sweep_dir = tmp_path / "sweep"
    for job, acc in enumerate([0.91, 0.95]):
        (sweep_dir / str(job) / ".hydra").mkdir(parents=True)
        (sweep_dir / str(job) / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"optim.lr=0.0{job + 1}"])
        )
        (sweep_dir / str(job) / "metrics.json").write_text(
            json.dumps(
                {
                    "dev/acc": acc,
                    "epochs": 1,
                    "train_seconds": 1.0,
                    "optimized_metric": "dev/acc",
                    "leaderboard_metric": "dev/acc",
                }
            )
        )
    config = OmegaConf.create(
        {
            "hydra": {"sweep": {"dir": str(sweep_dir)}},
            "optimized_metric": "val/acc",
            "leaderboard_metric": "val/acc",
        }
    )
    LeaderboardCallback().on_multirun_end(config=config)
    board = pd.read_csv(sweep_dir / "leaderboard.csv")
    assert board["dev/acc"].tolist() == [0.95, 0.91] and (board["status"] == "ok").all()
    # An explicit metric the jobs did not measure: finished, not "missing".
    assert set(gather(sweep_dir, "val/acc")["status"]) == {"finished without val/acc"}
    # The CLI rebuilds it by the same metric, not by val/acc.
    result = run_cli(str(sweep_dir))
    assert result.returncode == 0, result.stderr
    assert "sorted by dev/acc" in (sweep_dir / "leaderboard.md").read_text()


def test_find_sweep_picks_the_sweep_written_last_whatever_its_name(tmp_path):
    import os

    named = make_sweep(tmp_path / "optuna" / "cnn")  # a hydra.sweep.dir of the user's own naming
    dated = make_sweep(tmp_path / "2026-12-07" / "03-13-54")
    for job in named.iterdir():
        os.utime(job, (1_000_000, 1_000_000))  # written long before the dated one
    assert find_sweep(tmp_path) == dated


@pytest.mark.parametrize("behind", [1.5, 30.0], ids=["2-second file times", "file server's clock behind"])
def test_a_crash_of_this_launch_fails_it_whatever_time_its_file_carries(tmp_path, behind):
    """A job of this launch crashed, but its failed.txt carries a time before the launch (FAT's 2-second
    times, an NFS server's clock behind the submitting host's): the sweep still exits 1 for it; the
    earlier launch's failed.txt, there before this one started, still does not count."""
    import os
    import time

    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "failed.txt").write_text("RuntimeError: an earlier launch's crash\n")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    callback = LeaderboardCallback()
    callback.on_multirun_start(config=config)
    (sweep / "1").mkdir()
    (sweep / "1" / "failed.txt").write_text("RuntimeError: this launch's crash\n")
    stamp = time.time() - behind
    os.utime(sweep / "1" / "failed.txt", (stamp, stamp))
    with pytest.raises(
        SystemExit, match=r"1 job of this sweep crashed \(job 1: RuntimeError: this launch's crash\)"
    ):
        callback.on_multirun_end(config=config)
