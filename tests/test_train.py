"""Real Lightning fits through Hydra's compose API, then predict.py on the checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CONF, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.errors import CheckpointError, ConfigError
from kmnist.tasks.predict import predict
from kmnist.tasks.train import train


def test_fit_writes_metrics_checkpoint_and_config(compose_train, tmp_path):
    cfg = compose_train("model=cnn", "data/augment=notebook", "scheduler=onecycle")
    with open_dict(cfg):
        cfg.trainer.limit_val_batches = None  # the whole split, as the report evaluates it
    metrics, _ = train(cfg)

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["val/acc"] == pytest.approx(metrics["val/acc"]) and 0 <= saved["val/acc"] <= 1
    assert saved["train_seconds"] > 0 and saved["epochs"] == 1
    best = Path(saved["best_ckpt"])
    assert best.is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "csv" / "metrics.csv").is_file()

    # Checkpoints hold only plain data: they load with weights_only=True.
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["hyper_parameters"]["config"]["model"]["name"] == "cnn"
    assert set(ckpt["KannadaMNISTDataModule"]) == {"mean", "std"}
    # The validated metric is the best checkpoint's, recomputed from the file.
    assert metrics["val/acc"] == pytest.approx(
        float(
            ckpt["callbacks"][next(k for k in ckpt["callbacks"] if "ModelCheckpoint" in k)][
                "best_model_score"
            ]
        )
    )


@pytest.mark.slow
def test_run_report_matches_the_validated_metrics(compose_train, tmp_path):
    cfg = compose_train("model=cnn")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
        cfg.trainer.limit_val_batches = None
    metrics, _ = train(cfg)
    for name in (
        "batch.png",
        "curves.png",
        "confusion.png",
        "confusion_normalized.png",
        "per_class.png",
        "errors.png",
    ):
        image = plt.imread(tmp_path / name)
        assert min(image.shape[:2]) >= 300 and image.std() > 0, name
    # The report's own evaluation of the best checkpoint agrees with Lightning's validation of it.
    assert metrics["val/accuracy"] == pytest.approx(metrics["val/acc"], abs=1e-6)
    per_class = pd.read_csv(tmp_path / "per_class.csv")
    assert per_class["support"].sum() == 1280 and list(per_class["digit"]) == list(range(10))
    recall_weighted = (per_class["recall"] * per_class["support"]).sum() / 1280
    assert recall_weighted == pytest.approx(metrics["val/acc"], abs=1e-4)
    assert {"val/f1_macro", "val/precision_micro"} <= set(json.loads((tmp_path / "metrics.json").read_text()))


@pytest.mark.slow
def test_training_learns(compose_train):
    """A few dozen steps on real digits must beat chance by far (a broken loss or label path cannot)."""
    cfg = compose_train("model=cnn", "optim.lr=0.003")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
        cfg.trainer.limit_train_batches = 40
        cfg.trainer.limit_val_batches = None
    metrics, _ = train(cfg)
    assert metrics["val/acc"] > 0.5, metrics


def test_no_validation_split_trains_on_everything(compose_train, tmp_path):
    cfg = compose_train("data.val_writers=0")
    metrics, _ = train(cfg)
    assert "val/acc" not in metrics and "train/acc" in metrics
    assert Path(metrics["best_ckpt"]).is_file()


def test_predict_writes_submission_in_input_order(compose_train, data_dir, tmp_path):
    metrics, _ = train(compose_train())
    ckpt = metrics["best_ckpt"]

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            config_name="predict",
            return_hydra_config=True,
            overrides=[
                f"ckpt={ckpt}",
                f"input={data_dir / 'test.csv.gz'}",
                f"output={tmp_path / 'sub.csv'}",
                "progress=false",
            ],
        )
    HydraConfig().set_config(cfg)
    predict(cfg)
    submission = pd.read_csv(tmp_path / "sub.csv")
    test = pd.read_csv(data_dir / "test.csv.gz", usecols=["id"])
    assert list(submission.columns) == ["id", "label"]
    assert submission["id"].tolist() == test["id"].tolist()
    assert submission["label"].between(0, 9).all()

    # The same predictions as the module itself gives on those images.
    model = load_checkpoint(ckpt)
    from kmnist.data.io import read_digits

    probs = predict_proba([model], read_digits(data_dir / "test.csv.gz").images, progress=False)
    np.testing.assert_array_equal(probs.argmax(1), submission["label"].to_numpy())


@pytest.mark.slow
def test_predict_cli_scores_labelled_input_and_refuses_overwrite(compose_train, data_dir, tmp_path):
    ckpt = train(compose_train())[0]["best_ckpt"]
    out = tmp_path / "labelled_sub.csv"
    args = [
        f"ckpt={ckpt}",
        f"input={data_dir / 'test_labelled.csv.gz'}",
        f"output={out}",
        f"paths.log_dir={tmp_path}",
    ]
    done = run_cli("predict.py", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_csv(out)) == 500
    scored = json.loads((tmp_path / "labelled_sub_metrics.json").read_text())
    assert 0 <= scored["accuracy"] <= 1 and "accuracy on" in done.stderr + done.stdout
    report = tmp_path / "labelled_sub_report"  # beside the output, named after it
    per_class = pd.read_csv(report / "per_class.csv")
    assert per_class["support"].sum() == 500
    assert (report / "confusion.png").is_file() and (report / "errors.png").is_file()

    # Refused before any work: a checkpoint that does not exist is never reached.
    again = run_cli("predict.py", f"ckpt={tmp_path / 'absent.ckpt'}", *args[1:], cwd=tmp_path)
    assert again.returncode != 0 and "overwrite=true" in again.stderr.strip().splitlines()[-1]
    assert run_cli("predict.py", *args, "overwrite=true", cwd=tmp_path).returncode == 0
    # Another output in the same folder: the earlier one's report and metrics stay as they were.
    other = run_cli(
        "predict.py",
        *args[:2],
        f"output={tmp_path / 'other.csv'}",
        *args[3:],
        "pseudo_label_threshold=0.5",
        cwd=tmp_path,
    )
    assert other.returncode == 0, other.stderr[-2000:]
    assert (tmp_path / "other_report" / "per_class.csv").is_file() and (
        tmp_path / "labelled_sub_report" / "per_class.csv"
    ).is_file()
    # Files written beside an output are refused like the output itself (here the pseudo-labels).
    (tmp_path / "other.csv").unlink()
    again = run_cli(
        "predict.py",
        *args[:2],
        f"output={tmp_path / 'other.csv'}",
        *args[3:],
        "pseudo_label_threshold=0.5",
        cwd=tmp_path,
    )
    assert (
        again.returncode != 0
        and "already exists; pass overwrite=true" in again.stderr.strip().splitlines()[-1]
    )
    folder = run_cli("predict.py", *args[:2], f"output={tmp_path}", *args[3:], cwd=tmp_path)
    assert (
        folder.returncode != 0
        and ": is a folder; name the submission file" in folder.stderr.strip().splitlines()[-1]
    )


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    # A run folder (train.py's ckpt_path= takes one) exists: "not found" misled; name the file to pass.
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(
        CheckpointError,
        match=r"run: a folder, not a checkpoint; pass a \.ckpt file in it, e.g. .*run/checkpoints/last\.ckpt",
    ):
        load_checkpoint(tmp_path / "run")
    # Its checkpoints/ folder itself: the example is a file in it, not checkpoints/checkpoints/last.ckpt.
    (tmp_path / "run" / "checkpoints" / "epoch_002-score_0.9000.ckpt").touch()
    with pytest.raises(
        CheckpointError,
        match=r"checkpoints: a folder, not a checkpoint; pass a \.ckpt file in it, "
        r"e.g. .*run/checkpoints/epoch_002",
    ):
        load_checkpoint(tmp_path / "run" / "checkpoints")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a kmnist checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")
    (tmp_path / "trunc.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="trunc.ckpt"):
        load_checkpoint(tmp_path / "trunc.ckpt")
    # An empty file and a text file (a config saved as .ckpt) made torch.load raise IndexError.
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "config.ckpt").write_text("model:\n  name: cnn\n")
    with pytest.raises(CheckpointError, match="empty.ckpt: cannot be read as a checkpoint"):
        load_checkpoint(tmp_path / "empty.ckpt")
    with pytest.raises(CheckpointError, match="config.ckpt: "):
        load_checkpoint(tmp_path / "config.ckpt")


def test_predict_refuses_no_checkpoint_and_a_bad_batch_size_in_one_line(data_dir, tmp_path):
    base = [
        f"input={data_dir / 'test.csv.gz'}",
        f"output={tmp_path / 'sub.csv'}",
        f"paths.log_dir={tmp_path}",
    ]
    for bad, expected in (
        ["ckpt=[]", "ckpt=[]: no checkpoint given"],
        [f"ckpt={tmp_path / 'a.ckpt'} batch_size=0", "batch_size=0: expected a positive"],
        ["", "error: ckpt: a required option with no default; pass ckpt=..."],
    ):
        done = run_cli("predict.py", *bad.split(), *base, cwd=tmp_path)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert expected in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "sub.csv").exists()


def test_missing_data_fails_with_a_clear_line(tmp_path):
    done = run_cli(
        "train.py", f"paths.data_dir={tmp_path / 'nowhere'}", f"paths.log_dir={tmp_path}", cwd=tmp_path
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "KMNIST_DATA" in last and "kmnist.data.download" in last and "Traceback" not in done.stderr


@pytest.mark.slow
def test_two_job_multirun(data_dir, tmp_path):
    done = run_cli(
        "train.py",
        "-m",
        "model=cnn",
        "optim.lr=0.01,0.001",
        f"paths.data_dir={data_dir}",
        "data.val_writers=1",
        "data.batch_size=32",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Each Lightning record once: `import lightning` adds a console handler beside Hydra's (was twice).
    assert (done.stdout + done.stderr).count("GPU available:") == 2  # one per job
    jobs = sorted((tmp_path / "multirun").glob("*/*/[0-9]*"))
    assert len(jobs) == 2
    lrs = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert Path(metrics["best_ckpt"]).is_file()
        lrs.add(
            torch.load(metrics["best_ckpt"], weights_only=True)["hyper_parameters"]["config"]["optim"]["lr"]
        )
    assert lrs == {0.01, 0.001}
    # The sweep wrote its leaderboard by itself, best first, matching the jobs' own metrics.
    board = pd.read_csv(jobs[0].parent / "leaderboard.csv")
    assert len(board) == 2 and board["val/acc"].is_monotonic_decreasing
    best = json.loads((jobs[0].parent / str(board["job"][0]) / "metrics.json").read_text())
    assert board["val/acc"][0] == pytest.approx(best["val/acc"])
    for job in jobs:
        assert (job / "curves.png").is_file() and (job / "per_class.csv").is_file()


@pytest.mark.parametrize(
    "option,model",
    [
        ("speed.channels_last=true", "kresnet"),
        pytest.param("speed.compile=true", "cnn", marks=pytest.mark.slow),
    ],
)
def test_speed_options_apply_and_leave_plain_checkpoints(compose_train, data_dir, option, model):
    cfg = compose_train(f"model={model}", "speed.channels_last=false", option, "report=false")
    metrics, run = train(cfg)
    net = run.module.net
    if "compile" in option:
        assert net._compiled_call_impl is not None  # nn.Module.compile: in place, so the keys stay plain
    else:
        assert next(p for p in net.parameters() if p.ndim == 4).is_contiguous(
            memory_format=torch.channels_last
        )
    keys = torch.load(metrics["best_ckpt"], weights_only=True)["state_dict"]
    assert keys and not any("_orig_mod" in k for k in keys)
    from kmnist.data.io import read_digits

    probs = predict_proba(
        [load_checkpoint(metrics["best_ckpt"])],
        read_digits(data_dir / "test.csv.gz").images[:20],
        progress=False,
    )
    assert probs.shape == (20, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "overrides", [("optim=nadam", "scheduler=cosine"), ("experiment=notebook_dnn_tuned",)]
)
def test_an_optimiser_with_list_options_writes_checkpoints_that_load(compose_train, data_dir, overrides):
    # NAdam kept betas: [0.9, 0.999] as the OmegaConf ListConfig it was given; one-cycle rewrites betas
    # as a tuple, any other schedule kept it in the optimiser's state, so no checkpoint loaded
    # (weights_only) and train.py failed validating its best one after the whole fit.
    cfg = compose_train(*overrides, "report=false", "~callbacks.show_batch")
    metrics, _ = train(cfg)
    ckpt = torch.load(metrics["best_ckpt"], weights_only=True)
    assert (
        0.0 <= metrics["val/acc"] <= 1.0 and len(ckpt["optimizer_states"][0]["param_groups"][0]["betas"]) == 2
    )
    from kmnist.data.io import read_digits

    probs = predict_proba(
        [load_checkpoint(metrics["best_ckpt"])],
        read_digits(data_dir / "test.csv.gz").images[:20],
        progress=False,
    )
    assert probs.shape == (20, 10)


@pytest.mark.parametrize("monitor, mode", [("val/acc", "max"), ("val/loss", "min")])
def test_plateau_schedule_watches_its_monitor_the_way_it_improves(compose_train, monitor, mode):
    # mode was fixed at min: scheduler.monitor=val/acc cut the LR whenever accuracy went up.
    cfg = compose_train(
        "scheduler=plateau", f"scheduler.monitor={monitor}", "report=false", "validate_best=false"
    )
    _, run = train(cfg)
    [config] = run.trainer.lr_scheduler_configs
    assert config.monitor == monitor and config.scheduler.mode == mode


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_with_pickle_payload_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    torch.save(
        {
            "state_dict": {},
            "hyper_parameters": {"config": {"model": {"name": "cnn"}}},
            "evil": _Payload(str(marker)),
        },
        tmp_path / "evil.ckpt",
    )
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_resolve_ckpt_path(tmp_path):
    from kmnist.tasks.train import resolve_ckpt_path

    assert resolve_ckpt_path(None, tmp_path) is None
    with pytest.raises(CheckpointError, match="ckpt_path=last"):
        resolve_ckpt_path("last", tmp_path)
    older, newer = (tmp_path / "runs" / "d" / t / "checkpoints" for t in ("01", "02"))
    for folder in (older, newer):
        folder.mkdir(parents=True)
        (folder / "last.ckpt").write_bytes(b"x")
    import os

    os.utime(older / "last.ckpt", (1, 1))
    assert resolve_ckpt_path("last", tmp_path) == str(newer / "last.ckpt")
    assert resolve_ckpt_path(str(older.parent), tmp_path) == str(older / "last.ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path)


@pytest.mark.slow
def test_a_checkpoint_that_cannot_resume_this_run_is_refused_in_one_line(compose_train, tmp_path):
    metrics, _ = train(compose_train("model=cnn", "scheduler=onecycle", "report=false"))
    run_ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    (tmp_path / "notes.ckpt").write_text("model: cnn\n")
    torch.save({"state_dict": {}}, tmp_path / "weights_only.ckpt")
    cases = [
        (str(tmp_path / "notes.ckpt"), ["model=cnn"], "notes.ckpt: cannot be read as a checkpoint"),
        (
            str(tmp_path / "weights_only.ckpt"),
            ["model=cnn"],
            "weights_only.ckpt: not a training checkpoint written by train.py",
        ),
        (
            run_ckpt,
            ["model=dnn", "scheduler=onecycle"],
            "trained with model.name=cnn, this run has model.name=dnn",
        ),
        (
            run_ckpt,
            ["model=cnn", "scheduler=onecycle", "trainer.max_epochs=2"],
            "its one-cycle schedule was laid out for trainer.max_epochs=1 and cannot be stretched to 2",
        ),
        # Another seed holds out other writers: validation would be on rows the network trained on.
        (
            run_ckpt,
            ["model=cnn", "scheduler=onecycle", "seed=0"],
            "trained with seed=42, this run has seed=0: the held-out rows would differ",
        ),
        (
            run_ckpt,
            ["model=cnn", "scheduler=onecycle", "data.split=stratified"],
            "trained with data.split=writer, this run has data.split=stratified",
        ),
        # More steps an epoch would step past the restored schedule's end; fewer would end it early.
        (
            run_ckpt,
            ["model=cnn", "scheduler=onecycle", "data.batch_size=7"],
            "its one-cycle schedule was laid out for data.batch_size=",
        ),
        (
            run_ckpt,
            ["model=cnn", "scheduler=onecycle", "+trainer.accumulate_grad_batches=2"],
            "its one-cycle schedule was laid out for trainer.accumulate_grad_batches=1, "
            "this run has trainer.accumulate_grad_batches=2",
        ),
    ]
    late = ("trainer.", "data.batch_size=")  # set after compose_train's shrink, which sets them itself
    for ckpt, overrides, message in cases:
        cfg = compose_train(*[o for o in overrides if not o.startswith(late)], "report=false")
        with open_dict(cfg):
            cfg.ckpt_path = ckpt
            for key, value in (o.split("=") for o in overrides if o.startswith(late)):
                OmegaConf.update(cfg, key, int(value))
        with pytest.raises(CheckpointError, match=re.escape(message)):
            train(cfg)
    # The same options continue the run.
    cfg = compose_train("model=cnn", "scheduler=onecycle", "report=false")
    with open_dict(cfg):
        cfg.ckpt_path = run_ckpt
    assert train(cfg)[0]["best_ckpt"]


def test_mistyped_key_gets_hydras_error_and_the_closest_name(tmp_path):
    done = run_cli("train.py", "trainer.max_epoch=3", "model=dnn", "model.neurons=5", cwd=tmp_path)
    assert done.returncode != 0
    assert "max_epoch" in done.stderr and "did you mean trainer.max_epochs?" in done.stderr
    assert "did you mean model.n_neurons?" in done.stderr


def test_mistyped_group_option_gets_the_closest_option_and_key_hints_still_come(tmp_path):
    done = run_cli("train.py", "model=cnnn", "optim.lrr=0.1", "callbacks=[default,emaa]", cwd=tmp_path)
    # One line each, before Hydra (whose error for it is a dozen lines): its options are listed.
    assert done.returncode != 0 and "MissingConfigException" not in done.stderr
    assert "error: model=cnnn: no such option; did you mean model=cnn? (model: cnn, convnet," in done.stderr
    assert "error: callbacks=emaa: no such option; did you mean callbacks=ema?" in done.stderr
    assert "did you mean optim.lr?" in done.stderr  # the typo of a group option used to hide this one


def test_a_nested_group_choice_is_no_unknown_key():
    """data/augment=... picks a file of conf/data/augment: it got 'did you mean data.augment?', wrong
    beside the option's own hint (data.augment=deform is no option of the augment group)."""
    from kmnist.utils.hints import unknown_key_hints

    assert unknown_key_hints("config", ["data/augment=deform", "trainer.max_epoch=3"]) == [
        "hint: 'trainer.max_epoch' is not a config key; did you mean trainer.max_epochs?"
    ]
    assert unknown_key_hints("config", ["data/augment=deformm"]) == [
        "hint: data/augment=deformm: no such option; did you mean data/augment=deform?"
    ]


