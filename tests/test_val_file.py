"""data.val_file: a labelled file validated beside (or instead of) the held-out writers, as dev/*."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import CONF, DEV_ROWS, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from kmnist.data.datamodule import KannadaMNISTDataModule
from kmnist.data.io import read_digits, table_to_frame
from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.errors import DataError
from kmnist.tasks.train import train
from kmnist.utils.atomic import atomic_write_csv


def dev_accuracy(ckpt: str, data_dir: Path) -> float:
    """dev/acc recomputed outside Lightning: the checkpoint's predictions on the file itself."""
    dev = read_digits(data_dir / "test_dev.csv.gz")
    probs = predict_proba([load_checkpoint(ckpt)], dev.images, progress=False)
    return float((probs.argmax(1) == dev.labels).mean())


def test_two_validation_sets_are_logged_side_by_side(compose_train, data_dir, tmp_path, caplog):
    cfg = compose_train("model=cnn", "data.val_file=${data.dir}/test_dev.csv.gz")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
        cfg.trainer.limit_val_batches = None
    with caplog.at_level(logging.INFO, logger="kmnist.tasks.train"):
        metrics, _ = train(cfg)
    # The closing line gives dev/acc (the estimate on new writers) beside val/acc, not only metrics.json.
    assert (
        f"val/acc = {metrics['val/acc']:.4f}, dev/acc = {metrics['dev/acc']:.4f} after 2 epochs"
        in caplog.text
    )

    assert {"val/acc", "val/loss", "dev/acc", "dev/loss"} <= set(metrics)
    assert metrics["dev/acc"] == pytest.approx(dev_accuracy(metrics["best_ckpt"], data_dir), abs=1e-6)
    # Each epoch logs both sets under their own names (no /dataloader_idx_N suffixes).
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert logged["dev/acc"].notna().sum() >= 2 and logged["val/acc"].notna().sum() >= 2
    assert not [c for c in logged.columns if "dataloader_idx" in c]
    # The report evaluates the file into dev/, beside the held-out writers' report.
    per_class = pd.read_csv(tmp_path / "dev" / "per_class.csv")
    assert per_class["support"].sum() == DEV_ROWS
    assert metrics["dev/accuracy"] == pytest.approx(metrics["dev/acc"], abs=1e-6)
    assert (tmp_path / "dev" / "confusion.png").is_file() and (tmp_path / "confusion.png").is_file()
    assert pd.read_csv(tmp_path / "per_class.csv")["support"].sum() == 1280  # the held-out writer
    # derived.yaml names the files the run read, resolved (config.yaml keeps ${data.dir}), with their hashes.
    from kmnist.utils.hashing import file_sha256

    derived = (tmp_path / "derived.yaml").read_text()
    for key, name in (("data.train_file", "train.csv.gz"), ("data.val_file", "test_dev.csv.gz")):
        file = (data_dir / name).resolve()
        assert f"#   {key} = {file}  (sha256 {file_sha256(file)})" in derived


@pytest.mark.slow
def test_checkpoint_monitor_follows_optimized_metric(compose_train, tmp_path):
    cfg = compose_train("model=cnn", "data.val_file=${data.dir}/test_dev.csv.gz", "optimized_metric=dev/acc")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
    metrics, _ = train(cfg)
    ckpt = torch.load(metrics["best_ckpt"], weights_only=True)
    state = ckpt["callbacks"][next(k for k in ckpt["callbacks"] if "ModelCheckpoint" in k)]
    assert state["monitor"] == "dev/acc"
    assert float(state["best_model_score"]) == pytest.approx(metrics["dev/acc"])
    assert Path(metrics["best_ckpt"]).name.endswith(f"score_{metrics['dev/acc']:.4f}.ckpt")


def test_all_writers_train_and_the_file_validates(compose_train, data_dir, tmp_path):
    cfg = compose_train("model=cnn", "data.val_writers=0", "data.val_file=${data.dir}/test_dev.csv.gz")
    metrics, _ = train(cfg)
    assert "val/acc" not in metrics and "dev/acc" in metrics
    assert json.loads((tmp_path / "metrics.json").read_text())["dev/acc"] == pytest.approx(metrics["dev/acc"])
    ckpt = torch.load(metrics["best_ckpt"], weights_only=True)
    assert ckpt["hyper_parameters"]["config"]["optimized_metric"] == "dev/acc"
    assert metrics["dev/acc"] == pytest.approx(dev_accuracy(metrics["best_ckpt"], data_dir), abs=1e-6)


