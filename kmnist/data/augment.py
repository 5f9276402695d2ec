"""Batched image augmentation on tensors: every image gets its own random parameters.

torchvision's v2 transforms draw one set of parameters per call, so on a batch tensor they move
every image the same way, and per-sample loops are slow. Kornia would do this but is not a
dependency; the whole thing is one projective matrix per image and one `grid_sample`, so it is
written here (airbench-style) and runs on whatever device the batch is on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kmnist.data import mixing
from kmnist.errors import ConfigError


def inverse_3x3(m: torch.Tensor) -> torch.Tensor:
    """Inverses of a batch of 3x3 matrices by cross products (adjugate / determinant): a few
    elementwise kernels, where torch.linalg.inv launches batched-solver kernels and checks its
    result on the host (a GPU sync every training step)."""
    r0, r1, r2 = m.unbind(dim=-2)
    adjugate = torch.stack(
        [torch.linalg.cross(r1, r2), torch.linalg.cross(r2, r0), torch.linalg.cross(r0, r1)], dim=-1
    )
    det = (r0 * adjugate[..., 0]).sum(-1)
    return adjugate / det[..., None, None]


class BatchAugment(nn.Module):
    """Per-image stroke thickness, then random rotation, translation, shear, zoom, aspect, perspective
    warp and elastic distortion (one resampling), then brightness/contrast ("lighting") and random
    erasing, applied to a float batch (B, C, H, W) in [0, 1]. `mix` blends images and labels
    (MixUp / CutMix) as a separate step, since it changes the targets too.

    rotation: max degrees; translate: max shift as a fraction of the side; shear: max shear factor;
    zoom: scale drawn from [1 - zoom, 1 + zoom]; aspect: width stretched against height by a ratio
    drawn log-uniformly from [1 / (1 + aspect), 1 + aspect], area kept (Keras' zoom_range scales x
    and y independently; Dig-MNIST's digits are ~1.6x wider for their height); warp: max perspective
    coefficient; elastic: max displacement of a smooth random field, as a fraction of the side,
    drawn on an `elastic_cells` x `elastic_cells` grid and upsampled; stroke: max share of a
    grey-level dilation (thicker strokes, > 0) or erosion (thinner, < 0) blended in, drawn per image
    from [-stroke, stroke]; lighting: max relative change of contrast (brightness: half that, in
    units of full scale); erase_p: probability that an image gets one erased rectangle of a share of
    erase_area [min, max] of it (centred anywhere, so clipped at the border; strong's [0.02, 0.12]
    erases 6% on average); mixup / cutmix: Beta(alpha, alpha) of MixUp / CutMix, applied to a share
    mix_p of the images (one of the two, evenly, when both are set). Digits are never flipped: a
    mirrored digit is a different (or no) digit.
    """

    def __init__(
        self,
        rotation: float = 0.0,
        translate: float = 0.0,
        shear: float = 0.0,
        zoom: float = 0.0,
        aspect: float = 0.0,
        warp: float = 0.0,
        lighting: float = 0.0,
        erase_p: float = 0.0,
        erase_area: tuple[float, float] = (0.02, 0.15),
        elastic: float = 0.0,
        elastic_cells: int = 4,
        stroke: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mix_p: float = 0.5,
    ):
        super().__init__()
        magnitudes = dict(
            rotation=rotation,
            translate=translate,
            shear=shear,
            zoom=zoom,
            aspect=aspect,
            warp=warp,
            lighting=lighting,
            elastic=elastic,
            stroke=stroke,
            mixup=mixup,
            cutmix=cutmix,
        )
        for name, value in magnitudes.items():
            if value < 0:
                raise ConfigError(f"data.augment.{name}={value}: a maximum magnitude, expected >= 0")
        if zoom >= 1:
            raise ConfigError(
                f"data.augment.zoom={zoom}: scales are drawn from [1 - zoom, 1 + zoom], expected < 1"
            )
        if lighting >= 1:
            raise ConfigError(
                f"data.augment.lighting={lighting}: "
                "contrast is scaled by [1 - lighting, 1 + lighting], expected < 1"
            )
        area = (
            list(erase_area)
            if isinstance(erase_area, Sequence) and not isinstance(erase_area, str)
            else [erase_area]
        )
        if (
            len(area) != 2
            or not all(isinstance(a, (int, float)) for a in area)
            or not 0 <= area[0] <= area[1] <= 1
        ):
            raise ConfigError(
                f"data.augment.erase_area={erase_area}: "
                "expected [min, max] shares of the image, 0 <= min <= max <= 1"
            )
        if (
            isinstance(elastic_cells, bool)
            or not isinstance(elastic_cells, (int, float))
            or not float(elastic_cells).is_integer()
            or elastic_cells < 2
        ):
            raise ConfigError(
                f"data.augment.elastic_cells={elastic_cells}: expected an integer >= 2 "
                "(the side of the elastic displacement field's coarse grid)"
            )
        for name, value in dict(erase_p=erase_p, mix_p=mix_p).items():
            if not 0 <= value <= 1:
                raise ConfigError(f"data.augment.{name}={value}: a probability, expected in [0, 1]")
        self.rotation, self.translate, self.shear, self.zoom, self.aspect = (
            rotation,
            translate,
            shear,
            zoom,
            aspect,
        )
        self.warp, self.lighting, self.erase_p, self.erase_area = warp, lighting, erase_p, tuple(erase_area)
        self.elastic, self.elastic_cells, self.stroke = elastic, int(elastic_cells), stroke
        self.mixup, self.cutmix, self.mix_p = mixup, cutmix, mix_p

    @property
    def warps(self) -> bool:
        """Whether any knob moves pixels (one resampling does them all)."""
        return any(
            (self.rotation, self.translate, self.shear, self.zoom, self.aspect, self.warp, self.elastic)
        )

    @property
    def is_identity(self) -> bool:
        return not (self.warps or any((self.stroke, self.lighting, self.erase_p)))

    @property
    def mixes(self) -> bool:
        return bool((self.mixup or self.cutmix) and self.mix_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_identity:
            return x
        if self.stroke:
            x = self._stroke(x)
        if self.warps:
            x = self._warp(x)
        if self.lighting:
            x = self._lighting(x)
        if self.erase_p:
            x = self._erase(x)
        return x

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """MixUp / CutMix: (mixed images, soft targets (B, 10)), or (x, None) when both are off."""
        if not self.mixes:
            return x, None
        b = x.shape[0]
        chosen = torch.rand(b, device=x.device) < self.mix_p
        partner = torch.randperm(b, device=x.device)
        if not self.cutmix:
            return mixing.mixup(x, y, self.mixup, chosen, partner=partner)
        if not self.mixup:
            return mixing.cutmix(x, y, self.cutmix, chosen, partner=partner)
        use_cutmix = torch.rand(b, device=x.device) < 0.5  # per image: one of the two
        x_up, t_up = mixing.mixup(x, y, self.mixup, chosen & ~use_cutmix, partner=partner)
        x_cut, t_cut = mixing.cutmix(x, y, self.cutmix, chosen & use_cutmix, partner=partner)
        return torch.where(use_cutmix.view(b, 1, 1, 1), x_cut, x_up), torch.where(
            use_cutmix.view(b, 1), t_cut, t_up
        )

    def _uniform(self, n: int, limit: float, like: torch.Tensor) -> torch.Tensor:
        return (torch.rand(n, device=like.device, dtype=torch.float32) * 2 - 1) * limit

    def sample_matrices(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """Forward maps (n, 3, 3) in normalised [-1, 1] coordinates: T @ R @ Sh @ Z @ P."""
        angle = self._uniform(n, math.radians(self.rotation), like)
        scale = 1 + self._uniform(n, self.zoom, like)
        scale_x = scale_y = scale
        if self.aspect:  # drawn only when on, so recipes without it keep their random stream
            stretch = torch.exp(
                self._uniform(n, math.log1p(self.aspect), like) / 2
            )  # sqrt of the width:height ratio
            scale_x, scale_y = scale * stretch, scale / stretch
        shear = self._uniform(n, self.shear, like)
        tx, ty = (self._uniform(n, 2 * self.translate, like) for _ in range(2))
        cos, sin = torch.cos(angle), torch.sin(angle)
        m = torch.zeros(n, 3, 3, device=like.device)
        # R @ Sh @ Z with Sh = [[1, shear], [0, 1]] and Z = diag(scale_x, scale_y)
        m[:, 0, 0] = cos * scale_x
        m[:, 0, 1] = (cos * shear - sin) * scale_y
        m[:, 1, 0] = sin * scale_x
        m[:, 1, 1] = (sin * shear + cos) * scale_y
        m[:, 0, 2], m[:, 1, 2], m[:, 2, 2] = tx, ty, 1.0
        if self.warp:
            m[:, 2, 0] = self._uniform(n, self.warp, like)
            m[:, 2, 1] = self._uniform(n, self.warp, like)
        return m

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        inverse = inverse_3x3(self.sample_matrices(b, x))  # output pixel -> where to read the input
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, h, device=x.device),
            torch.linspace(-1, 1, w, device=x.device),
            indexing="ij",
        )
        base = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, h * w, 3)
        src = base @ inverse.transpose(1, 2)  # (b, h*w, 3)
        grid = (src[..., :2] / src[..., 2:].clamp_min(1e-6)).reshape(b, h, w, 2)
        if self.elastic:
            grid = grid + self.sample_displacement(b, h, w, x)
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)

    def sample_displacement(self, b: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        """A smooth random displacement field (b, h, w, 2) in normalised coordinates: uniform
        noise on a coarse grid, upsampled bicubically (a cheap stand-in for Simard's blurred
        noise). Its largest component is at most `elastic` of the side (2 x elastic in [-1, 1] units)."""
        cells = max(self.elastic_cells, 2)
        coarse = self._uniform(b * 2 * cells * cells, 2 * self.elastic, like).view(b, 2, cells, cells)
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
        return field.clamp(-2 * self.elastic, 2 * self.elastic).permute(0, 2, 3, 1)

    def _stroke(self, x: torch.Tensor) -> torch.Tensor:
        """Grey-level dilation (3x3 max) or erosion (3x3 min), blended in by a per-image amount."""
        b = x.shape[0]
        amount = self._uniform(b, self.stroke, x).clamp(-1, 1).view(b, 1, 1, 1)
        dilated = F.max_pool2d(x, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
        return torch.where(
            amount >= 0,
            torch.lerp(x, dilated, amount.clamp(min=0)),
            torch.lerp(x, eroded, (-amount).clamp(min=0)),
        )

    def _lighting(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        contrast = 1 + self._uniform(b, self.lighting, x).view(b, 1, 1, 1)
        brightness = self._uniform(b, self.lighting, x).view(b, 1, 1, 1) * 0.5
        return (x * contrast + brightness).clamp_(0, 1)

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        lo, hi = self.erase_area
        area = lo + torch.rand(b, device=x.device) * (hi - lo)
        aspect = torch.exp(self._uniform(b, math.log(3.0), x))
        eh = (area * aspect).sqrt().clamp(max=1.0) * h
        ew = (area / aspect).sqrt().clamp(max=1.0) * w
        cy, cx = torch.rand(b, device=x.device) * h, torch.rand(b, device=x.device) * w
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = ((rows - cy.view(b, 1, 1)).abs() < eh.view(b, 1, 1) / 2) & (
            (cols - cx.view(b, 1, 1)).abs() < ew.view(b, 1, 1) / 2
        )
        chosen = (torch.rand(b, device=x.device) < self.erase_p).view(b, 1, 1)
        return x.masked_fill((inside & chosen).unsqueeze(1), 0.0)
