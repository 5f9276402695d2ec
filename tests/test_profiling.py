"""kmnist.profiling.StepProfiler through a real fit: a window of steps profiled, one report written."""

from __future__ import annotations

import re

import pytest

from omegaconf import open_dict

from kmnist.training import train


def test_step_profiler_writes_a_report_of_the_window(compose_train, tmp_path):
    cfg = compose_train("model=cnn", "report=false", "validate_best=false")
    with open_dict(cfg):
        cfg.callbacks["profile"] = {"_target_": "kmnist.profiling.StepProfiler", "start": 2, "steps": 3, "row_limit": 5}
    train(cfg)
    report = (tmp_path / "profile.txt").read_text()
    per_step = re.search(r"^3 steps in ([\d.]+) ms: ([\d.]+) ms per step", report, re.M)
    assert per_step and float(per_step[2]) > 0 and float(per_step[1]) / 3 == pytest.approx(float(per_step[2]), abs=0.05)
    assert "by host time (self)" in report and "aten::" in report  # torch.profiler's table of the ops
