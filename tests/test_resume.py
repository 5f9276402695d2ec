"""A run killed with SIGKILL and resumed from its last checkpoint ends exactly where an
uninterrupted run ends (CPU, deterministic): same weights, same validation metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli

EPOCHS = 4
BATCHES = (
    20  # per epoch: 4 short epochs leave ~3 s between the first checkpoint and the end, ample to kill in
)


def args(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        f"paths.data_dir={data_dir}",
        "data.val_writers=1",
        "model=kresnet",
        "data.batch_size=32",
        f"trainer.max_epochs={EPOCHS}",
        f"trainer.limit_train_batches={BATCHES}",
        "trainer.accelerator=cpu",
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "report=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def final_state(run_dir: Path) -> tuple[dict, dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return metrics, weights


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(data_dir, tmp_path):
    done = run_cli("train.py", *args(data_dir, tmp_path / "straight"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "litlogger" not in done.stdout + done.stderr and "LeafSpec" not in done.stderr
    )  # Lightning's advert and its own deprecation
    straight_metrics, straight_weights = final_state(tmp_path / "straight")

    # Start the same run and kill it without warning once it has saved an epoch.
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args(data_dir, killed)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while (
        not (killed / "checkpoints" / "last.ckpt").exists() and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    saved_epoch = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert saved_epoch < EPOCHS - 1 and not (killed / "metrics.json").exists()

    resumed = run_cli("train.py", *args(data_dir, tmp_path / "resumed", f"ckpt_path={killed}"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_metrics, resumed_weights = final_state(tmp_path / "resumed")

    assert resumed_metrics["epochs"] == straight_metrics["epochs"] == EPOCHS
    assert resumed_metrics["val/acc"] == straight_metrics["val/acc"]
    assert resumed_metrics["val/loss"] == straight_metrics["val/loss"]
    assert straight_weights.keys() == resumed_weights.keys()
    for key in straight_weights:
        assert torch.equal(straight_weights[key], resumed_weights[key]), key


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly_then_resumes(data_dir, tmp_path):
    run = tmp_path / "preempted"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args(data_dir, run, "trainer.max_epochs=50")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not (run / "batch.png").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)  # batch.png is written when training starts
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr and f"ckpt_path={run}" in stderr.strip().splitlines()[-1]
    assert (
        "interrupted at epoch" in stdout + stderr
    )  # written by CheckpointOnInterrupt, not an epoch-end save
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] > 0 and saved["epoch"] < 50

    resumed = run_cli(
        "train.py",
        *args(data_dir, tmp_path / "resumed", "trainer.max_epochs=2", f"ckpt_path={run}"),
        cwd=tmp_path,
    )
    if saved["epoch"] < 2:
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["epochs"] == 2


def test_a_resumed_run_still_competes_with_the_best_epoch_before_the_resume(compose_train, tmp_path):
    """The resumed run writes a new folder, where Lightning forgot the earlier best score: only later
    epochs competed, and metrics.json could name a worse best checkpoint than an uninterrupted run."""
    from omegaconf import open_dict

    from kmnist.tasks.train import train

    first = compose_train("model=cnn", "scheduler=none", "report=false")
    with open_dict(first):
        first.paths.output_dir = str(tmp_path / "first")
    best_before = Path(train(first)[0]["best_ckpt"])
    # Make the earlier best unbeatable: whatever the resumed epoch scores, the best must stay that file.
    ckpt = torch.load(tmp_path / "first" / "checkpoints" / "last.ckpt", weights_only=True)
    (key,) = [
        k for k in ckpt["callbacks"] if k.startswith("ModelCheckpoint") and ckpt["callbacks"][k]["monitor"]
    ]
    state = ckpt["callbacks"][key]
    state["best_model_score"] = torch.tensor(1.0)
    state["best_k_models"] = {str(best_before): torch.tensor(1.0)}
    torch.save(ckpt, tmp_path / "edited.ckpt")

    resumed = compose_train(
        "model=cnn", "scheduler=none", "report=false", f"ckpt_path={tmp_path / 'edited.ckpt'}"
    )
    with open_dict(resumed):
        resumed.paths.output_dir = str(tmp_path / "resumed")
        resumed.trainer.max_epochs = 2
    metrics, _ = train(resumed)
    best = Path(metrics["best_ckpt"])
    assert (
        best.parent == tmp_path / "resumed" / "checkpoints" and best.name == best_before.name
    )  # carried into the new folder
    assert (
        best.read_bytes() == best_before.read_bytes() and best_before.is_file()
    )  # a copy: the first run keeps its own
    assert metrics["epochs"] == 2