@pytest.mark.parametrize(
    "option, message",
    [
        ("data.val_writers=60", "error: data.val_writers=60: must be between 0 and 2"),  # raised in setup
        (
            "data.scaling=bogus",
            "error: data.scaling='bogus': expected one of scale, center, standardize",
        ),  # inside instantiate
        (
            "model.activation=tanh",
            "error: model.activation='tanh': expected relu or leaky_relu",
        ),  # building the network
        # Lightning's ModelCheckpoint finds a mistyped metric only after the first epoch, with a traceback.
        (
            "optimized_metric=val/acuracy",
            "error: optimized_metric=val/acuracy: not a metric this run logs; did you mean val/acc?",
        ),
        (
            "model.dropout_light=2",
            "error: model.dropout_light=2: expected a value in [0, 1)",
        ),  # dcnn's second dropout
    ],
)
def test_bad_option_values_are_one_line_naming_the_option(data_dir, tmp_path, option, message):
    model = (
        [("model=dcnn" if "dropout_light" in option else "model=dnn")] if option.startswith("model.") else []
    )
    done = run_cli(
        "train.py", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", *model, option, cwd=tmp_path
    )
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["scheduler.interval=hour"], "scheduler.interval=hour: expected step or epoch"),
        (
            ["scheduler=plateau", "scheduler.monitor=null"],
            "scheduler.monitor=null: ReduceLROnPlateau cuts the LR when a metric stops improving; "
            "name it, e.g. scheduler.monitor=val/loss",
        ),
        (
            ["scheduler=plateau", "scheduler.monitor=val/accuracy"],
            "scheduler.monitor=val/accuracy: not a metric this run logs; did you mean val/acc?",
        ),
        (
            ["scheduler=plateau", "scheduler.monitor=accuracy"],
            "scheduler.monitor=accuracy: not a metric this run logs; one of "
            "train/loss, train/acc, val/loss, val/acc, dev/loss, dev/acc, "
            "time/train_seconds, time/epoch_seconds",
        ),
    ],
)
def test_bad_schedule_options_are_one_line_before_training(compose_train, overrides, message):
    # These were Lightning's MisconfigurationException tracebacks, the last one after a whole epoch.
    cfg = compose_train(*overrides, "report=false")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim=nadam", "optim.betas=[1.5,0.9]"], "optim: Invalid beta parameter at index 0: 1.5"),
        (["+optim.nesterov=true"], "optim: Adam.__init__() got an unexpected keyword argument 'nesterov'"),
        (["scheduler.fn.pct_start=2"], "scheduler.fn: Expected float between 0 and 1 pct_start, but got 2"),
        # Declared in the option schema now, so refused before torch sees it.
        (["finetune=fastai", "finetune.pct_start=2"], "finetune.pct_start=2: expected a value in [0, 1]"),
    ],
)
def test_values_torch_refuses_are_one_line_naming_the_option(compose_train, overrides, message):
    # torch checks them when Lightning calls configure_optimizers: a ValueError / TypeError traceback.
    cfg = compose_train(*overrides, "report=false")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value) == message


