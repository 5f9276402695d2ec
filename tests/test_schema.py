"""The options table (kmnist/engine/schema.py): each declared option is checked from its declaration
alone, exists in the config, and docs/OPTIONS.md is rendered from it."""

from __future__ import annotations

import pytest
from test_recipes import composed

from kmnist.engine import schema
from kmnist.engine.options import check_options
from kmnist.engine.options_doc import ABSENT, DOC, composed_defaults, render, unresolved
from kmnist.engine.schema import BOOL, CHOICE, INTEGER, NUMBER, OPTIONS, Option, check_declared
from kmnist.errors import ConfigError
from kmnist.utils.hints import CONF


def refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        check_options(composed(*overrides))
    return str(err.value)


def test_the_options_reference_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/OPTIONS.md is stale: python -m kmnist.engine.options_doc --write"
    )


def test_every_declared_key_exists_in_the_config_that_defines_it():
    keys = [option.key for option in OPTIONS]
    assert len(keys) == len(set(keys)), "an option is declared twice"
    configs = composed_defaults(OPTIONS)
    missing = [
        f"{o.key} ({o.source or 'default config'})"
        for o in OPTIONS
        if unresolved(configs[o.source], o.key) is ABSENT
    ]
    assert not missing, f"declared, but no such key: {missing}"


def test_a_key_no_config_has_is_found_missing():
    """The check above can fail: a declaration for a key that does not exist is caught."""
    typo = Option("trainer.max_epoch", INTEGER, "a typo", low=1)
    assert unresolved(composed_defaults((typo,))[""], typo.key) is ABSENT


def test_declared_choices_are_the_ones_the_code_takes():
    from kmnist.data.preprocess import SCALINGS
    from kmnist.data.splits import SPLITS

    choices = {option.key: option.choices for option in OPTIONS if option.kind == CHOICE}
    assert choices["data.split"] == SPLITS and choices["data.scaling"] == SCALINGS


def test_every_recipe_passes_the_declared_checks():
    for experiment in sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")):
        check_declared(composed(f"experiment={experiment}"))
    for group in ("model", "optim", "scheduler", "finetune"):
        for choice in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
            check_declared(composed(f"{group}={choice}"))


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["report=maybe"], "report='maybe': expected true or false"),
        (["matmul_precision=low"], "matmul_precision='low': expected one of highest, high, medium"),
        (["data.split=random"], "data.split='random': expected one of writer, stratified, first_n"),
        (["scheduler.interval=hour"], "scheduler.interval=hour: expected step or epoch"),
        (["model=dnn", "model.activation=tanh"], "model.activation='tanh': expected relu or leaky_relu"),
        (["model=kresnet", "model.depth=0"], "model.depth=0: expected at least 1 residual step per block"),
        (["optimized_metric=3"], "optimized_metric=3: expected a string"),
        (["data.batch_size=null"], "data.batch_size=null: expected a number"),
        (["finetune=fastai", "finetune.lr_min=0"], "finetune.lr_min=0: expected a value in (0, inf]"),
        (
            ["loss.distill.teachers=[a.ckpt]", "loss.distill.weight=0"],
            "loss.distill.weight=0: expected a value in (0, 1]",
        ),
    ],
)
def test_a_declared_option_out_of_its_type_or_range_is_one_line(overrides, line):
    assert refusal("model=cnn", *overrides) == line


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss.distill.weight=0"],  # no teachers: the weight is not used
        ["data.limit_rows=null", "model.dropout=null"],  # null is a value of these
        ["optim=adam"],  # no optim.momentum: not checked
        ["+trainer.gradient_clip_val=0.5"],  # undeclared keys pass through to Lightning
    ],
)
def test_what_is_not_checked(overrides):
    check_options(composed("model=cnn", *overrides))


def test_a_newly_declared_option_is_checked_without_new_checking_code(monkeypatch):
    """Declaring an option is all it takes: an existing undeclared key (trainer.min_epochs), a new key
    set on the config, and a choice each get their one-line refusal from the table alone."""
    sound = ("model=cnn", "trainer.min_epochs=-1", "+loss.focal_gamma=abc", "+data.sampler=random")
    check_options(composed(*sound))  # undeclared: nothing refuses them
    monkeypatch.setattr(
        schema,
        "OPTIONS",
        (
            *OPTIONS,
            Option("trainer.min_epochs", INTEGER, "epochs trained before early stopping may stop", low=0),
            Option("loss.focal_gamma", NUMBER, "focal loss's focusing exponent", low=0),
            Option("data.sampler", CHOICE, "how batches are drawn", choices=("uniform", "balanced")),
            Option("data.strict", BOOL, "a key no config has: not checked"),
        ),
    )
    assert (
        refusal("model=cnn", "trainer.min_epochs=-1") == "trainer.min_epochs=-1: expected a value in [0, inf]"
    )
    assert refusal("model=cnn", "+loss.focal_gamma=abc") == "loss.focal_gamma='abc': expected a number"
    assert (
        refusal("model=cnn", "+data.sampler=random") == "data.sampler='random': expected uniform or balanced"
    )
    check_options(composed("model=cnn", "+loss.focal_gamma=2", "+data.sampler=balanced"))
    assert "| `loss.focal_gamma` | number | [0, inf] |  | focal loss's focusing exponent |" in render(
        schema.OPTIONS
    )
