"""Missing training data at the start of a run: at an interactive terminal with a network, offer
to download it (kmnist.data.download); anywhere else, one line saying where to put it."""

from __future__ import annotations

import sys
from pathlib import Path

from kmnist.errors import DataError
from kmnist.utils.network import reachable


def ensure_data(train_path: Path) -> None:
    """Missing data: offer the download at an interactive terminal with a network, else fail clearly."""
    if train_path.is_file():
        return
    from kmnist.data import download

    message = (
        f"{train_path}: training data not found. Set KMNIST_DATA (or paths.data_dir=...) to the folder "
        f"holding train.csv.gz, or fetch it with `python -m kmnist.data.download --dest {train_path.parent}`"
    )
    if sys.stdin.isatty() and reachable(download.DEFAULT_BASE_URL):
        answer = input(
            f"{train_path} is missing. Download Kannada-MNIST into {train_path.parent} now? [y/N] "
        )
        if answer.strip().lower() in ("y", "yes"):
            download.download(train_path.parent)
            return
    raise DataError(message)
