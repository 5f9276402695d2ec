"""The MNIST IDX reader (the format Kannada-MNIST's original release uses), validated: every
problem raises `DataError` naming the file."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from kmnist.data.io import require_file
from kmnist.data.table import IMAGE_SIDE
from kmnist.errors import DataError

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST IDX file (`.gz` or plain) of unsigned bytes: images (N, 28, 28) or labels (N,)."""
    path = Path(path)
    require_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a gzip whose compressed bytes are damaged
        raise DataError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_DTYPES:
        raise DataError(
            f"{path}: IDX element type 0x{dtype:02x} is not supported (expected 0x08, unsigned byte)"
        )
    if ndim not in (1, 3):
        raise DataError(f"{path}: IDX file has {ndim} dimensions, expected 1 (labels) or 3 (images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{path}: IDX images are {shape[1]}x{shape[2]}, expected 28x28")
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header promises {expected} bytes for shape {shape}, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()
