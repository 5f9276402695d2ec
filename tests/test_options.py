"""Option checks: every value range and every option conflict is refused before anything is
built, as one line naming `option=value`."""

from __future__ import annotations

import re

import pytest
from conftest import CONF, run_cli
from test_recipes import composed

from kmnist.engine.options import check_options, processes
from kmnist.errors import ConfigError


@pytest.mark.parametrize(
    "override,needle",
    [
        ("data.batch_size=0", "data.batch_size=0: expected a value in [1, inf]"),
        ("data.batch_size=2.5", "data.batch_size=2.5: expected an integer"),
        ("optim.lr=-1", "optim.lr=-1: expected a value in (0, inf]"),
        ("optim.lr=0", "optim.lr=0: expected a value in (0, inf]"),
        ("optim.lr=fast", "optim.lr='fast': expected a number"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0: expected a value in [1, inf]"),
        ("loss.label_smoothing=1.0", "loss.label_smoothing=1.0: expected a value in [0, 1)"),
        ("data.val_fraction=1", "data.val_fraction=1: expected a value in [0, 1)"),
        ("data.val_writers=-2", "data.val_writers=-2: expected a value in [0, inf]"),
        ("model.dropout=1.5", "model.dropout=1.5: expected a value in [0, 1)"),
        ("data.limit_rows=0", "data.limit_rows=0: expected a value in [1, inf]"),
        ("seed=abc", "seed='abc': expected an integer"),
        ("seed=-1", "seed=-1: expected a value in [0, 4294967295]"),
        ("data.augment.elastic=abc", "data.augment.elastic='abc': expected a number"),
        (
            "model=kresnet model.widths=abc",
            "model.widths=abc: expected a list of positive channel counts, e.g. model.widths=[32,64,128]",
        ),
        (
            "model=kresnet model.widths=[32,0]",
            "model.widths=[32, 0]: expected a list of positive channel counts, e.g. model.widths=[32,64,128]",
        ),
    ],
)
def test_value_out_of_range_is_named(override, needle):
    cfg = composed(
        "model=cnn", *override.split()
    )  # not shrunk: the fixture would replace batch size and epochs
    with pytest.raises(ConfigError) as err:
        check_options(cfg)
    assert str(err.value) == needle


@pytest.mark.parametrize(
    "overrides",
    [
        ("speed.cuda_graph=true", "speed.compile=true"),
        ("speed.cuda_graph=true", "finetune=fastai"),
        ("speed.cuda_graph=true", "trainer.precision=16-mixed"),
        ("speed.cuda_graph=true", "trainer=ddp"),
    ],
)
def test_conflicting_options_are_refused(compose_train, overrides):
    cfg = compose_train("model=cnn", *overrides)
    with pytest.raises(ConfigError, match="speed.cuda_graph=true"):
        check_options(cfg)


def test_sound_recipes_pass(compose_train):
    for overrides in [
        (),
        ("experiment=best",),
        ("experiment=notebook_convnet",),
        ("speed.cuda_graph=true", "trainer.precision=bf16-mixed"),
    ]:
        check_options(compose_train(*overrides))


def test_process_count_from_the_trainer_config(compose_train):
    assert processes(compose_train().trainer) == 1
    assert processes(compose_train("trainer=ddp").trainer) == 2
    assert processes(compose_train("trainer=ddp", "trainer.devices=3", "trainer.num_nodes=2").trainer) == 6


def test_cli_prints_one_line_and_no_traceback(tmp_path, data_dir):
    result = run_cli(
        "train.py",
        f"paths.data_dir={data_dir}",
        "data.batch_size=0",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: data.batch_size=0: expected a value in [1, inf]"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "override, needle",
    [
        ("trainer.precision=bogus", "trainer: Precision 'bogus' is invalid"),
        ("trainer.devices=abc", "trainer: `devices` selected with `CPUAccelerator` should be an int > 0"),
        ("+trainer.strategy=bogus", "trainer: You selected an invalid strategy name: `strategy='bogus'`"),
    ],
)
def test_a_value_lightnings_trainer_refuses_is_one_line_naming_trainer(tmp_path, data_dir, override, needle):
    result = run_cli(
        "train.py",
        f"paths.data_dir={data_dir}",
        "model=cnn",
        override,
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {needle}")
    assert "Traceback" not in result.stderr and "Error in call to target" not in result.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the machine has a GPU")
def test_a_gpu_trainer_without_a_gpu_is_one_line():
    with pytest.raises(
        ConfigError, match=r"^trainer.accelerator=gpu: no CUDA GPU is visible on this machine"
    ):
        check_options(composed("model=cnn", "trainer=gpu"))


def test_a_fine_tuning_run_resumes_offline_whatever_its_weights_came_from(tmp_path):
    """model.pretrained / model.weights say where the first weights came from; the checkpoint replaces
    them, so an offline resume with model.pretrained=false is the same network."""
    import torch
    from omegaconf import OmegaConf

    from kmnist.engine.resumable import check_resume_checkpoint
    from kmnist.errors import CheckpointError

    trained = composed("experiment=notebook_resnet50")
    ckpt = tmp_path / "last.ckpt"
    torch.save(
        {
            "pytorch-lightning_version": "2.6",
            "state_dict": {},
            "hyper_parameters": {"config": {"model": OmegaConf.to_container(trained.model, resolve=True)}},
        },
        ckpt,
    )
    check_resume_checkpoint(str(ckpt), composed("experiment=notebook_resnet50", "model.pretrained=false"))
    check_resume_checkpoint(
        str(ckpt), composed("experiment=notebook_resnet50", "model.weights=/somewhere/resnet50.pth")
    )
    with pytest.raises(
        CheckpointError, match="trained with model.name=resnet50, this run has model.name=cnn"
    ):
        check_resume_checkpoint(str(ckpt), composed("experiment=notebook_resnet50", "model=cnn"))


def test_a_bad_option_is_reported_before_torch_loads():
    import subprocess
    import sys

    code = (
        "import sys; from hydra import compose, initialize_config_dir\n"
        "from kmnist.engine.options import check_options\n"
        f"with initialize_config_dir(version_base='1.3', config_dir={str(CONF)!r}):\n"
        "    cfg = compose(config_name='config', overrides=['model=cnn', 'seed=abc'])\n"
        "try:\n    check_options(cfg)\nexcept ValueError as e:\n    print(e)\n"
        "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["seed='abc': expected an integer", "torch not loaded"], done.stderr[
        -2000:
    ]


def test_a_dev_ranked_grid_without_a_dev_file_is_refused_before_training(tmp_path, data_dir):
    """paths.dev_file finds no labelled test file in this folder: the grid would train every job and
    rank none."""
    import shutil

    (tmp_path / "data").mkdir()
    shutil.copy(data_dir / "train.csv.gz", tmp_path / "data" / "train.csv.gz")
    with pytest.raises(
        ConfigError, match=r"^leaderboard_metric=dev/acc: no dev file to measure it on \(data.val_file=null"
    ):
        check_options(composed("hparams_search=dev_grid", f"paths.data_dir={tmp_path / 'data'}"))
    with pytest.raises(ConfigError, match=r"^optimized_metric=dev/acc: no dev file"):
        check_options(composed("optimized_metric=dev/acc", f"paths.data_dir={tmp_path / 'data'}"))
    check_options(
        composed("hparams_search=dev_grid", f"paths.data_dir={data_dir}")
    )  # with test_dev.csv.gz there: sound


@pytest.mark.parametrize(
    "metric, mode, direction",
    [("val/acc", "max", "maximize"), ("val/loss", "min", "minimize"), ("dev/acc", "max", "maximize")],
)
def test_which_way_the_optimized_metric_improves_follows_its_name(metric, mode, direction):
    cfg = composed(
        f"optimized_metric={metric}", "callbacks=[default,early_stopping]", "hparams_search=optuna"
    )
    assert cfg.callbacks.model_checkpoint.mode == mode and cfg.callbacks.early_stopping.mode == mode
    assert cfg.hydra.sweeper.direction == direction


def test_a_one_cycle_resume_tells_one_batch_from_the_whole_epoch(tmp_path):
    """Lightning reads limit_train_batches=1 as one batch an epoch and 1.0 as all of them (Python's
    1 == 1.0 is no guide); another scheduler or no finetune= is named as such, not as a key to set."""
    import torch

    from kmnist.engine.resumable import check_resume_checkpoint
    from kmnist.errors import CheckpointError

    def saved(*overrides: str) -> str:
        cfg = composed("model=cnn", *overrides)
        config = {
            "trainer": {
                "max_epochs": cfg.trainer.max_epochs,
                "limit_train_batches": cfg.trainer.limit_train_batches,
            },
            "scheduler": {
                "fn": {"_target_": cfg.scheduler.fn._target_, "pct_start": cfg.scheduler.fn.pct_start}
            },
        }
        torch.save(
            {"pytorch-lightning_version": "2.6", "state_dict": {}, "hyper_parameters": {"config": config}},
            tmp_path / "last.ckpt",
        )
        return str(tmp_path / "last.ckpt")

    check_resume_checkpoint(
        saved("scheduler=onecycle"),
        composed("model=cnn", "scheduler=onecycle", "trainer.limit_train_batches=1.0"),
    )
    for before, now in (
        ("trainer.limit_train_batches=1", []),
        ("trainer.limit_train_batches=1.0", ["trainer.limit_train_batches=1"]),
    ):
        with pytest.raises(
            CheckpointError,
            match=rf"laid out for {re.escape(before)}, this run has trainer.limit_train_batches=",
        ):
            check_resume_checkpoint(
                saved("scheduler=onecycle", before), composed("model=cnn", "scheduler=onecycle", *now)
            )
    with pytest.raises(
        CheckpointError,
        match=r"this run has no scheduler.fn.pct_start \(another scheduler= or finetune=\); "
        r"resume with the options",
    ):
        check_resume_checkpoint(saved("scheduler=onecycle"), composed("model=cnn", "scheduler=cosine"))
