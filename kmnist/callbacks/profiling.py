"""Where a training step's time goes: torch.profiler over a window of steps, plus every host-device
sync in that window with the Python line that caused it.

    python train.py experiment=best_gpu +callbacks.profile._target_=kmnist.callbacks.profiling.StepProfiler

Lightning's `trainer.profiler=pytorch` traces fixed early steps and writes trace files; this
profiles steady-state steps (after warm-up) and prints one table, which is what a GPU lease of a
few minutes has time to read. On CUDA it also turns on torch's sync debug mode for the window:
a sync (`.item()`, `torch.linalg.inv`'s info check, `bincount`'s size) stalls the host until the GPU
drains, so on small networks it, not arithmetic, sets the step time.
"""

from __future__ import annotations

import logging
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

log = logging.getLogger(__name__)


class StepProfiler(pl.Callback):
    """Profile training steps [start, start + steps) of the first fit; write `profile.txt` into the
    run directory and log it. `row_limit` rows per table."""

    def __init__(self, start: int = 60, steps: int = 20, row_limit: int = 20, filename: str = "profile.txt"):
        self.start, self.steps, self.row_limit, self.filename = start, steps, row_limit, filename
        self._profile: profile | None = None
        self._syncs: Counter = Counter()
        self._wall = 0.0
        self._done = False
        self._cuda = False
        self._saved_showwarning, self._saved_filters = None, []

    def _record_sync(self, message, category, filename, lineno, file=None, line=None) -> None:
        if "synchroniz" not in str(message):
            return self._saved_showwarning(message, category, filename, lineno, file, line)
        frames = [
            f
            for f in traceback.extract_stack()[:-1]
            if "site-packages/torch/" not in f.filename and not f.filename.endswith("warnings.py")
        ]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-3:][::-1])
        self._syncs[where] += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._done or self._profile is not None or trainer.global_step != self.start:
            return
        self._cuda = pl_module.device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self._cuda else [])
        if self._cuda:
            torch.cuda.synchronize(pl_module.device)
            self._saved_showwarning, self._saved_filters = warnings.showwarning, warnings.filters[:]
            warnings.showwarning = self._record_sync
            warnings.simplefilter("always", UserWarning)  # every sync, not the first per line
            torch.cuda.set_sync_debug_mode("warn")
        self._profile = profile(activities=activities)
        self._profile.__enter__()
        self._wall = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._profile is not None and trainer.global_step >= self.start + self.steps:
            self._finish(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._profile is not None:  # training ended inside the window: report what was profiled
            self._finish(trainer, pl_module)

    def _finish(self, trainer, pl_module) -> None:
        if self._cuda:  # leave torch and the warnings module as they were
            torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize(pl_module.device)
            warnings.showwarning = self._saved_showwarning
            warnings.filters[:] = self._saved_filters
        wall = time.perf_counter() - self._wall
        self._profile.__exit__(None, None, None)
        steps = max(trainer.global_step - self.start, 1)
        report = self.report(self._profile, steps, wall)
        self._profile, self._done = None, True
        log.info("step profile:\n%s", report)
        if trainer.is_global_zero:
            (Path(trainer.default_root_dir) / self.filename).write_text(report)

    def report(self, prof: profile, steps: int, wall: float) -> str:
        events = prof.key_averages()
        device_key = "self_device_time_total"
        lines = [
            f"{steps} steps in {wall * 1000:.1f} ms: {wall * 1000 / steps:.2f} ms per step "
            "(host wall time, GPU drained at both ends)"
        ]
        if self._cuda:
            # Kernel time as torch's own table totals it: device events, not user annotation ranges
            # (an annotation's time spans the kernels inside it and would count them twice).
            device_us = sum(
                e.self_device_time_total
                for e in events
                if e.device_type == DeviceType.CUDA and not e.is_user_annotation
            )
            lines.append(f"GPU busy {device_us / 1000 / steps:.2f} ms per step (sum of kernel times)")
            lines.append(
                f"host-device syncs in the window: {sum(self._syncs.values())} "
                f"({sum(self._syncs.values()) / steps:.1f} per step)"
            )
            lines += [f"  {n:5d}  {where}" for where, n in self._syncs.most_common(10)]
            lines += ["", "by GPU time:", events.table(sort_by=device_key, row_limit=self.row_limit)]
        lines += [
            "",
            "by host time (self):",
            events.table(sort_by="self_cpu_time_total", row_limit=self.row_limit),
        ]
        return "\n".join(lines)
