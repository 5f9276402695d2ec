"""The files a training run reads, found and checked before any tensor is built: a name is taken
as given when it exists (or is absolute), else under data.dir; data.extra_train and data.val_file
must be labelled CSVs; and no training file may be the data.val_file, or dev/acc would score
images the model was trained on."""

from __future__ import annotations

import os
from pathlib import Path

from kmnist.data.io import DigitTable, read_digits
from kmnist.errors import DataError
from kmnist.utils.hashing import file_sha256


class TrainingFiles:
    """data.dir and the parse cache (data.cache_dir, data.use_cache): where each file is, and how
    it is read."""

    def __init__(self, dir: str | os.PathLike, cache_dir: str | None = None, use_cache: bool = True):
        self.dir = Path(dir)
        self.cache_dir, self.use_cache = cache_dir, use_cache

    def path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() or path.exists() else self.dir / name

    def read(self, name: str) -> DigitTable:
        return read_digits(self.path(name), cache_dir=self.cache_dir, use_cache=self.use_cache)

    def _where(self, name: str) -> str:
        return "" if Path(name).is_absolute() else f" here or in paths.data_dir={self.dir}"

    def train_table(self, name: str) -> DigitTable:
        table = self.read(name)
        if table.labels is None:
            raise DataError(f"{self.path(name)}: has no `label` column, so it cannot be used for training")
        return table

    def extra_tables(self, names: list[str]) -> list[DigitTable]:
        """data.extra_train: labelled rows (e.g. pseudo-labels from predict.py) for the training split."""
        for name in names:  # named as given: read() would name it under data.dir and hint at the download
            if not self.path(name).is_file():
                raise DataError(
                    f"{name}: data.extra_train not found{self._where(name)} (a labelled CSV such as the "
                    "pseudo_labels.csv.gz that predict.py pseudo_label_threshold=... writes)"
                )
        extra = [self.read(name) for name in names]
        for name, table in zip(names, extra):
            if table.labels is None:
                raise DataError(
                    f"{self.path(name)}: data.extra_train needs a `label` column (pseudo_labels.csv.gz from "
                    "predict.py pseudo_label_threshold=... has one)"
                )
        return extra

    def val_table(self, name: str) -> DigitTable:
        """data.val_file: a labelled file validated beside (or instead of) the held-out writers."""
        path = self.path(name)
        if not path.is_file():
            raise DataError(
                f"{name}: data.val_file not found{self._where(name)} (a labelled CSV such as "
                "test_dev.csv.gz; data.val_file=null validates on the held-out writers only)"
            )
        table = read_digits(path, cache_dir=self.cache_dir, use_cache=self.use_cache)
        if table.labels is None:
            raise DataError(
                f"{path}: data.val_file needs a `label` column to be scored (it has id and pixels only)"
            )
        return table

    def refuse_training_on(self, val_name: str, training: list[tuple[str, str]]) -> None:
        """dev/acc is an estimate on unseen writers only while no training file (`training`: option,
        name) is the val_file itself, by path or by content."""
        val_path = self.path(val_name)
        for option, name in training:
            path = self.path(name)
            same = path.resolve() == val_path.resolve() or (
                path.stat().st_size == val_path.stat().st_size and file_sha256(path) == file_sha256(val_path)
            )
            if same:
                raise DataError(
                    f"{path}: {option} is the data.val_file ({val_path}): dev/acc would score images "
                    "the model was trained on with their labels; validate on another file or drop it "
                    "from training"
                )
