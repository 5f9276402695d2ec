"""Optuna search and launcher configs through the real CLI and Hydra's compose API."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest
from conftest import CONF, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra


def tiny_run(tmp_path) -> list[str]:
    """A few CPU steps per job, outputs under tmp_path."""
    return [
        "data.val_writers=1",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "report=false",
        f"paths.log_dir={tmp_path}",
    ]


@pytest.mark.slow
def test_optuna_three_trials_write_a_leaderboard(data_dir, tmp_path):
    done = run_cli(
        "train.py",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        f"paths.data_dir={data_dir}",
        *tiny_run(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "setup plugin alembic" not in done.stdout + done.stderr
    )  # the SQLite storage's noise stays out of the log
    sweep = next((tmp_path / "multirun").glob("*/*"))
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert len(board) == 3 and (board["status"] == "ok").all()
    assert board["val/acc"].is_monotonic_decreasing
    best = json.loads((sweep / str(board["job"][0]) / "metrics.json").read_text())
    assert board["val/acc"][0] == pytest.approx(best["val/acc"])
    # Each trial drew its own hyperparameters from the search space.
    assert board["overrides"].nunique() == 3 and board["overrides"].str.contains("optim.lr=").all()
    assert (sweep / "optimization_results.yaml").is_file()


@pytest.mark.parametrize(
    "overrides,check",
    [
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], lambda h: h.launcher.n_jobs == 2),
        (
            ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            lambda h: (
                h.launcher.partition == "gpu"
                and h.launcher.gpus_per_node == 1
                and "Slurm" in h.launcher._target_
            ),
        ),
        (
            ["hydra/launcher=submitit_local"],
            lambda h: (
                "LocalLauncher" in h.launcher._target_ and h.launcher.submitit_folder.endswith(".submitit/%j")
            ),
        ),
        (
            ["hparams_search=optuna_resnet50", "model=resnet50"],
            lambda h: "model.dropout" not in h.sweeper.params,
        ),
        (
            ["hparams_search=dev_width"],
            lambda h: (
                h.sweeper.params == {"seed": "0,1,2", "model.widths": "[32,64,128],[64,128,256],[96,192,384]"}
            ),
        ),
        (
            ["hparams_search=dev_augment"],
            lambda h: h.sweeper.params["data/augment"] == "strong,kaggle,deform",
        ),
        (
            ["hparams_search=dev_shape"],
            lambda h: (
                h.sweeper.params
                == {"seed": "0,1,2", "data.augment.aspect": "0.0,0.5", "data.augment.stroke": "0.0,0.5"}
            ),
        ),
        (
            ["hparams_search=dev_average"],
            lambda h: h.sweeper.params["callbacks"] == "[default],[default,ema],[default,swa]",
        ),
    ],
)
def test_launcher_and_search_configs_compose(overrides, check):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    assert check(cfg.hydra)


@pytest.mark.slow
def test_submitit_local_runs_each_job_in_a_process_of_its_own(data_dir, tmp_path):
    """hydra/launcher=submitit_local: real processes started through submitit, as on SLURM without a
    cluster."""
    done = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "model=dnn",
        "seed=1,2",
        f"paths.data_dir={data_dir}",
        *tiny_run(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = next((tmp_path / "multirun").glob("*/*"))
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert len(board) == 2 and (board["status"] == "ok").all()
    for job in (0, 1):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert board.loc[board["job"] == job, "val/acc"].item() == pytest.approx(metrics["val/acc"])
    # submitit's folder: one per job, each with the log of the process that ran it.
    logs = list((sweep / ".submitit").glob("*/*_log.err"))
    assert len(logs) == 2 and len({p.parent.name for p in logs}) == 2


@pytest.mark.slow
def test_a_dev_grid_ranks_arms_on_dev_over_seeds(data_dir, tmp_path):
    """2 arms x 3 seeds through the real CLI: the leaderboard ranks by dev/acc, one arm per setting."""

    done = run_cli(
        "train.py",
        "-m",
        "hparams_search=dev_grid",
        "model=dnn",
        "model.dropout=0.0,0.5",
        f"paths.data_dir={data_dir}",
        *tiny_run(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = next((tmp_path / "multirun").glob("*/*"))
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert len(board) == 6 and board["dev/acc"].is_monotonic_decreasing
    arms = pd.read_csv(sweep / "arms.csv")
    assert sorted(arms["arm"]) == ["model.dropout=0.0", "model.dropout=0.5"]  # what differs, less the seed
    assert (arms["seeds"] == 3).all()
    for _, arm in arms.iterrows():
        jobs = board[board["overrides"].str.contains(arm["arm"], regex=False)]
        assert arm["mean"] == pytest.approx(jobs["dev/acc"].mean())
        # Checkpoints are chosen on the held-out writers, never on dev.
        metrics = json.loads((sweep / str(jobs["job"].iloc[0]) / "metrics.json").read_text())
        assert "val/acc" in metrics and "epoch_000-score_" in metrics["best_ckpt"]


@pytest.mark.parametrize("keep_going", [True, False])
def test_a_crashed_job_leaves_the_other_jobs_ranked(data_dir, tmp_path, keep_going):
    """optim.lr=1e38 makes NaNs that detect_anomaly turns into a RuntimeError in backward: a crash, not a
    config mistake. Hydra alone runs the other job, then re-raises and writes no leaderboard."""
    done = run_cli(
        "train.py",
        "-m",
        "model=cnn",
        "scheduler=none",
        "optim.lr=1e38,0.001",
        "+trainer.detect_anomaly=true",
        f"sweep_continue_on_crash={str(keep_going).lower()}",
        f"paths.data_dir={data_dir}",
        *tiny_run(tmp_path),
        cwd=tmp_path,
    )
    sweep = next((tmp_path / "multirun").glob("*/*"))
    if not keep_going:
        assert done.returncode == 1 and "returned nan values" in done.stderr
        assert not (sweep / "leaderboard.csv").exists() and not (sweep / "0" / "failed.txt").exists()
        return
    # Ranked, then the exit status still says a job crashed (scripts check it), in one line naming it.
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "error: 1 job of this sweep crashed "
        "(job 0: RuntimeError: Function 'LogSoftmaxBackward0' returned nan values in its 0th output.); "
        f"the others are ranked in {sweep}/leaderboard.md"
    )
    board = pd.read_csv(sweep / "leaderboard.csv").set_index("job")
    assert board.loc[1, "status"] == "ok" and board.loc[1, "val/acc"] > 0
    assert (
        board.loc[0, "status"]
        == "failed: RuntimeError: Function 'LogSoftmaxBackward0' returned nan values in its 0th output."
    )
    assert (
        "0 of 2" not in (sweep / "leaderboard.md").read_text()
        and "1 of 2 jobs finished" in (sweep / "leaderboard.md").read_text()
    )
    assert (
        "Traceback" in (sweep / "0" / "train.log").read_text()
    )  # the crash keeps its traceback, in the job's log


def test_an_earlier_launchs_crash_stays_ranked_but_does_not_fail_this_launch(data_dir, tmp_path):
    """A resumed Optuna study keeps the folder of a trial that crashed in an earlier launch: every
    later launch exited 1 for it, though none of its own jobs crashed."""
    sweep = tmp_path / "sweep"
    old = sweep / "3"
    (old / ".hydra").mkdir(parents=True)
    (old / ".hydra" / "overrides.yaml").write_text("- optim.lr=1e38\n")
    (old / "failed.txt").write_text("RuntimeError: an earlier launch's crash\n")
    an_hour_ago = time.time() - 3600
    os.utime(old / "failed.txt", (an_hour_ago, an_hour_ago))
    done = run_cli(
        "train.py",
        "-m",
        "model=cnn",
        "optim.lr=0.001",
        f"hydra.sweep.dir={sweep}",
        f"paths.data_dir={data_dir}",
        *tiny_run(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    board = pd.read_csv(sweep / "leaderboard.csv").set_index("job")
    assert (
        board.loc[0, "status"] == "ok"
        and board.loc[3, "status"] == "failed: RuntimeError: an earlier launch's crash"
    )


def test_a_failed_mark_does_not_outlive_a_successful_rerun(tmp_path):
    """A job re-run in the same sweep folder: the leaderboard reads what it did now."""
    from kmnist.report.sweep_jobs import gather

    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (job / "failed.txt").write_text("ValueError: an earlier crash\n")
    (job / "metrics.json").write_text(json.dumps({"val/acc": 0.5, "epochs": 1}))
    assert gather(tmp_path)["status"].tolist() == ["ok"]
    (job / "metrics.json").write_text(json.dumps({"dev/acc": 0.5, "epochs": 1}))
    assert gather(tmp_path)["status"].tolist() == ["finished without val/acc"]
