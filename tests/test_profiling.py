"""kmnist.callbacks.profiling.StepProfiler through a real fit: a window of steps profiled, one report
written."""

from __future__ import annotations

import re
import warnings

from omegaconf import open_dict

from kmnist.tasks.train import train


def _fit_with_profiler(compose_train, **options):
    cfg = compose_train("model=cnn", "report=false", "validate_best=false")
    with open_dict(cfg):
        cfg.callbacks["profile"] = {
            "_target_": "kmnist.callbacks.profiling.StepProfiler",
            **{"row_limit": 5, **options},
        }
    train(cfg)


def test_step_profiler_writes_a_report_of_the_window(compose_train, tmp_path):
    filters = warnings.filters[:]
    # Every op listed: which ones lead by time depends on the machine's load.
    _fit_with_profiler(compose_train, start=2, steps=3, row_limit=1000)
    report = (tmp_path / "profile.txt").read_text()
    per_step = re.search(r"^3 steps in ([\d.]+) ms: ([\d.]+) ms per step", report, re.M)
    assert per_step and float(per_step[2]) > 0
    assert (
        "by host time (self)" in report and "aten::convolution" in report
    )  # torch.profiler's table of CNN1's ops
    assert warnings.filters == filters


def test_a_window_cut_short_by_the_end_of_training_is_still_reported(compose_train, tmp_path):
    _fit_with_profiler(compose_train, start=3, steps=100)  # 6 steps in all (the test config)
    assert re.search(r"^3 steps in [\d.]+ ms", (tmp_path / "profile.txt").read_text(), re.M)
