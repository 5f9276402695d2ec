"""The header of a Kaggle-layout CSV: optional `id`/`label`, then pixel0..pixel783. A file that
differs is refused with one line naming the first column at fault (or the separator it uses)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from kmnist.data.table import N_PIXELS, PIXEL_COLUMNS
from kmnist.errors import DataError
from kmnist.utils.shown import shown

META_COLUMNS = ("id", "label")
SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "pipes"}


def csv_columns(path: Path) -> list[str]:
    """The header's column names, stripped of spaces and of a UTF-8 byte-order mark."""
    import pandas as pd  # here only: a cached read never parses a CSV

    try:
        header = pd.read_csv(path, nrows=0)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: the file is empty (expected a header `label,pixel0..pixel783` or `id,pixel0..pixel783`)"
        ) from None
    except (
        OSError,
        EOFError,
        UnicodeDecodeError,
        gzip.BadGzipFile,
        zlib.error,
        pd.errors.ParserError,
    ) as err:
        raise DataError(f"{path}: cannot be read as CSV ({type(err).__name__}: {err})") from None
    return [str(c).strip().lstrip("\ufeff") for c in header.columns]


def _check_separator(path: Path, columns: list[str]) -> None:
    """A CSV written with another separator reads as one huge column: say which separator it uses."""
    if len(columns) != 1:
        return
    for separator, name in SEPARATORS.items():
        if columns[0].count(separator) >= 2:
            raise DataError(
                f"{path}: the header is one column of {len(columns[0]):,} characters separated by {name} "
                f"({shown(columns[0])}); expected a comma-separated CSV (label,pixel0,...,pixel783)"
            )


def check_header(path: Path, columns: list[str]) -> list[str]:
    """Return the leading meta columns (subset of id/label) or raise naming the first bad column."""
    _check_separator(path, columns)
    meta = []
    for name in columns:
        if name in META_COLUMNS and name not in meta and len(meta) < 2:
            meta.append(name)
        else:
            break
    pixels = columns[len(meta) :]
    if pixels == PIXEL_COLUMNS:
        return meta
    for k, (got, want) in enumerate(zip(pixels, PIXEL_COLUMNS)):
        if got != want:
            raise DataError(
                f"{path}: column {len(meta) + k + 1} is named {shown(got)}, expected {want!r} "
                "(layout: optional id/label, then pixel0..pixel783)"
            )
    if len(pixels) < N_PIXELS:
        raise DataError(
            f"{path}: has {len(columns)} columns, expected {len(meta) + N_PIXELS} "
            f"({len(meta)} id/label + 784 pixels); pixel{len(pixels)} onwards is missing"
        )
    raise DataError(
        f"{path}: has {len(columns)} columns, expected {len(meta) + N_PIXELS}; "
        f"unexpected extra column {shown(pixels[N_PIXELS])}"
    )
