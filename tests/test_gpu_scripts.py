"""The one-call GPU lease (bench/gpu_lease.sh -> bench/gpu_accuracy.sh) run end to end on the CPU with
the smoke settings its header gives: a GPU lease is 15 minutes in all, too few to find a broken
script there. Checks the order of steps, the deadline, and what comes back in $OUT."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = (
    "trainer.accelerator=cpu trainer=default data.on_device=false speed.cuda_graph=false "
    "trainer.max_epochs=1 "
    "trainer.limit_train_batches=2 trainer.limit_val_batches=1 data.val_writers=1 report=false"
)


def lease(
    tmp_path: Path, data_dir: Path, deadline: int, **env: str
) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_lease.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **os.environ,
            "OUT": str(out),
            "WORK": str(tmp_path / "work"),
            "KMNIST_DATA": str(data_dir),
            "KMNIST_CACHE": str(tmp_path / "cache"),
            "PYTHON": sys.executable,
            "DEADLINE": str(deadline),
            "EXTRA": SMOKE,
            "SEEDS": "[0]",
            "ROUNDS": "0",
            "PIPELINE_OPTS": "distill.enabled=false tta=none",
            **env,
        },
    )
    return done, out


@pytest.mark.slow
def test_the_lease_runs_the_pipeline_first_and_packs_what_it_made(tmp_path, data_dir):
    done, out = lease(tmp_path, data_dir, deadline=600, GRIDS="")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [
        line.split()[2] for line in done.stdout.splitlines() if line.startswith("=== ") and "(limit" in line
    ] == ["pipeline", "flagship", "tta_views"]
    assert "=== pipeline: rc=0" in done.stdout and "=== flagship: rc=0" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "gpu_accuracy.tar.gz"
    ]  # the archive alone, its temporary renamed
    with tarfile.open(out / "gpu_accuracy.tar.gz") as archive:
        names = set(archive.getnames())
    assert {
        "./pipeline/pipeline.md",
        "./pipeline/submissions/ensemble_test.csv",
        "./pipeline/submissions/ensemble_dig.csv",
        "./flagship_test.csv",
        "./flagship_dig.csv",
        "./tta_views.json",
        "./pipeline.log",
    } <= names
    assert not [
        n for n in names if n.endswith((".ckpt", ".png", ".npy"))
    ]  # what the 16 MiB a file could not carry


@pytest.mark.slow
def test_steps_past_the_deadline_are_skipped_not_cut_mid_write(tmp_path, data_dir):
    """MIN_STEP above the deadline: every step is skipped and said so, and the script still ends cleanly."""
    done, out = lease(tmp_path, data_dir, deadline=20, MIN_STEP="30", GRIDS="dev_width")
    assert done.returncode == 0, done.stderr[-3000:]
    for step in ("pipeline", "grid_dev_width", "tta_views"):
        assert f"=== {step}: skipped" in done.stdout
    assert list(out.iterdir()) == []  # nothing ran, nothing packed
