"""speed.cuda_graph=true: forward + backward replayed as a CUDA graph, the optimiser stepped by the module.

On CPU the option runs the same manual-optimisation loop eagerly, and must train exactly as
Lightning's automatic loop does. The graph itself needs a GPU: those tests skip without one (the
GPU suite, bench/gpu_suite.sh, runs them).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from omegaconf import open_dict
from torch import nn

from kmnist.engine.cuda_graph import GraphedTrainStep
from kmnist.errors import ConfigError
from kmnist.models import build_network
from kmnist.tasks.train import train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def restore_determinism():
    """trainer.deterministic=true switches torch's global deterministic mode on and leaves it on;
    some CUDA backward kernels (adaptive max-pool) have no deterministic version."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def _weights(ckpt_path: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in torch.load(ckpt_path, weights_only=True)["state_dict"].items()}


@pytest.mark.parametrize(
    "scheduler", ["onecycle", "plateau"]
)  # stepped every batch / every epoch on a metric
def test_manual_loop_trains_exactly_like_lightnings(compose_train, tmp_path, scheduler):
    results = []
    for graph in (False, True):
        cfg = compose_train(
            "model=cnn",
            f"scheduler={scheduler}",
            "report=false",
            "validate_best=false",
            "trainer.deterministic=true",
            f"speed.cuda_graph={str(graph).lower()}",
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / str(graph))
            cfg.trainer.max_epochs = 3
            cfg.trainer.limit_train_batches = 5
            if scheduler == "plateau":  # make it fire: the LR must drop after epoch 1
                cfg.scheduler.fn.patience = 0
                cfg.scheduler.fn.threshold = 10.0
        metrics, _ = train(cfg)
        results.append((metrics, _weights(str(tmp_path / str(graph) / "checkpoints" / "last.ckpt"))))
    (auto, auto_w), (manual, manual_w) = results
    assert manual["train/loss"] == auto["train/loss"] and manual["val/acc"] == auto["val/acc"]
    assert auto_w.keys() == manual_w.keys()
    for name in auto_w:
        assert torch.equal(auto_w[name], manual_w[name]), name
    # The LR schedule (logged every step by the LR monitor) moved, and identically.
    auto_lrs, manual_lrs = (
        pd.read_csv(tmp_path / run / "csv" / "metrics.csv").filter(like="lr-").stack().dropna().tolist()
        for run in ("False", "True")
    )
    assert manual_lrs == auto_lrs and len(auto_lrs) == 15 and min(auto_lrs) < max(auto_lrs)


@pytest.mark.parametrize("option", ["speed.compile=true", "finetune=fastai", "trainer.precision=16-mixed"])
def test_cuda_graph_refuses_what_it_cannot_combine_with(compose_train, option):
    cfg = compose_train("model=cnn", "speed.cuda_graph=true", option)
    with pytest.raises(ConfigError, match="cuda_graph"):
        train(cfg)


def test_resuming_across_the_switch_is_refused(compose_train, tmp_path):
    """The two loops count steps apart: a resumed run would restart its step count."""
    # scheduler=none: a one-cycle schedule cannot be extended to a second epoch (engine/resumable.py).
    train(compose_train("model=cnn", "report=false", "validate_best=false", "scheduler=none"))
    cfg = compose_train(
        "model=cnn",
        "report=false",
        "validate_best=false",
        "speed.cuda_graph=true",
        "scheduler=none",
        f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}",
    )
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
    with pytest.raises(ConfigError, match="speed.cuda_graph=false"):
        train(cfg)


def test_lr_finder_sweeps_the_lr_under_the_manual_loop(compose_train, tmp_path, caplog):
    """The LR finder's own scheduler must be stepped by the module (Lightning steps none here)."""
    cfg = compose_train(
        "model=cnn",
        "report=false",
        "validate_best=false",
        "speed.cuda_graph=true",
        "tune.lr_find=true",
        "tune.num_training=8",
        "scheduler=none",
    )
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 10
    with caplog.at_level("WARNING"):
        train(cfg)
    lrs = json.loads((tmp_path / "lr_find.json").read_text())["lr"]
    assert len(lrs) >= 5 and all(b > a for a, b in zip(lrs, lrs[1:]))
    # 8 steps are too few for Lightning to pick a point: said so, and the configured LR trains.
    assert json.loads((tmp_path / "lr_find.json").read_text())["suggestion"] is None
    assert "LR finder found no learning rate to suggest (tune.num_training=8 steps: try more)" in caplog.text
    # No CUDA device here: the run says it is not the graph's speed.
    assert caplog.text.count("speed.cuda_graph=true: no CUDA device here") == (
        0 if torch.cuda.is_available() else 1
    )


