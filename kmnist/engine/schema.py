"""The training config's checked options, declared once: each one's type, range or choices, and what
it does in one line.

`engine/options.py` checks a composed config against `OPTIONS` before anything is built, and
`python -m kmnist.engine.options_doc --write` renders the table as docs/OPTIONS.md. A new option gets its
check by being declared here; rules between options (speed.cuda_graph with speed.compile, finetune's
epochs, the scheduler's monitor) stay as code in options.py. An option a config lacks (an optimiser
without momentum) is not checked, and keys nobody declared (+trainer.* passed to Lightning) are left
to whatever reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Number

from omegaconf import DictConfig, OmegaConf

from kmnist.errors import ConfigError

INTEGER, NUMBER, BOOL, CHOICE, TEXT, INTEGERS = "integer", "number", "boolean", "choice", "string", "integers"
KINDS = (INTEGER, NUMBER, BOOL, CHOICE, TEXT, INTEGERS)
_ABSENT = object()


@dataclass(frozen=True)
class Option:
    key: str
    kind: str  # one of KINDS; INTEGERS: a non-empty list of positive integers
    meaning: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # (low, ...: above low, not at it
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False  # null is a value (e.g. data.limit_rows=null: all rows)
    when: str = ""  # checked only where this option is set (not null, not empty)
    source: str = ""  # the override whose config defines the key, where the default config does not
    error: str = ""  # the refusal's own line ({key}, {value}), where it predates this table

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.kind == CHOICE) != bool(self.choices):
            raise ValueError(f"{self.key}: kind={self.kind!r}, choices={self.choices}: not a declaration")

    def span(self) -> str:
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        low, high = "-inf" if self.low is None else self.low, "inf" if self.high is None else self.high
        return f"{left}{low}, {high}{right}"

    def expected(self) -> str:
        if self.kind == CHOICE:
            return (
                " or ".join(self.choices) if len(self.choices) == 2 else f"one of {', '.join(self.choices)}"
            )
        return {
            INTEGER: "a number",  # said of null, as it always was
            NUMBER: "a number",
            BOOL: "true or false",
            TEXT: "a string",
            INTEGERS: "a non-empty list of positive integers",
        }[self.kind]

    def check(self, cfg: DictConfig) -> None:
        """Raise the one-line ConfigError for this option's value in `cfg`, if it is wrong."""
        value = OmegaConf.select(cfg, self.key, default=_ABSENT)
        if value is _ABSENT or (self.when and not OmegaConf.select(cfg, self.when, default=None)):
            return
        if value is None:
            if not self.optional:
                self.refuse(value, f"{self.key}=null: expected {self.expected()}")
            return
        if self.kind in (INTEGER, NUMBER):
            integer = self.kind == INTEGER
            if (
                isinstance(value, bool)
                or not isinstance(value, Number)
                or (integer and not float(value).is_integer())
            ):
                self.refuse(
                    value, f"{self.key}={value!r}: expected {'an integer' if integer else 'a number'}"
                )
            too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
            too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
            if too_low or too_high:
                self.refuse(value, f"{self.key}={value}: expected a value in {self.span()}")
        elif self.kind == INTEGERS:
            if not OmegaConf.is_list(value) or not value or not all(_positive_int(v) for v in value):
                self.refuse(value, f"{self.key}={value}: expected {self.expected()}")
        else:
            fits = {
                CHOICE: value in self.choices,
                BOOL: isinstance(value, bool),
                TEXT: isinstance(value, str),
            }
            if not fits[self.kind]:
                self.refuse(value, f"{self.key}={value!r}: expected {self.expected()}")

    def refuse(self, value, line: str) -> None:
        raise ConfigError(self.error.format(key=self.key, value=value) if self.error else line)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _knob(name: str, meaning: str) -> Option:
    # BatchAugment checks the knobs' ranges, each with its own reason; here, that they are numbers at all
    return Option(f"data.augment.{name}", NUMBER, meaning)


def _finetune(name: str, kind: str, meaning: str, **limits) -> Option:
    return Option(f"finetune.{name}", kind, meaning, source="finetune=fastai", **limits)


