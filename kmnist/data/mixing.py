"""MixUp and CutMix on a batch, with a mixing weight drawn per image.

torchvision's `v2.MixUp` / `v2.CutMix` draw one weight (and one box) per call, so every image
of a batch is mixed by the same amount; here each image gets its own, in a few batched tensor
ops. Both return the mixed images and soft targets (B, classes) that cross-entropy accepts.
An image is mixed with its neighbour in a shuffled order of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _beta(alpha: float, n: int, like: torch.Tensor) -> torch.Tensor:
    concentration = torch.full((n,), float(alpha), device=like.device)
    return torch.distributions.Beta(concentration, concentration).sample()


def _targets(y: torch.Tensor, partner: torch.Tensor, keep: torch.Tensor, num_classes: int) -> torch.Tensor:
    """keep x one-hot(own label) + (1 - keep) x one-hot(partner's label)."""
    own, theirs = F.one_hot(y, num_classes).float(), F.one_hot(y[partner], num_classes).float()
    return torch.lerp(theirs, own, keep.view(-1, 1))


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    chosen: torch.Tensor,
    num_classes: int = 10,
    partner: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each chosen image with its partner by a weight ~ Beta(alpha, alpha); others stay as they are."""
    b = x.shape[0]
    partner = torch.randperm(b, device=x.device) if partner is None else partner
    keep = torch.where(chosen, _beta(alpha, b, x), torch.ones(b, device=x.device))
    mixed = torch.lerp(x[partner], x, keep.view(-1, 1, 1, 1).to(x.dtype))
    return mixed, _targets(y, partner, keep, num_classes)


def cutmix(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    chosen: torch.Tensor,
    num_classes: int = 10,
    partner: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste into each chosen image a box of its partner covering ~ 1 - Beta(alpha, alpha) of it.
    The targets follow the area actually pasted (a box clipped at the border covers less)."""
    b, _, h, w = x.shape
    partner = torch.randperm(b, device=x.device) if partner is None else partner
    cut = (1 - _beta(alpha, b, x)).sqrt()  # the box's side as a fraction of the image's
    cy, cx = torch.rand(b, device=x.device) * h, torch.rand(b, device=x.device) * w
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    box = ((rows - cy.view(b, 1, 1)).abs() < cut.view(b, 1, 1) * h / 2) & (
        (cols - cx.view(b, 1, 1)).abs() < cut.view(b, 1, 1) * w / 2
    )
    box &= chosen.view(b, 1, 1)
    mixed = torch.where(box.unsqueeze(1), x[partner], x)
    keep = 1 - box.flatten(1).float().mean(dim=1)
    return mixed, _targets(y, partner, keep, num_classes)
