"""Pseudo-labelling, the documented second training stage: predict.py writes the confident rows
of an unlabelled file as a labelled CSV; train.py adds them to the training split only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import CONF, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from kmnist.data.io import read_digits
from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.errors import DataError
from kmnist.tasks.predict import predict
from kmnist.tasks.train import train


def predict_cfg(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            config_name="predict", return_hydra_config=True, overrides=["progress=false", *overrides]
        )
    HydraConfig().set_config(cfg)
    return cfg


@pytest.mark.slow
def test_pseudo_labels_hold_the_confident_rows_and_train_the_second_stage(compose_train, data_dir, tmp_path):
    ckpt = train(compose_train())[0]["best_ckpt"]
    test_file = data_dir / "test.csv.gz"
    probs = predict_proba([load_checkpoint(ckpt)], read_digits(test_file).images, progress=False)
    threshold = float(np.median(probs.max(axis=1)))  # about half the rows are "confident"
    result = predict(
        predict_cfg(
            f"ckpt={ckpt}",
            f"input={test_file}",
            f"output={tmp_path / 'sub.csv'}",
            f"pseudo_label_threshold={threshold}",
        )
    )

    pseudo_path = tmp_path / "pseudo_labels.csv.gz"
    pseudo = read_digits(pseudo_path)
    confident = probs.max(axis=1) >= threshold
    assert 0 < confident.sum() < len(probs)
    assert result["pseudo_label_rows"] == len(pseudo) == confident.sum()
    np.testing.assert_array_equal(pseudo.labels, probs.argmax(axis=1)[confident])
    np.testing.assert_array_equal(pseudo.images, read_digits(test_file).images[confident])
    # The submission still covers every row.
    assert len(pd.read_csv(tmp_path / "sub.csv")) == len(probs)

    # Stage two: the pseudo-labelled rows join the training split; validation is unchanged.
    cfg = compose_train(f"data.extra_train=[{pseudo_path}]")
    base = compose_train()
    from hydra.utils import instantiate

    with_extra, without = instantiate(cfg.data), instantiate(base.data)
    with_extra.setup("fit"), without.setup("fit")
    assert len(with_extra.train_set[0]) == len(without.train_set[0]) + len(pseudo)
    assert with_extra.val_set[0].equal(without.val_set[0])
    metrics, _ = train(cfg)
    assert 0.0 <= metrics["val/acc"] <= 1.0


def test_extra_train_without_labels_is_refused_naming_the_file(compose_train, data_dir):
    cfg = compose_train(f"data.extra_train=[{data_dir / 'test.csv.gz'}]")
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    with pytest.raises(DataError, match=r"test\.csv\.gz: data\.extra_train needs a `label` column"):
        datamodule.setup("fit")


def test_bad_threshold_is_one_clear_line(data_dir, tmp_path):
    done = run_cli(
        "predict.py",
        "ckpt=unused.ckpt",
        f"input={data_dir / 'test.csv.gz'}",
        "pseudo_label_threshold=1.5",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "pseudo_label_threshold=1.5: expected a probability in [0, 1]" in done.stderr
    assert "Traceback" not in done.stderr
