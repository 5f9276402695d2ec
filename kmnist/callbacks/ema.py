"""An exponential moving average of the weights, as Lightning's `EMAWeightAveraging`, but cheap
per step.

Lightning's callback averages tensor by tensor (a few kernels per tensor) through torch's
`AveragedModel.update_parameters`, which also reads its step counter back from the device twice
per call: two GPU syncs every training step. On a network as small as KResNet that is a large
share of a step. Here the update is one `_foreach_lerp_` over the floating tensors, and the
counter is read once. Validation, checkpoints and resume are Lightning's, unchanged.
"""

from __future__ import annotations

from itertools import chain

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch import nn
from torch.optim.swa_utils import AveragedModel

from kmnist.callbacks.averaging import AfterFirstAverage


class ExponentialAverage(AveragedModel):
    """`AveragedModel` with an EMA update that stays on the device.

    avg <- avg + (1 - decay) * (model - avg)
    """

    def __init__(
        self, model: nn.Module, decay: float, device: torch.device | None = None, use_buffers: bool = True
    ):
        super().__init__(model, device=device, use_buffers=use_buffers)
        self.decay = decay
        self._updates: int | None = None  # a host-side copy of n_averaged
        self._cached: tuple | None = None

    def _tensors(self, module: nn.Module) -> list[torch.Tensor]:
        tensors = chain(module.parameters(), module.buffers()) if self.use_buffers else module.parameters()
        return [t.detach() for t in tensors]

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int]]:
        """(averaged, model's, indices of floating tensors). The lists are built once per model:
        walking the module tree every step costs more host time than the update. Lightning swaps
        and restores weights in place (`.data.copy_`), so the tensors stay the same objects; a
        move to other memory (`.to(device)`) changes the first parameter's address and rebuilds them."""
        key = (model, next(model.parameters()).data_ptr(), next(self.module.parameters()).data_ptr())
        if self._cached is None or self._cached[0] != key:
            averaged, theirs = self._tensors(self.module), self._tensors(model)
            if len(averaged) != len(theirs):
                raise ValueError(f"EMA: the model has {len(theirs)} tensors, its average {len(averaged)}")
            floating = [i for i, a in enumerate(averaged) if a.is_floating_point()]
            self._cached = (key, averaged, theirs, floating)
        _, averaged, theirs, floating = self._cached
        return averaged, [t.to(a.device) for a, t in zip(averaged, theirs)], floating

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        if self._updates is None:  # the one read of the device counter (also right after a resume)
            self._updates = int(self.n_averaged)
        averaged, current, floating = self._pairs(model)
        if self._updates == 0:
            torch._foreach_copy_(averaged, current)
        elif floating:
            torch._foreach_lerp_(
                [averaged[i] for i in floating], [current[i] for i in floating], 1.0 - self.decay
            )
        for i in set(range(len(averaged))) - set(floating):
            averaged[i].copy_(current[i])  # integer buffers (BatchNorm's batch counter) follow the model
        if not self.use_buffers:  # as AveragedModel: unaveraged buffers track the model's
            for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
                mine.detach().copy_(theirs.detach().to(mine.device))
        self.n_averaged += 1
        self._updates += 1


class EMA(AfterFirstAverage, EMAWeightAveraging):
    """Lightning's `EMAWeightAveraging` (same options and checkpoint format) over `ExponentialAverage`;
    before its first update (`update_starting_at_step`) validation and checkpoints keep the current
    weights."""

    def __init__(self, decay: float = 0.999, **kwargs):
        super().__init__(decay=decay, **kwargs)
        self.decay = decay

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            device = self._device or pl_module.device
            self._average_model = ExponentialAverage(
                pl_module, decay=self.decay, device=device, use_buffers=self._use_buffers
            )
