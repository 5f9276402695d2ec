"""Values written into Hydra override strings: paths quoted, so `=`, `,` or spaces in them stay
part of the value."""

from __future__ import annotations


def quoted(value) -> str:
    """A path (or a list of them) as a Hydra override value: `'a b.ckpt'`, `['a.ckpt','b.ckpt']`."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(quoted(v) for v in value) + "]"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