@pytest.mark.parametrize("overrides", [("optim=rmsprop",), ("optim=sgd", "optim.momentum=0")])
def test_one_cycle_leaves_an_optimiser_without_momentum_without_it(compose_train, overrides):
    # OneCycleLR cycles momentum 0.95 -> 0.85 by default, also where the config says momentum: 0.0:
    # optim=rmsprop under the default schedule trained as RMSprop with heavy-ball momentum ~0.9.
    cfg = compose_train("model=dnn", *overrides, "report=false", "validate_best=false")
    _, run = train(cfg)
    [group] = run.trainer.optimizers[0].param_groups
    assert group["momentum"] == 0.0 and group["lr"] < group["max_lr"]  # the LR still follows the cycle


@pytest.mark.parametrize("target", ["torch.optim.Adagrad", "torch.optim.Adadelta"])
def test_one_cycle_builds_for_an_optimiser_with_no_momentum_at_all(target):
    """No momentum and no betas (optim._target_=torch.optim.Adagrad): OneCycleLR's momentum cycle
    refused it ('optimizer must support momentum or beta1'), also in the fine-tuning stages, where
    no option turns the cycle off."""
    from functools import partial
    from types import SimpleNamespace

    from hydra.utils import get_class

    from kmnist.engine.optimizers import one_cycle, schedule_length

    optimizer = get_class(target)([torch.nn.Parameter(torch.zeros(2))], lr=0.01)
    scheduler = one_cycle(optimizer, [0.01], total_steps=20)
    assert scheduler.cycle_momentum is False
    factory = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01, total_steps=20)
    trainer = SimpleNamespace(estimated_stepping_batches=20, max_epochs=1)
    assert schedule_length(factory, "step", trainer, optimizer)["cycle_momentum"] is False


def test_last_ckpt_is_the_final_epoch_even_when_the_metric_stalls(compose_train, tmp_path):
    """Lightning 2.6's save_last refreshes last.ckpt only in epochs that save a best checkpoint;
    kmnist's last_checkpoint writes it every epoch, so resuming never loses epochs."""
    cfg = compose_train(
        "model=dnn",
        "optim.lr=1e-12",
        "scheduler=none",
        "data/augment=none",
        "model.dropout=0",
        "report=false",
    )
    with open_dict(cfg):
        cfg.trainer.max_epochs = 3
        cfg.trainer.limit_train_batches = 2
    metrics, _ = train(cfg)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(metrics["best_ckpt"], weights_only=True)
    assert best["epoch"] == 0, "val/acc never improves after epoch 0, so the best checkpoint stays there"
    assert last["epoch"] == 2 and last["global_step"] == 6
