"""predict.py's transductive options: prior= (decisions whose class totals follow a prior) and
adapt= (BatchNorm re-estimated on the input), with the raw probabilities saved beside the submission."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import CONF, shrink
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from kmnist.engine.label_shift import apply_prior
from kmnist.errors import ConfigError
from kmnist.tasks.predict import predict
from kmnist.tasks.train import train


@pytest.fixture(scope="module")
def kresnet_ckpt(tmp_path_factory, data_dir):
    """A briefly trained KResNet (it has BatchNorm), through the real training task."""
    GlobalHydra.instance().clear()
    out = tmp_path_factory.mktemp("kresnet")
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=[f"paths.data_dir={data_dir}", "data.val_writers=1", "model=kresnet", "report=false"],
        )
    shrink(cfg, out)  # compose_train's shrinking, for one run the module's tests share
    HydraConfig().set_config(cfg)
    ckpt = train(cfg)[0]["best_ckpt"]
    GlobalHydra.instance().clear()
    return ckpt


def run_predict(ckpt, data_dir, output, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            config_name="predict",
            overrides=[
                f"ckpt={ckpt}",
                f"paths.data_dir={data_dir}",
                f"output={output}",
                "progress=false",
                *overrides,
            ],
        )
    GlobalHydra.instance().clear()
    return predict(cfg)


def test_prior_uniform_balances_the_class_totals_and_the_raw_probabilities_are_kept(
    kresnet_ckpt, data_dir, tmp_path
):
    plain = run_predict(kresnet_ckpt, data_dir, tmp_path / "plain.csv")
    balanced = run_predict(kresnet_ckpt, data_dir, tmp_path / "balanced.csv", "prior=uniform")
    rows = balanced["rows"]
    assert balanced["class_totals"] == [rows // 10] * 10 and plain["class_totals"] != balanced["class_totals"]
    probs = np.load(tmp_path / "balanced_probs.npy")
    assert probs.shape == (rows, 10) and balanced["probs"] == str((tmp_path / "balanced_probs.npy").resolve())
    # The saved probabilities are the ensemble's own: the prior applies again to the same decisions.
    np.testing.assert_array_equal(probs, np.load(tmp_path / "plain_probs.npy"))
    assert (pd.read_csv(tmp_path / "plain.csv")["label"].to_numpy() == probs.argmax(1)).all()
    again = apply_prior(probs, "uniform").argmax(1)
    assert (pd.read_csv(tmp_path / "balanced.csv")["label"].to_numpy() == again).all()


def test_adapt_bn_is_seeded_and_changes_the_probabilities(kresnet_ckpt, data_dir, tmp_path):
    run_predict(kresnet_ckpt, data_dir, tmp_path / "plain.csv")
    run_predict(kresnet_ckpt, data_dir, tmp_path / "a.csv", "adapt=bn")
    result = run_predict(kresnet_ckpt, data_dir, tmp_path / "b.csv", "adapt=bn")
    assert result["adapt"] == "bn"
    first, second = np.load(tmp_path / "a_probs.npy"), np.load(tmp_path / "b_probs.npy")
    np.testing.assert_array_equal(first, second)  # the same command writes the same file
    assert not np.allclose(first, np.load(tmp_path / "plain_probs.npy"), atol=1e-4)


def test_adapt_without_batchnorm_and_an_unknown_prior_are_one_line(compose_train, data_dir, tmp_path):
    dnn = train(compose_train("model=dnn", "report=false"))[0]["best_ckpt"]
    with pytest.raises(ConfigError, match=r"^adapt=bn: model dnn has no BatchNorm layer to adapt"):
        run_predict(dnn, data_dir, tmp_path / "dnn.csv", "adapt=bn")
    with pytest.raises(ConfigError, match=r"^prior=flat: expected one of none, uniform, estimate$"):
        run_predict(dnn, data_dir, tmp_path / "x.csv", "prior=flat")
    assert not (tmp_path / "x.csv").exists()
