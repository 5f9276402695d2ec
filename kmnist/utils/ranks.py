"""Which rank this process is when a cluster tool (torchrun, SLURM's srun) started it: read from
the environment alone, before Hydra or torch are imported, so `train.py` can keep ranks 1..N-1
out of the run directory."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def external_rank() -> int | None:
    """The global rank given by torchrun (RANK, with TORCHELASTIC_RUN_ID) or by an srun step of
    several tasks (SLURM_PROCID), as Lightning reads them; None when no cluster tool started us."""
    if "TORCHELASTIC_RUN_ID" in os.environ and "RANK" in os.environ:
        return int(os.environ["RANK"])
    if (
        int(os.environ.get("SLURM_NTASKS", "1")) > 1
        and "SLURM_STEP_ID" in os.environ
        and "SLURM_PROCID" in os.environ
    ):
        return int(os.environ["SLURM_PROCID"])
    return None


def hydra_overrides_for_rank(argv: list[str]) -> list[str]:
    """Overrides that keep a rank other than 0 out of the run directory. Each rank runs Hydra
    itself, and `${now:...}` in hydra.run.dir may fall in another second than rank 0's, making a
    second folder (and two ranks appending to one train.log). Rank 0 owns the run directory and
    every file in it (Lightning broadcasts the checkpoint folder from rank 0); the others log into
    a private folder that is removed when they exit (their warnings and errors reach the console)."""
    rank = external_rank()
    if not rank or "-m" in argv or "--multirun" in argv:
        return []
    scratch = tempfile.mkdtemp(prefix=f"kmnist-rank{rank}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
