"""Test-time adaptation (kmnist.engine.adapt): AdaBN sets every BatchNorm's statistics to the input
set's and no weight; TENT lowers the entropy by moving the BatchNorm scale and shift only; both
are seeded; a network without BatchNorm gets one line."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kmnist.engine.adapt import adapt, adapt_batchnorm, batchnorms, mean_entropy, tent
from kmnist.errors import ConfigError
from kmnist.models import create_model


def shifted_images(n: int = 96, seed: int = 0) -> torch.Tensor:
    """Inputs far from the statistics a fresh BatchNorm holds (mean 0, variance 1)."""
    g = torch.Generator().manual_seed(seed)
    return 3.0 + 2.0 * torch.randn(n, 1, 28, 28, generator=g)


def small_kresnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("kresnet", widths=(8, 16, 32)).eval()


def state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def bn_inputs(net: nn.Module) -> tuple[dict[nn.Module, list[torch.Tensor]], list]:
    seen: dict[nn.Module, list[torch.Tensor]] = {bn: [] for bn in batchnorms(net)}
    hooks = [bn.register_forward_pre_hook(lambda m, args: seen[m].append(args[0].detach())) for bn in seen]
    return seen, hooks


def test_adapt_batchnorm_sets_each_layers_statistics_to_the_input_sets():
    net = small_kresnet()
    images = shifted_images()
    before = state(net)
    seen, hooks = bn_inputs(net)
    adapt_batchnorm(net, images, batch_size=len(images))  # one batch: the statistics are the set's own
    for hook in hooks:
        hook.remove()
    assert len(seen) == 6 and not net.training
    for bn, (x,) in seen.items():
        dims = [0, 2, 3]
        torch.testing.assert_close(bn.running_mean, x.mean(dims), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var, x.var(dims, unbiased=True), rtol=1e-4, atol=1e-5)
        assert bn.momentum == 0.1  # restored
    after = state(net)
    for name, value in before.items():
        if name.endswith(("running_mean", "running_var")):
            assert not torch.allclose(after[name], value), name  # moved to the input's
        elif not name.endswith("num_batches_tracked"):
            assert torch.equal(after[name], value), name  # every weight untouched


def test_adapt_batchnorm_in_batches_averages_the_batches_equally():
    """Three batches of 32 (no runt): the running mean is the set's mean; on the first layer the
    statistics are the input's directly (first BatchNorm after Conv2d without bias)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten()).eval()
    images = shifted_images(96)
    adapt_batchnorm(net, images, batch_size=40, seed=1)
    with torch.no_grad():
        features = net[0](images)
    torch.testing.assert_close(net[1].running_mean, features.mean([0, 2, 3]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(net[1].running_var, features.var([0, 2, 3]), rtol=0.05, atol=1e-3)
    # Seeded: the same call gives the same statistics; another seed other batches.
    again = copy.deepcopy(net)
    adapt_batchnorm(again, images, batch_size=40, seed=1)
    assert torch.equal(again[1].running_var, net[1].running_var)
    adapt_batchnorm(again, images, batch_size=40, seed=2)
    assert not torch.equal(again[1].running_var, net[1].running_var)


def test_a_network_without_batchnorm_gets_one_line():
    net = create_model("cnn")
    with pytest.raises(ConfigError) as err:
        adapt_batchnorm(net, shifted_images(8), name="cnn")
    assert str(err.value) == "adapt=bn: model cnn has no BatchNorm layer to adapt"
    with pytest.raises(ConfigError, match="^adapt=tent: model CNN1 has no BatchNorm layer to adapt$"):
        adapt(net, shifted_images(8), "tent")
    with pytest.raises(ConfigError) as err:
        adapt(small_kresnet(), shifted_images(8), "full")
    assert str(err.value) == "adapt=full: expected one of none, bn, tent"


@torch.no_grad()
def eval_entropy(net: nn.Module, images: torch.Tensor) -> float:
    return float(mean_entropy(net.eval()(images)))


@torch.no_grad()
def batch_stats_entropy(net: nn.Module, images: torch.Tensor) -> float:
    net = copy.deepcopy(net)
    for bn in batchnorms(net):
        bn.train()
        bn.track_running_stats = False
    return float(mean_entropy(net(images)))


def test_tent_lowers_the_entropy_and_changes_only_batchnorm_scale_and_shift():
    net = small_kresnet()
    images = shifted_images(128)
    adabn = adapt(copy.deepcopy(net), images, "bn", batch_size=64)
    before = state(net)
    grads = {name: p.requires_grad for name, p in net.named_parameters()}
    tent(net, images, epochs=3, lr=1e-2, batch_size=32, seed=0)
    assert not net.training
    after = state(net)
    affine = {
        f"{name}.{kind}"
        for name, m in net.named_modules()
        if m in batchnorms(net)
        for kind in ("weight", "bias")
    }
    assert len(affine) == 12
    for name, value in before.items():
        if name in affine:
            assert not torch.equal(after[name], value), name
        else:
            assert torch.equal(after[name], value), name  # every other parameter and buffer
    assert {name: p.requires_grad for name, p in net.named_parameters()} == grads
    # The door: TENT then AdaBN predicts with lower entropy than AdaBN alone, and than the network as trained.
    adapted = adapt(copy.deepcopy(small_kresnet()), images, "tent", batch_size=64, tent_lr=1e-2)
    assert eval_entropy(adapted, images) < eval_entropy(adabn, images) - 0.05
    # What TENT itself minimises: the entropy with each BatchNorm normalising by the set's statistics.
    assert batch_stats_entropy(net, images) < batch_stats_entropy(small_kresnet(), images) - 0.05


def test_tent_is_seeded():
    images = shifted_images(32)
    first, second, other = (small_kresnet() for _ in range(3))
    for net, seed in ((first, 0), (second, 0), (other, 1)):
        tent(net, images, epochs=2, batch_size=8, seed=seed)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters()))


def test_adapt_models_adapts_copies_that_predict_proba_uses():
    """The door predict.py and the pipeline call: copies adapted per input file, the loaded
    checkpoint untouched (the next file adapts from it again), the same call the same probabilities."""
    from pathlib import Path

    import numpy as np

    from kmnist.data.preprocess import Preprocess
    from kmnist.engine.adapt import adapt_models
    from kmnist.engine.inference import LoadedModel, predict_proba

    model = LoadedModel(
        net=small_kresnet().to(memory_format=torch.channels_last),
        preprocess=Preprocess(scaling="standardize", mean=0.2, std=0.3),
        config={"model": {"name": "kresnet"}},
        path=Path("kresnet.ckpt"),
    )
    images = np.random.default_rng(0).integers(0, 256, size=(64, 28, 28), dtype=np.uint8)
    trained = state(model.net)
    assert adapt_models([model], images, "none") == [model]
    first = adapt_models([model], images, "bn", batch_size=32)
    second = adapt_models([model], images, "bn", batch_size=32)
    assert all(torch.equal(v, trained[k]) for k, v in model.net.state_dict().items())
    bn = batchnorms(first[0].net)[0]
    assert not torch.equal(bn.running_mean, batchnorms(model.net)[0].running_mean)
    probs = [predict_proba(m, images, progress=False) for m in (first, second, [model])]
    np.testing.assert_array_equal(probs[0], probs[1])
    assert not np.allclose(probs[0], probs[2])
    with pytest.raises(ConfigError, match="^adapt=on: expected one of none, bn, tent$"):
        adapt_models([model], images, "on")
