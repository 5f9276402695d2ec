"""`precision=auto`: bf16 autocast where the device computes bf16 natively, float32 elsewhere,
for training (trainer.precision) and prediction (predict.py precision=...)."""

from __future__ import annotations

import numpy as np
import torch
from conftest import run_cli

from kmnist.data.io import read_digits
from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.engine.precision import resolve_precision
from kmnist.tasks.train import train


def cpu_has_native_bf16() -> bool:
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def test_auto_precision_trains_with_what_this_cpu_computes_natively(compose_train, tmp_path):
    expected = "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    metrics, run = train(compose_train("model=kresnet", "trainer.precision=auto", "report=false"))
    assert run.trainer.precision == expected  # Lightning got the resolved value, not "auto"
    stored = torch.load(metrics["best_ckpt"], weights_only=True)["hyper_parameters"]["config"]
    assert stored["trainer"]["precision"] == expected
    assert (
        f'trainer.precision: "{expected}"  # trainer.precision=auto: '
        in (tmp_path / "derived.yaml").read_text()
    )


def test_explicit_precisions_are_left_as_given():
    assert resolve_precision("32-true", "auto") is None and resolve_precision("bf16-mixed", "cpu") is None
    # No GPU here: auto on one asked for but absent falls back to float32, saying why.
    if not torch.cuda.is_available():
        assert resolve_precision("auto", "gpu") == (
            "32-true",
            "trainer.precision=auto: no native bf16 on cuda (bf16 would be emulated, slower than float32)",
        )


def test_bf16_prediction_runs_under_autocast_and_stays_close(compose_train, data_dir):
    metrics, _ = train(compose_train("model=kresnet", "report=false"))
    model = load_checkpoint(metrics["best_ckpt"])
    images = read_digits(data_dir / "test.csv.gz").images[:64]
    fp32 = predict_proba([model], images, progress=False)
    bf16 = predict_proba([model], images, progress=False, precision="bf16-mixed")
    assert not np.array_equal(fp32, bf16)  # autocast was on: bf16 rounding moves the probabilities
    np.testing.assert_allclose(bf16, fp32, atol=0.05)
    np.testing.assert_allclose(bf16.sum(axis=1), 1.0, atol=1e-5)  # the softmax stays in float32
    np.testing.assert_array_equal(predict_proba([model], images, progress=False, precision="32"), fp32)


def test_a_bad_predict_precision_is_one_line_before_any_checkpoint_is_read(tmp_path):
    done = run_cli(
        "predict.py",
        f"ckpt={tmp_path / 'absent.ckpt'}",
        "precision=fp16",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert (
        "precision='fp16': expected one of 32-true, 32, bf16-mixed, bf16, auto" in last
        and "Traceback" not in done.stderr
    )


def test_auto_takes_bf16_only_on_gpus_that_compute_it_natively(monkeypatch):
    from kmnist.engine.precision import native_bf16

    # No GPU here: stand in for one whose bf16 is emulated (V100, T4), which torch counts by default.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert native_bf16("cuda") is None
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: True
    )  # an A100/H100
    assert native_bf16("cuda") == "this GPU computes bf16 natively"
