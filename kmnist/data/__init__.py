from kmnist.data.augment import BatchAugment
from kmnist.data.datamodule import KannadaMNISTDataModule
from kmnist.data.io import DataError, DigitTable, read_digits, read_idx
from kmnist.data.preprocess import Preprocess

__all__ = ["BatchAugment", "DataError", "DigitTable", "KannadaMNISTDataModule", "Preprocess", "read_digits", "read_idx"]
