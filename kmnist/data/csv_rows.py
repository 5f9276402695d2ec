"""The rows of a Kaggle-layout CSV, validated block by block: every cell a whole number, pixels in
0..255, labels digits, ids exact. A bad value is one line naming its file line and column (the file
is read again for the line number only when there is an error)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kmnist.data.table import IMAGE_SIDE, DigitTable
from kmnist.errors import DataError

if TYPE_CHECKING:  # pandas loads only when a CSV is parsed: a cached read never needs it
    import pandas as pd  # here, not at the top: a cached read never parses a CSV
from kmnist.utils.shown import shown


def _data_lines(path: Path):
    """(file line number, text) of every non-blank line after the header: errors are reported by file
    line, and pandas skips blank lines, so rows and lines part after one. Read again only for an error."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        next(fh, None)  # the header
        yield from ((number, line) for number, line in enumerate(fh, start=2) if line.strip())


def file_line(path: Path, data_row: int) -> int:
    """The file line (1: the header) of a data row."""
    return next(
        (number for row, (number, _) in enumerate(_data_lines(path)) if row == data_row), data_row + 2
    )


def ragged_row(path: Path, fields: int) -> DataError:
    """The first line whose field count is not the header's (scanned only when pandas found one)."""
    for number, line in _data_lines(path):
        if (found := line.rstrip("\r\n").count(",") + 1) != fields:
            return DataError(
                f"{path}: line {number} has {found} fields, the header {fields}"
                f"{' (a trailing comma?)' if line.rstrip().endswith(',') else ''}"
            )
    return DataError(f"{path}: a row has another number of fields than the header's {fields}")


def _first_bad(path: Path, frame: pd.DataFrame, bad: np.ndarray, what: str, first_row: int) -> DataError:
    row, col = np.argwhere(bad)[0]
    value = frame.iat[row, col]
    return DataError(
        f"{path}: line {file_line(path, first_row + row)}, column {frame.columns[col]}: "
        f"{what} (got {shown(value)})"
    )


def parse_chunk(path: Path, frame: pd.DataFrame, meta: list[str], first_row: int) -> DigitTable:
    """Validate one block of rows (`first_row`: the data row index of its first row) and convert it."""
    import pandas as pd  # here, not at the top: a cached read never parses a CSV

    if all(pd.api.types.is_integer_dtype(t) for t in frame.dtypes):
        values = frame.to_numpy(dtype=np.int64)  # the common, clean case: no coercion needed
    else:
        # Coerce each column to numbers; text becomes NaN and is reported with its original value.
        values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if values.dtype == np.float64:
        missing = np.isnan(values)
        if missing.any():
            row, col = np.argwhere(missing)[0]
            what = "missing value (NaN)" if pd.isna(frame.iat[row, col]) else "not a number"
            raise _first_bad(path, frame, missing, what, first_row)
        fractional = values != np.round(values)
        if fractional.any():
            raise _first_bad(path, frame, fractional, "not an integer", first_row)

    pixels = values[:, len(meta) :]
    out_of_range = (pixels < 0) | (pixels > 255)
    if out_of_range.any():
        row, col = np.argwhere(out_of_range)[0]
        raise DataError(
            f"{path}: line {file_line(path, first_row + row)}, column pixel{col}: "
            f"value {shown(frame.iat[row, len(meta) + col])} is outside 0..255"
        )
    table = DigitTable(images=pixels.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE))
    if "label" in meta:
        labels = values[:, meta.index("label")]
        bad = (labels < 0) | (labels > 9)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{path}: line {file_line(path, first_row + row)}, column label: "
                f"{shown(frame['label'].iat[row])} is not a digit 0..9"
            )
        table.labels = labels.astype(np.int64)
    if "id" in meta:
        table.ids = _ids(path, frame["id"], values[:, meta.index("id")], first_row)
    return table


def _ids(path: Path, column: pd.Series, coerced: np.ndarray, first_row: int) -> np.ndarray:
    """Ids exactly as written: from their own integer column (the float matrix rounds ids from 2**53),
    and none beyond int64, which would wrap to negative numbers in the submission."""
    if column.dtype == np.int64:
        return column.to_numpy()
    if column.dtype == np.uint64:
        too_large, why = column.to_numpy() > np.iinfo(np.int64).max, f"at most {np.iinfo(np.int64).max:,}"
    else:  # read as decimals or text: exact below 2**53 only
        too_large, why = (
            np.abs(coerced) >= 2**53,
            f"ids written as decimals, or past 64 bits, must stay below {2**53:,}",
        )
    if too_large.any():
        row = int(np.argmax(too_large))
        raise DataError(
            f"{path}: line {file_line(path, first_row + row)}, column id: {column.iat[row]} "
            f"is too large for an id ({why})"
        )
    return coerced.astype(np.int64)