def _sgd_run(step, net: nn.Module, batches) -> list[float]:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for i, (x, y) in enumerate(batches):
        loss, _ = step(x, y)
        optimizer.step()
        losses.append(float(loss))
        if i == 4:  # as Lightning does before every validation: the graph must still find its gradients
            optimizer.zero_grad(set_to_none=True)
    return losses


@cuda
def test_graph_replay_matches_eager_training_on_the_gpu():
    torch.manual_seed(0)
    eager_net = build_network({"name": "kresnet"}).cuda()
    graph_net = build_network({"name": "kresnet"}).cuda()
    graph_net.load_state_dict(eager_net.state_dict())
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    batches = [
        (torch.randn(64, 1, 28, 28, device="cuda"), torch.randint(0, 10, (64,), device="cuda"))
        for _ in range(8)
    ]
    batches.append(
        (batches[0][0][:17], batches[0][1][:17])
    )  # a smaller last batch: eager, into the graph's grads

    def eager(x, y):
        eager_net.zero_grad(set_to_none=True)
        loss = criterion(eager_net(x), y)
        loss.backward()
        return loss.detach(), None

    graphed = GraphedTrainStep(graph_net, criterion, warmup_steps=2)
    expected, got = _sgd_run(eager, eager_net, batches), _sgd_run(graphed, graph_net, batches)
    assert graphed.graph is not None and graphed.calls == len(batches)
    # Not bit-identical: cuDNN's backward sums with atomics in either order.
    assert got == pytest.approx(expected, rel=1e-2)
    for a, b in zip(eager_net.state_dict().values(), graph_net.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-2, atol=1e-3)


@cuda
def test_graph_captures_under_bf16_autocast_and_uses_new_inputs():
    torch.manual_seed(0)
    net = build_network({"name": "cnn", "dropout": 0.0}).cuda()
    step = GraphedTrainStep(net, nn.CrossEntropyLoss(), warmup_steps=1)
    x = torch.randn(32, 1, 28, 28, device="cuda")
    y = torch.randint(0, 10, (32,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        step(x, y)  # eager warm-up
        loss_a, logits_a = step(x, y)  # captured, replayed
        loss_a, logits_a = (
            float(loss_a),
            logits_a.clone(),
        )  # the graph's outputs are overwritten by the next replay
        loss_b, logits_b = step(x.flip(0), y.flip(0))  # replayed on other data: other outputs
    assert logits_a.dtype == torch.bfloat16  # the graph ran under autocast
    assert torch.allclose(logits_b.float(), logits_a.flip(0).float(), atol=0.05)
    assert loss_a == pytest.approx(float(loss_b), rel=0.05)


@cuda
def test_lightning_fit_with_cuda_graph_learns_as_eager_does(compose_train, tmp_path):
    """Through the real Trainer, across validations (which free gradients) and epochs."""
    results = {}
    for graph in (False, True):
        cfg = compose_train(
            "experiment=best_gpu",
            f"speed.cuda_graph={str(graph).lower()}",
            "report=false",
            "validate_best=false",
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / str(graph))
            cfg.trainer.accelerator = "gpu"
            cfg.trainer.max_epochs = 4
            cfg.trainer.limit_train_batches = None
            cfg.trainer.limit_val_batches = None
            cfg.data.batch_size = 128
        train(cfg)
        curve = pd.read_csv(tmp_path / str(graph) / "csv" / "metrics.csv").dropna(subset=["train/loss"])
        results[graph] = curve["train/loss"].tolist()
    eager, graphed = results[False], results[True]
    assert len(graphed) == 4 and graphed[-1] < graphed[1] - 0.02  # still learning after the first validation
    assert graphed == pytest.approx(eager, rel=0.05)