@pytest.mark.parametrize(
    "value, message",
    [
        ("nowhere.csv.gz", "nowhere.csv.gz: data.val_file not found"),
        ("test.csv.gz", "test.csv.gz: data.val_file needs a `label` column"),
    ],
)
def test_a_bad_val_file_is_one_line_naming_it(data_dir, tmp_path, value, message):
    done = run_cli(
        "train.py",
        f"paths.data_dir={data_dir}",
        "data.val_writers=1",
        f"paths.log_dir={tmp_path}",
        f"data.val_file={value}",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("extra", ["test_dev.csv.gz", "copy_of_dev.csv.gz"])
def test_training_on_the_val_file_itself_is_refused(data_dir, tmp_path, extra):
    shutil.copy(
        data_dir / "test_dev.csv.gz", tmp_path / "copy_of_dev.csv.gz"
    )  # the same bytes by another name
    extra_path = data_dir / extra if extra == "test_dev.csv.gz" else tmp_path / extra
    dm = KannadaMNISTDataModule(
        dir=str(data_dir), val_writers=1, val_file="test_dev.csv.gz", extra_train=[str(extra_path)]
    )
    with pytest.raises(DataError, match=rf"{extra}: data.extra_train is the data.val_file"):
        dm.setup("fit")
    # Another file holding the same images trains: pseudo_labels.csv.gz holds test images, dev's among them
    # (the check is the file, not its images; its labels here stand in for predicted ones).
    other = read_digits(data_dir / "test_dev.csv.gz")
    pseudo = tmp_path / "pseudo.csv.gz"
    other.ids = None
    atomic_write_csv(table_to_frame(other), pseudo)
    dm = KannadaMNISTDataModule(
        dir=str(data_dir), val_writers=1, val_file="test_dev.csv.gz", extra_train=[str(pseudo)]
    )
    dm.setup("fit")
    assert len(dm.dev_set[0]) == DEV_ROWS


def test_the_flagship_keeps_its_last_epoch_and_reports_dev(compose_train, tmp_path):
    """experiment=best: the checkpoint is the last epoch (not a held-out-writer pick), scored on dev too."""
    cfg = compose_train("experiment=best", "report=false")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 3
        cfg.trainer.limit_train_batches = 3
    assert cfg.data.val_file.endswith("test_dev.csv.gz")
    metrics, _ = train(cfg)
    assert Path(metrics["best_ckpt"]).name == "epoch_002.ckpt" and metrics["epochs"] == 3
    assert {"val/acc", "dev/acc"} <= set(metrics)


def test_quick_validates_once_after_its_last_epoch(compose_train, tmp_path):
    cfg = compose_train("experiment=quick", "report=false")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 3  # check_val_every_n_epoch follows it
        cfg.trainer.limit_train_batches = 3
    metrics, _ = train(cfg)
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert logged["dev/acc"].dropna().size == 1 and logged.loc[logged["dev/acc"].notna(), "epoch"].item() == 2
    assert metrics["dev/acc"] == pytest.approx(logged["dev/acc"].dropna().item())
    assert Path(metrics["best_ckpt"]).name == "epoch_002.ckpt"


@pytest.mark.parametrize(
    "files, expected",
    [
        (["test_dev.csv.gz", "test_labelled.csv.gz"], "test_dev.csv.gz"),  # the Kaggle layout shipped here
        (["test_labelled.csv.gz"], "test_labelled.csv.gz"),  # the downloader's: all 8 test writers labelled
        ([], None),  # Kaggle's own files: the held-out writers validate alone
    ],
)
def test_the_recipes_validate_on_whichever_test_cohort_the_data_has(data_dir, tmp_path, files, expected):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ["train.csv.gz", *files]:
        (folder / name).symlink_to(data_dir / name)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            for config, overrides in [
                ("config", ["experiment=best"]),
                ("config", ["hparams_search=dev_grid"]),
                ("pipeline", []),
            ]:
                cfg = compose(
                    config_name=config,
                    overrides=[
                        f"paths.data_dir={folder}",
                        *overrides,
                    ],
                )
                value = cfg.data.val_file if config == "config" else cfg.paths.dev_file
                assert value == (str(folder / expected) if expected else None), (config, overrides)
    finally:
        GlobalHydra.instance().clear()
