"""Property-based tests (Hypothesis): random valid inputs round-trip through the readers, random
invalid ones raise the project's own DataError, and augmentation keeps shape, range and identity."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kmnist.data.augment import BatchAugment
from kmnist.data.idx import read_idx
from kmnist.data.io import PIXEL_COLUMNS, DigitTable, read_digits, table_to_frame
from kmnist.errors import DataError

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

images_strategy = st.integers(1, 6).flatmap(lambda n: arrays(np.uint8, (n, 28, 28)))


@SETTINGS
@given(
    images=images_strategy,
    with_labels=st.booleans(),
    with_ids=st.booleans(),
    gz=st.booleans(),
    data=st.data(),
)
def test_valid_csv_round_trips(tmp_path_factory, images, with_labels, with_ids, gz, data):
    n = len(images)
    labels = np.array(data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))) if with_labels else None
    ids = (
        np.array(data.draw(st.lists(st.integers(-(10**6), 10**6), min_size=n, max_size=n, unique=True)))
        if with_ids
        else None
    )
    path = tmp_path_factory.mktemp("csv") / ("t.csv.gz" if gz else "t.csv")
    table_to_frame(DigitTable(images, labels, ids)).to_csv(
        path, index=False, compression="gzip" if gz else None
    )
    got = read_digits(path, use_cache=False)
    np.testing.assert_array_equal(got.images, images)
    assert (got.labels is None) == (labels is None) and (got.ids is None) == (ids is None)
    if labels is not None:
        np.testing.assert_array_equal(got.labels, labels)
    if ids is not None:
        np.testing.assert_array_equal(got.ids, ids)


bad_cell = st.one_of(
    st.integers(256, 10**6),
    st.integers(-(10**6), -1),
    st.floats(0.01, 254.99).filter(lambda v: v != int(v)),
    st.text(alphabet="abcxyz!?", min_size=1, max_size=5),
)


@SETTINGS
@given(images=images_strategy, value=bad_cell, data=st.data())
def test_invalid_pixel_raises_data_error_naming_the_place(tmp_path_factory, images, value, data):
    frame = table_to_frame(DigitTable(images, labels=np.zeros(len(images), dtype=np.int64))).astype(object)
    row = data.draw(st.integers(0, len(images) - 1))
    column = data.draw(st.sampled_from(PIXEL_COLUMNS))
    frame.loc[row, column] = value
    path = tmp_path_factory.mktemp("bad") / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_digits(path, use_cache=False)
    assert f"line {row + 2}" in str(err.value) and column in str(err.value)


@SETTINGS
@given(raw=st.binary(max_size=64))
def test_random_bytes_as_idx_raise_data_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    path.write_bytes(raw)
    with pytest.raises(DataError):
        read_idx(path)


@SETTINGS
@given(raw=st.binary(min_size=1, max_size=200), gz=st.booleans())
def test_random_bytes_as_csv_raise_data_error(tmp_path_factory, raw, gz):
    path = tmp_path_factory.mktemp("junk") / ("j.csv.gz" if gz else "j.csv")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError):
        read_digits(path, use_cache=False)


@SETTINGS
@given(
    batch=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    rotation=st.floats(0, 30),
    translate=st.floats(0, 0.3),
    shear=st.floats(0, 0.3),
    zoom=st.floats(0, 0.4),
    erase_p=st.floats(0, 1),
)
def test_augment_keeps_shape_dtype_and_range(batch, seed, rotation, translate, shear, zoom, erase_p):
    torch.manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28)
    out = BatchAugment(rotation=rotation, translate=translate, shear=shear, zoom=zoom, erase_p=erase_p)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1 + 1e-5
