"""predict.py starts lean: Hydra imports every plugin at each start, and a sweeper plugin that
imported Optuna at module level cost every entry point Optuna, SciPy, SQLAlchemy and
scikit-learn (2.4 s on a 2-core AVX2 CPU). The trackers load only for `logger=mlflow|wandb`."""

from __future__ import annotations

import re

import torch
from conftest import CONF, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from kmnist.models import build_network

NEVER_IN_PREDICT = ("optuna", "mlflow", "wandb", "sqlalchemy", "scipy", "sklearn")


def _untrained_checkpoint(path):
    """A real kmnist checkpoint of an untrained CNN: what predict.py reads, without a training run."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=["model=cnn"]), resolve=False)
    net = build_network(cfg["model"])
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    config = {"model": cfg["model"], "data": {"scaling": "scale"}}
    torch.save({"state_dict": state, "hyper_parameters": {"config": config}}, path)


def test_predict_never_imports_optuna_or_the_trackers(tmp_path, data_dir, monkeypatch):
    _untrained_checkpoint(tmp_path / "cnn.ckpt")
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # `python -X importtime`: every module, as imported
    done = run_cli(
        "predict.py",
        f"ckpt={tmp_path / 'cnn.ckpt'}",
        f"input={data_dir / 'test.csv.gz'}",
        f"output={tmp_path / 'submission.csv'}",
        f"paths.log_dir={tmp_path}",
        "progress=false",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "submission.csv").read_text().startswith("id,label\n")
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+([\w.]+)$", done.stderr, re.MULTILINE))
    assert "torch" in imported  # the profile was read
    top = {name.split(".")[0] for name in imported}
    assert not top & set(NEVER_IN_PREDICT), sorted(top & set(NEVER_IN_PREDICT))
