"""Test-time adaptation of a trained network to the set it predicts (transductive: it reads the
set's unlabelled images, never labels). Plain torch on an `nn.Module`, no Lightning.

- `adapt_batchnorm` (AdaBN, Li et al. 2016): every BatchNorm's running statistics re-estimated on
  the input images; the weights untouched.
- `tent` (Wang et al. 2021): a few passes of entropy minimisation on the BatchNorm scale and shift
  only, normalising with each batch's own statistics; the running statistics untouched.
- `adapt`: the one door `predict.py adapt=` and the pipeline call. `tent` there means TENT then
  AdaBN, so that the running statistics follow the shifted scales (the order the issue #34 probe
  measured on dev).

Both take the network's input as it expects it (preprocessed float NCHW, on the network's device),
shuffle with their own seeded generator (the same call gives the same network), and return the
network in eval mode.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from kmnist.data.preprocess import Preprocess
from kmnist.engine.inference import LoadedModel
from kmnist.errors import ConfigError

ADAPT_MODES = ("none", "bn", "tent")


def batchnorms(net: nn.Module) -> list[_BatchNorm]:
    return [m for m in net.modules() if isinstance(m, _BatchNorm)]


def _require_batchnorm(net: nn.Module, mode: str, name: str | None) -> list[_BatchNorm]:
    found = batchnorms(net)
    if not found:
        model = name or type(net).__name__
        raise ConfigError(f"adapt={mode}: model {model} has no BatchNorm layer to adapt")
    return found


def _batches(n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """A seeded permutation of n rows cut into ceil(n / batch_size) batches of near-equal size (no
    runt last batch: each batch weighs the same in a cumulative average)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r}: expected a positive number of images per batch")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return list(torch.tensor_split(order, -(-n // batch_size))) if n else []


def _device(net: nn.Module) -> torch.device:
    return next(iter(net.parameters()), torch.empty(0)).device


@torch.no_grad()
def adapt_batchnorm(
    net: nn.Module, images: torch.Tensor, batch_size: int = 256, seed: int = 0, name: str | None = None
) -> nn.Module:
    """AdaBN: reset every BatchNorm's running mean and variance and re-estimate them on `images`
    (N, C, H, W) as the cumulative average over shuffled batches (momentum=None): the mean is the
    set's, the variance the mean of the batches' unbiased variances. Dropout and every other layer
    stay in eval mode; no parameter changes. `name` is the model's name for the error line."""
    layers = _require_batchnorm(net, "bn", name)
    momenta = [bn.momentum for bn in layers]
    device = _device(net)
    net.eval()
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    try:
        for rows in _batches(len(images), batch_size, seed):
            net(images[rows.to(images.device)].to(device))
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        net.eval()
    return net


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of softmax(logits) over the rows."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1).mean()


def tent(
    net: nn.Module,
    images: torch.Tensor,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    name: str | None = None,
) -> nn.Module:
    """TENT: `epochs` passes of Adam(`lr`) over shuffled batches of `images`, minimising the mean
    prediction entropy with respect to the BatchNorm weights and biases only. During adaptation each
    BatchNorm normalises with its batch's statistics and does not update its running ones; every
    other parameter and buffer is left as it was. Returns the network in eval mode."""
    layers = _require_batchnorm(net, "tent", name)
    params = [p for bn in layers for p in (bn.weight, bn.bias) if p is not None]
    if not params:
        raise ConfigError(f"adapt=tent: model {name or type(net).__name__} has no BatchNorm scale or shift")
    trainable = {p: p.requires_grad for p in net.parameters()}
    tracking = [bn.track_running_stats for bn in layers]
    device = _device(net)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    for bn in layers:
        bn.train()
        bn.track_running_stats = False  # batch statistics, running buffers untouched
    optimizer = torch.optim.Adam(params, lr=lr)
    try:
        with torch.enable_grad():
            for epoch in range(epochs):
                for rows in _batches(len(images), batch_size, seed + epoch):
                    loss = mean_entropy(net(images[rows.to(images.device)].to(device)))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
    finally:
        for bn, track in zip(layers, tracking):
            bn.track_running_stats = track
        for p, flag in trainable.items():
            p.requires_grad_(flag)
        net.eval()
    return net


def adapt(
    net: nn.Module,
    images: torch.Tensor,
    mode: str = "none",
    batch_size: int = 256,
    seed: int = 0,
    name: str | None = None,
    tent_epochs: int = 3,
    tent_lr: float = 1e-3,
    tent_batch_size: int = 128,
) -> nn.Module:
    """The one door for `adapt=none|bn|tent`: the network adapted in place to `images` (its input,
    preprocessed) and in eval mode. `tent` runs TENT, then AdaBN on the adapted network."""
    if mode not in ADAPT_MODES:
        raise ConfigError(f"adapt={mode}: expected one of {', '.join(ADAPT_MODES)}")
    if mode == "tent":
        tent(net, images, tent_epochs, tent_lr, tent_batch_size, seed, name)
    if mode in ("bn", "tent"):
        adapt_batchnorm(net, images, batch_size, seed, name)
    return net.eval()


def network_input(model: LoadedModel, images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> the model's preprocessed float input (N, C, H, W), channels-last
    as `load_checkpoint` lays out the network: what `predict_proba` feeds it for the identity view."""
    x = Preprocess.to_unit(torch.as_tensor(images).unsqueeze(1).to(device))
    with torch.no_grad():
        return model.preprocess.to(device)(x).contiguous(memory_format=torch.channels_last)


def adapt_models(
    models: list[LoadedModel], images: np.ndarray, mode: str, device: str | torch.device = "cpu", **options
) -> list[LoadedModel]:
    """Copies of loaded checkpoints, each adapted to one input file's images (`adapt(mode, **options)`):
    the originals stay as trained, so the next file (test, then Dig) adapts from them again."""
    if mode not in ADAPT_MODES:
        raise ConfigError(f"adapt={mode}: expected one of {', '.join(ADAPT_MODES)}")
    if mode == "none":
        return models
    device = torch.device(device)
    out = []
    for model in models:
        net = copy.deepcopy(model.net).to(device)
        name = model.config.get("model", {}).get("name")
        adapt(net, network_input(model, images, device), mode, name=name, **options)
        out.append(LoadedModel(net=net, preprocess=model.preprocess, config=model.config, path=model.path))
    return out
