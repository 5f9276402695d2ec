"""Test-time augmentation: named sets of flip-free views, each one affine map applied to a batch.

A prediction averages the softmax over a set's views (`predict.py tta=NAME`, the pipeline's
`tta`). `true` means `shifts`, the set every earlier submission used. No set mirrors a digit: a
mirrored Kannada digit is another digit or none. `bench/tta_views.py` scores each set on dev.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kmnist.errors import ConfigError


@dataclass(frozen=True)
class View:
    """One affine view: shift in pixels (right, down), rotation in degrees, zoom factor."""

    dx: int = 0
    dy: int = 0
    angle: float = 0.0
    scale: float = 1.0

    @property
    def identity(self) -> bool:
        return self == View()


IDENTITY = View()
SHIFTS = (IDENTITY, View(dx=1), View(dx=-1), View(dy=1), View(dy=-1))
ROTATIONS = (IDENTITY, View(angle=8.0), View(angle=-8.0))
ZOOMS = (IDENTITY, View(scale=0.9), View(scale=1.1))

VIEW_SETS: dict[str, tuple[View, ...]] = {
    "none": (IDENTITY,),
    "shifts": SHIFTS,  # `tta=true`: the image and its one-pixel shifts
    "rotations": ROTATIONS,
    "zooms": ZOOMS,
    "affine": SHIFTS + ROTATIONS[1:] + ZOOMS[1:],  # the pipeline's default: best on dev (bench/FINDINGS.md)
}


def resolve_views(tta: bool | str | tuple[View, ...] | None) -> tuple[View, ...]:
    """`tta` as configured -> its views: false/null -> the image alone, true -> `shifts`, a set's
    name, or (from Python) the views themselves."""
    if isinstance(tta, tuple) and tta and all(isinstance(v, View) for v in tta):
        return tta
    if tta is None or tta is False:
        return VIEW_SETS["none"]
    if tta is True:
        return VIEW_SETS["shifts"]
    if isinstance(tta, str) and tta in VIEW_SETS:
        return VIEW_SETS[tta]
    raise ConfigError(f"tta={tta!r}: expected true, false or one of {', '.join(VIEW_SETS)}")


def tta_name(tta: bool | str | tuple[View, ...] | None) -> str:
    """The set's name, for results files: `true` is recorded as `shifts`."""
    views = resolve_views(tta)
    return next((name for name, members in VIEW_SETS.items() if members == views), "custom")


def apply_view(x: torch.Tensor, view: View) -> torch.Tensor:
    """A batch (N, C, H, W) of images on a zero background, seen through `view` (zeros fill in)."""
    if view.identity:
        return x
    if view.angle == 0.0 and view.scale == 1.0:
        return shifted(x, view.dy, view.dx)
    # Imported here: torchvision adds ~1.5-2.5 s to predict.py's start, and tta=false/true never resample.
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    return TF.affine(
        x,
        angle=view.angle,
        translate=[view.dx, view.dy],
        scale=view.scale,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR,
        fill=0.0,
    )


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift a batch by whole pixels (down, right), filling with background rather than wrapping:
    exact and cheaper than resampling through `affine`, so `shifts` predictions stay bit-identical."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (abs(dx), abs(dx), abs(dy), abs(dy)))
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top : top + h, left : left + w]
