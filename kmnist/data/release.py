"""The official Kannada-MNIST release: its six IDX files and their published hashes, how each is
verified, and its conversion to the Kaggle CSV layout with a PROVENANCE.md (licence, citation,
hashes) beside the CSVs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from kmnist.data.idx import read_idx
from kmnist.data.io import DigitTable, table_to_frame
from kmnist.errors import DataError
from kmnist.utils.atomic import atomic_write, atomic_write_csv
from kmnist.utils.hashing import file_sha256

# split -> (images file, labels file)
FILES = {
    "train": ("X_kannada_MNIST_train-idx3-ubyte.gz", "y_kannada_MNIST_train-idx1-ubyte.gz"),
    "test": ("X_kannada_MNIST_test-idx3-ubyte.gz", "y_kannada_MNIST_test-idx1-ubyte.gz"),
    "dig": ("X_dig_MNIST-idx3-ubyte.gz", "y_dig_MNIST-idx1-ubyte.gz"),
}
# The train images have no published hash; their IDX header and shape are checked instead.
KNOWN_SHA256 = {
    "X_kannada_MNIST_test-idx3-ubyte.gz": "4628f3fa7b1d32137449dd356be4601da0c28c420b79f1b745a5134504ca35ca",
    "y_kannada_MNIST_test-idx1-ubyte.gz": "645db5902d290681c9e5b452428e24636963a50a3036c2201240351b88786272",
    "y_kannada_MNIST_train-idx1-ubyte.gz": "ef11e1d3e378fefbe78d4c9913dc9617c83fc5f9240b090121fcc335b5642201",
    "X_dig_MNIST-idx3-ubyte.gz": "abda37c59d3d65ef89505860c18e7b7f7e80bfb2ba361ec1df68949e0c630aaa",
    "y_dig_MNIST-idx1-ubyte.gz": "321fa413dc0f4bc4342da1f3418c656cd346f91d6d479ea67b1a107e920b907b",
}
EXPECTED_COUNTS = {"train": 60000, "test": 10000, "dig": 10240}
OUTPUTS = (
    "train.csv.gz",
    "test.csv.gz",
    "dig.csv.gz",
    "sample_submission.csv",
    "test_labelled.csv.gz",
    "dig_labelled.csv.gz",
)

PROVENANCE = """\
# Kannada-MNIST

Downloaded by `python -m kmnist.data.download` from {base_url}

Dataset: Vinay Uday Prabhu, "Kannada-MNIST: A new handwritten digits dataset for the Kannada
language" (2019), arXiv:1908.01242. https://github.com/vinayprabhu/Kannada_MNIST

Licence: CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/). Credit the author
above and share anything derived from this data under the same licence.

Converted to the Kaggle competition layout: train.csv.gz (label, pixel0..783), test.csv.gz and
dig.csv.gz (id, pixels), sample_submission.csv (id, label), and, because the official release
includes the labels, test_labelled.csv.gz and dig_labelled.csv.gz (id, label, pixels).

Source files (SHA-256):

{hashes}
"""


def check_idx(path: Path, name: str, count: int, checksums: Mapping[str, str]) -> np.ndarray:
    """The file's array if it has the expected hash and shape; DataError naming `name` otherwise."""
    expected = checksums.get(name)
    if expected:
        actual = file_sha256(path)
        if actual != expected:
            raise DataError(f"{name}: SHA-256 mismatch: expected {expected}, got {actual}")
    try:
        array = read_idx(path)
    except DataError as err:
        # read_idx names the temporary file; the user only knows the published name.
        raise DataError(f"{name}: {str(err).removeprefix(f'{path}: ')}") from None
    images = "idx3" in name
    want = (count, 28, 28) if images else (count,)
    if array.shape != want:
        raise DataError(
            f"{name}: IDX {'images' if images else 'labels'} have shape {array.shape}, expected {want}"
        )
    if not images and array.size and array.max() > 9:
        raise DataError(f"{name}: label {int(array.max())} is not a digit 0..9")
    return array


def write_csvs(dest: Path, arrays: dict[str, np.ndarray], base_url: str) -> None:
    """The verified arrays (by file name) as the Kaggle CSVs (OUTPUTS) and PROVENANCE.md in `dest`."""

    def split(key: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = (arrays[name] for name in FILES[key])
        return images, labels.astype(np.int64)

    images, labels = split("train")
    atomic_write_csv(table_to_frame(DigitTable(images, labels)), dest / "train.csv.gz")
    for key in ("test", "dig"):
        images, labels = split(key)
        ids = np.arange(len(images), dtype=np.int64)
        atomic_write_csv(table_to_frame(DigitTable(images, ids=ids)), dest / f"{key}.csv.gz")
        atomic_write_csv(table_to_frame(DigitTable(images, labels, ids)), dest / f"{key}_labelled.csv.gz")
        if key == "test":
            atomic_write_csv(pd.DataFrame({"id": ids, "label": 0}), dest / "sample_submission.csv")

    hashes = "\n".join(f"- {name}: {file_sha256(dest / name)}" for pair in FILES.values() for name in pair)
    text = PROVENANCE.format(base_url=base_url, hashes=hashes)
    atomic_write(dest / "PROVENANCE.md", lambda tmp: tmp.write_text(text))
