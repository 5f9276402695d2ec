"""Class names for plots: "3 ೩" (Arabic digit and Kannada numeral) when a font here can draw
Kannada, plain "3" otherwise (an undrawable glyph would show as an empty box)."""

from __future__ import annotations

from functools import lru_cache

from matplotlib import font_manager

KANNADA_NUMERALS = [chr(0x0CE6 + d) for d in range(10)]  # ೦ ೧ ೨ ೩ ೪ ೫ ೬ ೭ ೮ ೯


def _covers_kannada_digits(font_file: str) -> bool:
    from fontTools.ttLib import TTFont

    try:
        # fontNumber picks the first face of a .ttc collection; lazy skips tables we don't read.
        with TTFont(font_file, fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap() or {}
    except Exception:  # an unreadable or non-TrueType font file simply doesn't count
        return False
    return all(ord(numeral) in cmap for numeral in KANNADA_NUMERALS)


@lru_cache(maxsize=1)
def kannada_font() -> str | None:
    """Family name of an installed font that has all ten Kannada numerals, or None."""
    for entry in font_manager.fontManager.ttflist:
        # matplotlib ships "Last Resort", whose cmap claims every code point but draws only a
        # placeholder box per Unicode block: it must not count as rendering Kannada.
        if entry.name.startswith("Last Resort"):
            continue
        if _covers_kannada_digits(entry.fname):
            return entry.name
    return None


def label_font_family() -> list[str]:
    """A `fontfamily` for text holding digit_labels(): matplotlib (>= 3.6) falls back per glyph
    from the default sans-serif (Latin digits) to the Kannada font."""
    font = kannada_font()
    return ["sans-serif", font] if font else ["sans-serif"]


def digit_labels() -> list[str]:
    """ "0".."9", each followed by its Kannada numeral when a font can render it."""
    if kannada_font():
        return [f"{d} {numeral}" for d, numeral in enumerate(KANNADA_NUMERALS)]
    return [str(d) for d in range(10)]
