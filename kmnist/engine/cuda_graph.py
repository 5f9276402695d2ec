"""A training step's forward, loss and backward replayed as one CUDA graph.

Why: on an H100, a KResNet step on a batch of 1,024 is about 2.6 ms of GPU work, but some 250
kernel launches plus Python bookkeeping took 11-14 ms of host time (bench/FINDINGS.md, measured
with kmnist.callbacks.profiling.StepProfiler), so the GPU sat idle most of each step. A graph launches all
of forward and backward at once. The optimiser step stays outside the graph (a fused optimiser
is one or two kernels anyway), so learning-rate and momentum schedules work unchanged. This is
`torch.cuda.graph` as the PyTorch CUDA-graphs notes describe it; Lightning has no such option.

The graph holds fixed ("static") input, output and gradient tensors: each call copies the batch
into the static inputs and replays. The parameters' `.grad` tensors are the graph's and are
overwritten by every replay. Whoever sets them to None in between (Lightning frees gradients
before each validation) only detaches them: every replay puts the graph's tensors back in `.grad`.
"""

from __future__ import annotations

import torch
from torch import nn


class GraphedTrainStep:
    """`step(x, y) -> (loss, logits)` with the parameters' gradients left in `.grad`.

    The first `warmup_steps` calls run eagerly (cuDNN autotuning, lazy initialisation); the first
    later call whose batch has the previous call's shape captures the graph, and calls with that
    shape replay it. A batch of another shape (a last, smaller batch) runs eagerly into the same
    gradient tensors.
    """

    def __init__(self, net: nn.Module, criterion: nn.Module, warmup_steps: int = 3):
        self.net, self.criterion, self.warmup_steps = net, criterion, warmup_steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0
        self.static: dict[str, torch.Tensor] = {}
        self._last_shape: tuple | None = None

    def _params(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        loss = self.criterion(logits, y)
        loss.backward()
        return loss.detach(), logits.detach()

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.graph is not None:
            self._attach_grads()
            # Keep the graph's gradient tensors (None for a parameter the forward never uses): backward
            # adds into them.
            torch._foreach_zero_([g for g in self._graph_grads if g is not None])
            return self._forward_backward(x, y)
        for p in self._params():
            p.grad = None
        # Warm-up runs on a side stream, as PyTorch's CUDA-graph notes do: under autocast, a warm-up
        # on the default stream makes the capture fail ("operation would make the legacy stream
        # depend on a capturing blocking stream"; measured on an H100, torch 2.11).
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            out = self._forward_backward(x, y)
        torch.cuda.current_stream(x.device).wait_stream(side)
        return out

    def _attach_grads(self) -> None:
        for p, grad in zip(self._graph_params, self._graph_grads):
            if p.grad is not grad:
                p.grad = grad

    def _same_shape(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        sx, sy = self.static["x"], self.static["y"]
        return (
            x.shape == sx.shape and x.stride() == sx.stride() and x.dtype == sx.dtype and y.shape == sy.shape
        )

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if self.graph is not None:
            if not self._same_shape(x, y):
                return self._eager(x, y)
            self.static["x"].copy_(x)
            self.static["y"].copy_(y)
            self.graph.replay()
            self._attach_grads()
            return self.static["loss"], self.static["logits"]
        steady = self._last_shape == (x.shape, y.shape)
        self._last_shape = (x.shape, y.shape)
        if self.calls <= self.warmup_steps or not steady:  # never capture a one-off (short last) batch
            return self._eager(x, y)
        return self._capture(x, y)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for p in self._params():
            p.grad = None  # backward in the graph allocates them from the graph's memory pool
        self.static = {"x": x.clone(), "y": y.clone()}
        graph = torch.cuda.CUDAGraph()
        device = x.device.type
        # Inherit the caller's autocast (Lightning's precision plugin); its weight-cast cache must
        # be off while capturing, or the graph would read casts made before it.
        autocast = torch.autocast(
            device,
            dtype=torch.get_autocast_dtype(device),
            enabled=torch.is_autocast_enabled(device),
            cache_enabled=False,
        )
        torch.cuda.synchronize(x.device)
        with torch.cuda.graph(graph), autocast:
            self.static["loss"], self.static["logits"] = self._forward_backward(
                self.static["x"], self.static["y"]
            )
        self.graph = graph
        self._graph_params = self._params()
        self._graph_grads = [p.grad for p in self._graph_params]  # the graph's memory: replays write here
        graph.replay()  # capturing ran nothing: this is the step for this batch
        return self.static["loss"], self.static["logits"]
