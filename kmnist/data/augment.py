"""Batched image augmentation on tensors: every image gets its own random parameters.

torchvision's v2 transforms draw one set of parameters per call, so on a batch tensor they move
every image the same way, and per-sample loops are slow. Kornia would do this but is not a
dependency; the whole thing is one projective matrix per image and one `grid_sample`, so it is
written here (airbench-style) and runs on whatever device the batch is on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def inverse_3x3(m: torch.Tensor) -> torch.Tensor:
    """Inverses of a batch of 3x3 matrices by cross products (adjugate / determinant): a few
    elementwise kernels, where torch.linalg.inv launches batched-solver kernels and checks its
    result on the host (a GPU sync every training step)."""
    r0, r1, r2 = m.unbind(dim=-2)
    adjugate = torch.stack([torch.linalg.cross(r1, r2), torch.linalg.cross(r2, r0), torch.linalg.cross(r0, r1)], dim=-1)
    det = (r0 * adjugate[..., 0]).sum(-1)
    return adjugate / det[..., None, None]


class BatchAugment(nn.Module):
    """Random rotation, translation, shear, zoom and perspective warp, then brightness/contrast
    ("lighting") and random erasing, applied to a float batch (B, C, H, W) in [0, 1].

    rotation: max degrees; translate: max shift as a fraction of the side; shear: max shear
    factor; zoom: scale drawn from [1 - zoom, 1 + zoom]; warp: max perspective coefficient;
    lighting: max relative change of brightness and contrast; erase_p: probability that an
    image gets one erased rectangle covering erase_area of it. Digits are never flipped: a
    mirrored digit is a different (or no) digit.
    """

    def __init__(self, rotation: float = 0.0, translate: float = 0.0, shear: float = 0.0, zoom: float = 0.0,
                 warp: float = 0.0, lighting: float = 0.0, erase_p: float = 0.0, erase_area: tuple[float, float] = (0.02, 0.15)):
        super().__init__()
        self.rotation, self.translate, self.shear, self.zoom = rotation, translate, shear, zoom
        self.warp, self.lighting, self.erase_p, self.erase_area = warp, lighting, erase_p, tuple(erase_area)

    @property
    def is_identity(self) -> bool:
        return not any((self.rotation, self.translate, self.shear, self.zoom, self.warp, self.lighting, self.erase_p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_identity:
            return x
        if any((self.rotation, self.translate, self.shear, self.zoom, self.warp)):
            x = self._warp(x)
        if self.lighting:
            x = self._lighting(x)
        if self.erase_p:
            x = self._erase(x)
        return x

    def _uniform(self, n: int, limit: float, like: torch.Tensor) -> torch.Tensor:
        return (torch.rand(n, device=like.device, dtype=torch.float32) * 2 - 1) * limit

    def sample_matrices(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """Forward maps (n, 3, 3) in normalised [-1, 1] coordinates: T @ R @ Sh @ Z @ P."""
        angle = self._uniform(n, math.radians(self.rotation), like)
        scale = 1 + self._uniform(n, self.zoom, like)
        shear = self._uniform(n, self.shear, like)
        tx, ty = (self._uniform(n, 2 * self.translate, like) for _ in range(2))
        cos, sin = torch.cos(angle), torch.sin(angle)
        m = torch.zeros(n, 3, 3, device=like.device)
        # R @ Sh @ Z with Sh = [[1, shear], [0, 1]] and Z = scale * I
        m[:, 0, 0] = cos * scale
        m[:, 0, 1] = (cos * shear - sin) * scale
        m[:, 1, 0] = sin * scale
        m[:, 1, 1] = (sin * shear + cos) * scale
        m[:, 0, 2], m[:, 1, 2], m[:, 2, 2] = tx, ty, 1.0
        if self.warp:
            m[:, 2, 0] = self._uniform(n, self.warp, like)
            m[:, 2, 1] = self._uniform(n, self.warp, like)
        return m

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        inverse = inverse_3x3(self.sample_matrices(b, x))  # output pixel -> where to read the input
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device), torch.linspace(-1, 1, w, device=x.device), indexing="ij")
        base = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, h * w, 3)
        src = base @ inverse.transpose(1, 2)  # (b, h*w, 3)
        grid = (src[..., :2] / src[..., 2:].clamp_min(1e-6)).reshape(b, h, w, 2)
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)

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
        inside = ((rows - cy.view(b, 1, 1)).abs() < eh.view(b, 1, 1) / 2) & ((cols - cx.view(b, 1, 1)).abs() < ew.view(b, 1, 1) / 2)
        chosen = (torch.rand(b, device=x.device) < self.erase_p).view(b, 1, 1)
        return x.masked_fill((inside & chosen).unsqueeze(1), 0.0)
