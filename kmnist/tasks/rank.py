"""Rank 1..N-1 of a DDP job that rank 0 started (`kmnist.engine.distributed`): run as
`python -m kmnist.tasks.rank`, never imported. Its resolved config arrives on stdin."""

from __future__ import annotations

import logging
import sys

from omegaconf import OmegaConf

from kmnist.tasks.train import train
from kmnist.tasks.wrapper import task_wrapper


def main() -> None:
    cfg = OmegaConf.create(sys.stdin.read())
    # Rank 0 tells the story; the other ranks speak up only for warnings and errors.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    task_wrapper(train)(cfg)


if __name__ == "__main__":
    main()
