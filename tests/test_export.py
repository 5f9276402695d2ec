"""Export to ONNX and TorchScript from a real checkpoint; outputs must match PyTorch's."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.errors import ConfigError, ExportError
from kmnist.tasks.export import export
from kmnist.tasks.train import train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data_dir):
    from conftest import CONF, shrink
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    out = tmp_path_factory.mktemp("export_run")
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=[
                f"paths.data_dir={data_dir}",
                "data.val_writers=1",
                "model=kresnet",
                "data.scaling=standardize",
                "report=false",
            ],
        )
    shrink(cfg, out)
    HydraConfig().set_config(cfg)
    path = train(cfg)[0]["best_ckpt"]
    GlobalHydra.instance().clear()
    return path


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(checkpoint, tmp_path, fmt):
    result = export(checkpoint, fmt, tmp_path / f"model.{fmt}")
    assert result["max_abs_diff"] < 1e-4
    pixels = np.random.default_rng(1).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    expected = predict_proba([load_checkpoint(checkpoint)], pixels, progress=False)
    x = pixels[:, None].astype(np.float32)
    if fmt == "onnx":
        import onnxruntime

        got = onnxruntime.InferenceSession(result["output"]).run(None, {"pixels": x})[0]
    else:
        with torch.inference_mode():
            got = torch.jit.load(result["output"])(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)  # batch size differs from the traced one


def test_export_rejects_unknown_format(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="format='tflite'"):
        export(checkpoint, "tflite", tmp_path / "m")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch=0), "batch=0: expected a number of check images >= 1"),
        (dict(atol="abc"), "atol='abc': expected a tolerance >= 0"),
        (dict(atol=-1.0), "atol=-1.0: expected a tolerance >= 0"),
    ],
)
def test_export_refuses_bad_options_in_one_line(checkpoint, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        export(checkpoint, "onnx", tmp_path / "m.onnx", **kwargs)
    with pytest.raises(ConfigError, match=r"export takes one checkpoint"):
        export([checkpoint, checkpoint], "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_failed_check_keeps_the_earlier_export(checkpoint, tmp_path):
    good = export(checkpoint, "onnx", tmp_path / "model.onnx")
    before = (tmp_path / "model.onnx").read_bytes()
    # atol=0: ONNX Runtime's float kernels never match PyTorch's to the last bit (about 1e-7 apart), so
    # the check fails, as when a new runtime's outputs drift past the tolerance.
    assert good["max_abs_diff"] > 0
    with pytest.raises(
        ExportError, match=r"model.onnx: exported outputs differ from PyTorch's .*not written"
    ):
        export(checkpoint, "onnx", tmp_path / "model.onnx", atol=0.0, overwrite=True)
    assert (tmp_path / "model.onnx").read_bytes() == before and good["max_abs_diff"] < 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary left behind


def test_an_existing_output_is_replaced_only_when_asked(checkpoint, tmp_path):
    """As predict.py's output=: a file named by hand may be anything (another model's export, a report)."""
    other = tmp_path / "model.onnx"
    other.write_bytes(b"someone else's file")
    with pytest.raises(
        ConfigError, match=r"^output=.*model.onnx: already exists; pass overwrite=true to replace it"
    ):
        export(checkpoint, "onnx", other)
    assert other.read_bytes() == b"someone else's file"
    assert (
        export(checkpoint, "onnx", other, overwrite=True)["output"] == str(other)
        and other.read_bytes() != b"someone else's file"
    )
    default = export(checkpoint, "torchscript")[
        "output"
    ]  # beside the checkpoint: a re-export replaces its own
    assert export(checkpoint, "torchscript")["output"] == default


def test_export_into_a_folder_is_refused_before_the_work(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match=r"output=.*: is a folder; name the file, e.g. output=.*\.onnx"):
        export(checkpoint, "onnx", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt, kind", [("onnx", "ONNX"), ("torchscript", "TorchScript")])
def test_an_exported_model_given_as_a_checkpoint_is_named_for_what_it_is(checkpoint, tmp_path, fmt, kind):
    from kmnist.errors import CheckpointError

    exported = export(checkpoint, fmt, tmp_path / f"model.{fmt}")["output"]
    with pytest.raises(
        CheckpointError, match=rf"an exported {kind} model .*pass the \.ckpt it was exported from"
    ):
        load_checkpoint(exported)
    load_checkpoint(checkpoint)  # a checkpoint (also a zip archive) still loads


def test_predict_options_at_fault_are_one_line_before_any_work(checkpoint, data_dir, tmp_path):
    """accelerator= was a torch traceback (after loading everything); the pseudo-label file could replace
    the submission; pseudo_label_threshold=true ran as 1.0."""
    from conftest import CONF
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from kmnist.tasks.predict import predict

    def run(*overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            cfg = compose(
                config_name="predict",
                overrides=[f"ckpt={checkpoint}", f"input={data_dir}/test.csv.gz", *overrides],
            )
        with pytest.raises(ConfigError) as refused:
            predict(cfg)
        return str(refused.value)

    assert (
        run("accelerator=bogus", f"output={tmp_path}/a.csv")
        == "accelerator=bogus: expected auto, cpu, gpu (or gpu:N) or mps"
    )
    if not torch.cuda.is_available():
        assert run("accelerator=gpu", f"output={tmp_path}/a.csv").startswith(
            "accelerator=gpu: no CUDA GPU is visible"
        )
        assert run("accelerator=cuda:1", f"output={tmp_path}/a.csv").startswith(
            "accelerator=cuda:1: no CUDA GPU is visible"
        )
    assert (
        run("accelerator=cpu:1", f"output={tmp_path}/a.csv")
        == "accelerator=cpu:1: expected auto, cpu, gpu (or gpu:N) or mps"
    )
    assert run(f"output={tmp_path}/pseudo_labels.csv.gz", "pseudo_label_threshold=0.9").startswith(
        f"output={tmp_path}/pseudo_labels.csv.gz: the pseudo-label file has this name"
    )
    assert run(f"output={tmp_path}/a.csv", "pseudo_label_threshold=true").startswith(
        "pseudo_label_threshold=True: expected a probability"
    )
    assert list(tmp_path.iterdir()) == []
