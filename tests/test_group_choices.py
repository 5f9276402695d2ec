"""A config-group choice that names no option gets one line listing the group's options, from the
real CLI: Hydra's own error for it is a dozen lines ending in its config search path."""

from __future__ import annotations

import pytest
from conftest import run_cli

from kmnist.utils.hints import close_option

MODELS = "cnn, convnet, dcnn, dnn, kresnet, resnet50"


@pytest.mark.parametrize(
    "override, line",
    [
        # No option is one edit from lenet: no "did you mean kresnet?".
        ("model=lenet", f"error: model=lenet: no such option; the model options are {MODELS}"),
        ("model=cnnn", f"error: model=cnnn: no such option; did you mean model=cnn? (model: {MODELS})"),
        (
            "data/augment=foo",
            "error: data/augment=foo: no such option; the data/augment options are "
            "deform, kaggle, light, none, notebook, strong",
        ),
        (
            "callbacks=[default,nope]",
            "error: callbacks=nope: no such option; did you mean callbacks=none? (callbacks: "
            "checkpoint_on_interrupt, default, early_stopping, ema,",
        ),
    ],
)
def test_an_unknown_group_choice_gets_one_line_with_the_options(tmp_path, override, line):
    done = run_cli("train.py", override, f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert done.returncode == 1
    [said] = done.stderr.strip().splitlines()
    assert said.startswith(line), said
    assert not list(tmp_path.iterdir())  # refused before any run folder


def test_close_options_are_typos_only():
    options = ["adam", "adamw", "nadam", "rmsprop", "sgd"]
    assert close_option("adm", options) == "adam"
    assert close_option("sdg", options) == "sgd"  # swapped neighbours
    assert close_option("rmsprp", options) == "rmsprop"
    assert close_option("lenet", ["cnn", "kresnet", "resnet50"]) is None
    assert close_option("lion", options) is None
