"""Multi-process (DDP) training: real `train.py` processes on the CPU with gloo.

Two processes on the same global batch take the same steps as one process (the ranks' k-th
batches together are one process's k-th batch), so the validation metrics match; a DDP job
keeps one run directory written by rank 0 alone, and DDP jobs of a multirun get ports of their own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_cli
from omegaconf import open_dict

from kmnist.data.batches import TensorBatches
from kmnist.data.datamodule import KannadaMNISTDataModule
from kmnist.tasks.train import train

# 1,325 rows: the first 301 validate (151 + 150 rows over two ranks: 3 and 2 batches of 75), the
# other 1,024 train in 16 full global batches of 64, so neither DDP nor one process drops a row.
SLICE = [
    "data.limit_rows=1325",
    "data.split=first_n",
    "data.val_rows=301",
    "data.batch_size=64",
    "data.eval_batch_size=75",
    "model=cnn",
    "model.dropout=0",
    "data/augment=none",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
]
# Measured: identical val/acc and val/loss. The tolerance allows a different summation order only.
LOSS_RTOL = 1e-4


def run_dirs(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.glob("runs/*/*") if p.is_dir())


def files(run_dir: Path) -> set[str]:
    # TensorBoard names its event file after host, pid and time: count it as one name.
    return {
        re.sub(r"events\.out\.tfevents\..*", "events", str(p.relative_to(run_dir)))
        for p in run_dir.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("rows", [4, 7, 301, 1024])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_validation_shards_cover_every_row_exactly_once(rows, world):
    data = (torch.arange(rows),)
    shards = [
        torch.cat([b[0] for b in TensorBatches(data, 75, rank=r, world_size=world, equal_shards=False)])
        for r in range(world)
    ]
    assert sorted(torch.cat(shards).tolist()) == list(range(rows))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1 and all(len(s) for s in shards)


@pytest.mark.parametrize("rows", [1024, 1000, 37])
def test_training_shards_split_each_global_batch(rows):
    """Equal steps on every rank, and the ranks' k-th batches together are one process's k-th batch."""
    data, global_batch = (torch.arange(rows),), 8
    single = [b[0] for b in TensorBatches(data, global_batch, shuffle=True, seed=3, drop_last=True)]
    ranks = [
        [
            b[0]
            for b in TensorBatches(
                data, global_batch // 2, shuffle=True, seed=3, drop_last=True, rank=r, world_size=2
            )
        ]
        for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == rows // global_batch
    for k, batch in enumerate(single):
        assert sorted(torch.cat([ranks[0][k], ranks[1][k]]).tolist()) == sorted(batch.tolist())


def test_global_batch_must_divide_over_the_processes(data_dir):
    dm = KannadaMNISTDataModule(dir=str(data_dir), batch_size=63)
    with pytest.raises(
        ValueError, match=r"data.batch_size=63 is the global batch .* 2 processes.*data.batch_size=62"
    ):
        dm.per_process_batch_size(2)
    assert KannadaMNISTDataModule(dir=str(data_dir), batch_size=64).per_process_batch_size(2) == 32


def test_indivisible_batch_fails_before_any_process_starts(compose_train):
    cfg = compose_train("trainer=ddp")
    with open_dict(cfg):
        cfg.data.batch_size = 33  # after compose_train, which sets its own batch size
    with pytest.raises(ValueError, match="data.batch_size=33 is the global batch"):
        train(cfg)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(data_dir, tmp_path):
    common = [f"paths.data_dir={data_dir}", *SLICE, "trainer.max_epochs=2"]
    one = run_cli("train.py", *common, f"paths.log_dir={tmp_path / 'one'}", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    ddp = run_cli("train.py", "trainer=ddp", *common, f"paths.log_dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    # One run directory: rank 1 makes none of its own.
    [one_dir], [ddp_dir] = run_dirs(tmp_path / "one"), run_dirs(tmp_path / "ddp")
    assert not (tmp_path / "outputs").exists()
    log = (ddp_dir / "train.log").read_text()
    assert (
        "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1" not in log
    )  # DDP ran; rank 0 alone logged

    one_metrics = json.loads((one_dir / "metrics.json").read_text())
    ddp_metrics = json.loads((ddp_dir / "metrics.json").read_text())
    assert ddp_metrics["epochs"] == one_metrics["epochs"] == 2
    assert ddp_metrics["val/acc"] == one_metrics["val/acc"]
    assert ddp_metrics["val/loss"] == pytest.approx(one_metrics["val/loss"], rel=LOSS_RTOL)
    # Rank 0's report evaluates every validation row, not only its own share.
    assert pd.read_csv(ddp_dir / "per_class.csv")["support"].sum() == 301
    assert ddp_metrics["val/accuracy"] == pytest.approx(ddp_metrics["val/acc"], abs=1e-6)
    # Exactly the files a one-process run writes (metrics.json once, no per-rank extras).
    assert files(ddp_dir) == files(one_dir)

    one_weights = torch.load(one_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    ddp_weights = torch.load(ddp_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert one_weights.keys() == ddp_weights.keys()
    for key in one_weights:
        torch.testing.assert_close(
            ddp_weights[key], one_weights[key], rtol=1e-4, atol=1e-5, msg=key
        )  # measured: 5e-7 at most


@pytest.mark.slow
def test_ddp_multirun_jobs_get_their_own_ports_and_folders(data_dir, tmp_path):
    """Three DDP jobs on two joblib workers: two run at once (ports must differ), and one runs
    after another in the same worker (which must launch afresh)."""
    done = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer=ddp",
        f"paths.data_dir={data_dir}",
        *SLICE,
        "trainer.max_epochs=1",
        "report=false",
        "seed=1,2,3",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = list((tmp_path / "multirun").glob("*/*"))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outputs").exists()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert len(board) == 3 and (board["status"] == "ok").all()
    logs = [(sweep / str(job) / "train.log").read_text() for job in range(3)]
    assert all("MEMBER: 1/2" in log for log in logs)  # every job ran as two processes
    # Jobs 0 and 1 ran at the same time; job 2 followed one of them in the same worker.
    ports = [re.search(r"MASTER_PORT=(\d+)", log).group(1) for log in logs]
    assert ports[0] != ports[1], ports
