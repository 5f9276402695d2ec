"""How a one-line error quotes a value the user wrote: a CSV cell, a column name, a config value."""

from __future__ import annotations


def shown(value, limit: int = 40) -> str:
    """`value` as the user wrote it, at most `limit` characters: `inf`, `256`, `'abc'` (a numpy
    scalar without its type, `inf` not `np.float64(inf)`, and a whole number read as a float
    shown whole), a longer text cut with `...`, its quote kept."""
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
    text = repr(value)
    if len(text) <= limit:
        return text
    return text[: limit - 4] + "...'" if isinstance(value, str) else text[: limit - 3] + "..."