POSITIVE = {"low": 0, "low_open": True}
SHARE = {"low": 0, "high": 1, "high_open": True}  # [0, 1)
OPTIONS: tuple[Option, ...] = (
    Option("seed", INTEGER, "seeds Python, NumPy, torch and the validation split", low=0, high=2**32 - 1),
    Option("optimized_metric", TEXT, "metric a sweep optimises and the best checkpoint is chosen by"),
    Option("leaderboard_metric", TEXT, "metric a sweep's leaderboard ranks by"),
    Option(
        "sweep_continue_on_crash", BOOL, "a sweep's crashed job is marked failed and the others still run"
    ),
    Option(
        "matmul_precision",
        CHOICE,
        "float32 matmuls on tensor-core GPUs",
        choices=("highest", "high", "medium"),
    ),
    Option("report", BOOL, "write curves.png and the validation report after fitting"),
    Option("validate_best", BOOL, "validate the best checkpoint after fitting, into metrics.json"),
    Option("loss.label_smoothing", NUMBER, "share of each target spread over all ten classes", **SHARE),
    Option(
        "loss.distill.weight",
        NUMBER,
        "share of the loss given to the teachers' mean probabilities",
        low=0,
        high=1,
        low_open=True,
        when="loss.distill.teachers",
    ),
    Option("speed.channels_last", BOOL, "NHWC layout for the network and its batches (faster on CPU)"),
    Option("speed.cuda_graph", BOOL, "one GPU: forward and backward replayed as one CUDA graph"),
    Option("tune.lr_find", BOOL, "run Lightning's learning-rate finder before training"),
    Option("tune.use_suggestion", BOOL, "the finder's suggested learning rate replaces optim.lr"),
    Option("tune.min_lr", NUMBER, "the finder's lowest learning rate", **POSITIVE),
    Option("tune.max_lr", NUMBER, "the finder's highest learning rate", **POSITIVE),
    Option("tune.num_training", INTEGER, "learning rates the finder tries", low=1),
    Option("data.train_file", TEXT, "the labelled training CSV, in paths.data_dir"),
    Option("data.predict_file", TEXT, "the images to predict, in paths.data_dir"),
    Option(
        "data.split",
        CHOICE,
        "validation rows: whole writers, a class-balanced random share, or the first rows",
        choices=("writer", "stratified", "first_n"),
    ),
    Option("data.val_writers", INTEGER, "writers held out for validation (split=writer); 0: none", low=0),
    Option("data.val_fraction", NUMBER, "share of rows held out for validation (split=stratified)", **SHARE),
    Option("data.val_rows", INTEGER, "rows held out for validation (split=first_n)", low=0),
    Option("data.limit_rows", INTEGER, "use only the first N training rows; null: all", low=1, optional=True),
    Option(
        "data.scaling",
        CHOICE,
        "pixels to 0-1, minus the training mean, or standardised by the training mean and std",
        choices=("scale", "center", "standardize"),
    ),
    Option(
        "data.batch_size", INTEGER, "the global batch of one optimiser step (split over DDP processes)", low=1
    ),
    Option("data.eval_batch_size", INTEGER, "evaluation batch per process (memory only)", low=1),
    Option("data.on_device", BOOL, "hold the whole dataset as one tensor on the training device"),
    Option("data.use_cache", BOOL, "keep parsed CSVs in the cache folder (data.cache_dir)"),
    _knob("rotation", "max rotation, degrees"),
    _knob("translate", "max shift, fraction of the side"),
    _knob("shear", "max shear factor"),
    _knob("zoom", "scale drawn from [1 - zoom, 1 + zoom]"),
    _knob("aspect", "width:height stretched by up to 1 + aspect, area kept"),
    _knob("warp", "max perspective coefficient"),
    _knob("elastic", "max elastic displacement, fraction of the side"),
    _knob("stroke", "stroke thickness changed by a share drawn from [-stroke, stroke]"),
    _knob("lighting", "max relative change of contrast"),
    _knob("erase_p", "probability of one erased rectangle per image"),
    _knob("mixup", "MixUp's Beta(alpha, alpha); 0: off"),
    _knob("cutmix", "CutMix's Beta(alpha, alpha); 0: off"),
    _knob("mix_p", "share of images mixed when mixup or cutmix is on"),
    Option("model.dropout", NUMBER, "dropout rate", optional=True, **SHARE),
    Option(
        "model.dropout_light", NUMBER, "dcnn's lighter dropouts", optional=True, source="model=dcnn", **SHARE
    ),
    Option(
        "model.widths",
        INTEGERS,
        "channels of each residual block",
        optional=True,
        source="model=kresnet",
        error="{key}={value}: expected a list of positive channel counts, e.g. model.widths=[32,64,128]",
    ),
    Option(
        "model.depth",
        INTEGER,
        "residual steps per block",
        low=1,
        source="model=kresnet",
        error="{key}={value}: expected at least 1 residual step per block",
    ),
    Option(
        "model.activation",
        CHOICE,
        "hidden layers' activation",
        choices=("relu", "leaky_relu"),
        source="model=dnn",
    ),
    Option("model.pretrained", BOOL, "start from ImageNet weights (timm)", source="model=resnet50"),
    Option("optim.lr", NUMBER, "learning rate (the one-cycle peak under scheduler=onecycle)", **POSITIVE),
    Option("optim.weight_decay", NUMBER, "weight decay (decoupled under optim=adamw)", low=0, optional=True),
    Option("optim.momentum", NUMBER, "momentum (SGD, RMSprop)", low=0, optional=True, source="optim=sgd"),
    Option(
        "scheduler.interval",
        CHOICE,
        "the schedule steps every optimiser step or every epoch",
        choices=("step", "epoch"),
        error="{key}={value}: expected step or epoch",
    ),
    Option("scheduler.monitor", TEXT, "metric ReduceLROnPlateau watches", optional=True),
    Option("trainer.max_epochs", INTEGER, "epochs to train (finetune= sets it to its stages' sum)", low=1),
    _finetune("frozen_epochs", INTEGER, "stage 1: epochs training the head, the body frozen", low=0),
    _finetune("unfrozen_epochs", INTEGER, "stage 2: epochs training everything", low=0),
    _finetune("lr_min", NUMBER, "stage 2's learning rate at the stem", **POSITIVE),
    _finetune("lr_max", NUMBER, "stage 2's learning rate at the head", **POSITIVE),
    _finetune("pct_start", NUMBER, "share of each stage's one-cycle spent warming up", low=0, high=1),
)


def check_declared(cfg: DictConfig, options: tuple[Option, ...] | None = None) -> None:
    """Raise a ConfigError naming the first declared option whose value is wrong."""
    for option in OPTIONS if options is None else options:
        option.check(cfg)
