"""Options that take a list also take one value: `data.extra_train=PATH` means `[PATH]`, where
iterating the string would take it letter by letter."""

from __future__ import annotations

import os
from collections.abc import Sequence


def as_list(value) -> list:
    """None -> []; a str, path or number -> [value]; a list (or ListConfig, tuple) -> a list of its items."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, Sequence):
        return [value]
    return list(value)
