"""Shared by the scale-out tests (torchrun, DDP resume, SLURM): the DDP equivalence setting of
test_ddp.py, a one-process reference run on it, and the comparison of two finished runs."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
from test_ddp import LOSS_RTOL, SLICE


def slice_args(data_dir: Path, *extra: str, epochs: int = 2) -> list[str]:
    return [f"paths.data_dir={data_dir}", *SLICE, f"trainer.max_epochs={epochs}", "report=false", *extra]


def run_dirs(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.glob("runs/*/*") if p.is_dir())


def final_state(run_dir: Path) -> tuple[dict, dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return metrics, weights


def assert_same_run(run_dir: Path, reference_dir: Path, exact: bool = False) -> dict:
    """Same epochs and val/acc; val/loss and weights equal up to summation order (DDP against one
    process), or bit for bit (`exact`: a run against the same world size uninterrupted).
    Returns the largest differences seen, for the record."""
    metrics, weights = final_state(run_dir)
    ref_metrics, ref_weights = final_state(reference_dir)
    assert metrics["epochs"] == ref_metrics["epochs"]
    assert metrics["val/acc"] == ref_metrics["val/acc"]
    assert weights.keys() == ref_weights.keys()
    if exact:
        assert metrics["val/loss"] == ref_metrics["val/loss"]
        for key in ref_weights:
            assert torch.equal(weights[key], ref_weights[key]), key
    else:
        assert metrics["val/loss"] == pytest.approx(ref_metrics["val/loss"], rel=LOSS_RTOL)
        for key in ref_weights:
            torch.testing.assert_close(weights[key], ref_weights[key], rtol=1e-4, atol=1e-5, msg=key)
    diffs = [
        float((weights[k].float() - ref_weights[k].float()).abs().max())
        for k in ref_weights
        if weights[k].numel()
    ]
    return {
        "val/acc": metrics["val/acc"],
        "val/loss diff": abs(metrics["val/loss"] - ref_metrics["val/loss"]),
        "max weight diff": max(diffs),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, proc=None, timeout: float = 300):
    """Until `what` (a path, or a function) exists / returns something true, which is returned;
    fails if the process ends first or time runs out."""
    check = what if callable(what) else what.exists
    deadline = time.time() + timeout
    while not (found := check()):
        assert proc is None or proc.poll() is None, f"ended (code {proc.returncode}) before {what} appeared"
        assert time.time() < deadline, f"{what} did not appear within {timeout:.0f} s"
        time.sleep(0.05)
    return found


def env(**extra: str) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", **extra}
