"""One data folder key: paths.data_dir feeds training, prediction, the pipeline and the dev file;
the old data.dir= still works, with a note."""

from __future__ import annotations

import logging
from pathlib import Path

from conftest import CONF
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from kmnist.utils.deprecated_keys import apply_deprecated_keys


def composed(config: str, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name=config, overrides=list(overrides))


def test_paths_data_dir_feeds_every_entry_point(data_dir):
    train = composed("config", f"paths.data_dir={data_dir}", "experiment=best")
    assert train.data.dir == str(data_dir)
    assert Path(train.data.val_file).parent == data_dir  # the dev file is looked up there
    predict = composed("predict", f"paths.data_dir={data_dir}", "ckpt=x.ckpt")
    assert predict.input == f"{data_dir}/test.csv.gz"
    pipeline = composed("pipeline", f"paths.data_dir={data_dir}")
    assert pipeline.test_file == f"{data_dir}/test.csv.gz" and pipeline.dig_file == f"{data_dir}/dig.csv.gz"
    assert Path(pipeline.paths.dev_file).parent == data_dir


def test_the_old_data_dir_key_still_picks_the_folder_with_a_note(data_dir, caplog):
    cfg = composed("config", f"data.dir={data_dir}", "experiment=best")
    with caplog.at_level(logging.WARNING, logger="kmnist"):
        apply_deprecated_keys(cfg)
    assert cfg.paths.data_dir == str(data_dir) and cfg.data.dir == str(data_dir)
    assert Path(cfg.data.val_file).parent == data_dir  # the dev file follows the old key too
    notes = [r.getMessage() for r in caplog.records]
    assert notes == [
        f"data.dir is deprecated: use paths.data_dir={data_dir} (train, predict and the pipeline read it)"
    ]


def test_no_note_when_the_new_key_is_used(data_dir, caplog):
    cfg = composed("config", f"paths.data_dir={data_dir}")
    with caplog.at_level(logging.WARNING, logger="kmnist"):
        apply_deprecated_keys(cfg)
    assert not caplog.records and cfg.data.dir == str(data_dir)
