"""Overrides that name nothing. A config-group choice naming no option (`model=lenet`) is refused
before Hydra starts, in one line listing the group's options (with a "did you mean" for a typo).
After Hydra rejects a key, the closest valid one is named: `trainer.max_epoch=3` gets "did you
mean trainer.max_epochs?"; Hydra's own message is printed first and kept as is."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "conf"


def config_keys(node, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    keys = []
    for key in node.keys() if isinstance(node, DictConfig) else []:
        if str(key).startswith("_"):  # _target_, _partial_: not settings a user means
            continue
        path = f"{prefix}{key}"
        keys.append(path)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            keys.extend(config_keys(child, f"{path}."))
    return keys


def group_choices(argv: list[str]) -> list[tuple[str, list[str]]]:
    """The config-group choices in argv as (group, [names]): `model=cnn` -> ("model", ["cnn"]),
    `callbacks=[default,ema]` and a sweep's `model=cnn,dnn` -> all the names. Groups are conf/'s
    folders (`data/augment` too); Hydra's own (launchers come from plugins) and sweep functions
    (`glob(...)`) are left to Hydra."""
    found = []
    for override in argv:
        if "=" not in override or override.startswith(("-", "~")):
            continue
        group, value = override.split("=", 1)
        group = group.lstrip("+").split("@", 1)[0]
        if (
            group.startswith("hydra")
            or not group
            or not (CONF / group).is_dir()
            or "(" in value
            or "$" in value
        ):
            continue
        names = [name.strip().strip("'\"") for name in value.strip("[]").split(",") if name.strip()]
        found.append((group, names))
    return found


def group_options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def _edits(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, swapped neighbours."""
    d = [[i + j if not i * j else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def close_option(name: str, options: list[str]) -> str | None:
    """The option `name` is a typo of: one edit away (two for names over 5 characters), else None;
    `lenet` is not a typo of `kresnet`."""
    allowed = 1 if len(name) <= 5 else 2
    scored = sorted((_edits(name.lower(), option.lower()), option) for option in options)
    return scored[0][1] if scored and scored[0][0] <= allowed else None


def unknown_choice_errors(argv: list[str]) -> list[str]:
    """One line for each group choice in argv that names no option, listing the group's options:
    `model=lenet: no such option; the model options are cnn, convnet, ...` (Hydra's error for it is
    a dozen lines ending in its search path)."""
    errors = []
    for group, names in group_choices(argv):
        options = group_options(group)
        for name in names:
            if name == "null" or (CONF / group / f"{name}.yaml").is_file():
                continue
            listed = ", ".join(options) if options else "none"
            if close := close_option(name, options):
                errors.append(
                    f"{group}={name}: no such option; did you mean {group}={close}? ({group}: {listed})"
                )
            else:
                errors.append(f"{group}={name}: no such option; the {group} options are {listed}")
    return errors


def group_option_hints(groups: list[str]) -> tuple[list[str], list[str]]:
    """`did you mean` lines for group choices naming no file in conf/ (model=cnnn, callbacks=[default,emaa]),
    and the group choices that do (the others would fail the compose, and every key hint with it)."""
    hints, sound = [], []
    for override in groups:
        bad = [
            (group, name)
            for group, names in group_choices([override])
            for name in names
            if name != "null" and not (CONF / group / f"{name}.yaml").is_file()
        ]
        for group, name in bad:
            if close := close_option(name, group_options(group)):
                hints.append(f"hint: {group}={name}: no such option; did you mean {group}={close}?")
        if not bad:
            sound.append(override)
    return hints, sound


def unknown_key_hints(config_name: str, argv: list[str], groups: bool = True) -> list[str]:
    """`did you mean` lines for the overrides in argv whose key the composed config lacks (and,
    with `groups`, for the group choices naming no option)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    # Group choices (model=dnn) change which keys exist; compose with them, and only them.
    choices = [
        a for a in overrides if (CONF / a.split("=", 1)[0]).is_dir()
    ]  # data/augment=deform: a choice, not a key
    group_hints, sound = group_option_hints(choices)
    hints = group_hints if groups else []
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name=config_name, overrides=sound)
    known = config_keys(cfg)
    for override in overrides:
        key = override.split("=", 1)[0]
        if key.startswith(("+", "~", "hydra")) or key in known or override in choices:
            continue
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            if close:
                hints.append(f"hint: {key!r} is not a config key; did you mean {close[0]}?")
    return hints


def _print_hints(config_name: str, groups: bool = True) -> None:
    try:
        for hint in unknown_key_hints(config_name, sys.argv[1:], groups=groups):
            print(hint, file=sys.stderr)
    except Exception:  # the hint is a courtesy: never mask Hydra's own error
        pass


def run_with_hints(main: Callable[[], object], config_name: str) -> None:
    if errors := unknown_choice_errors(sys.argv[1:]):  # before Hydra, whose error for it is a dozen lines
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        _print_hints(config_name, groups=False)  # a mistyped key beside it still gets its hint
        raise SystemExit(1)
    try:
        main()
    except SystemExit as exit_:  # Hydra reports the error, then exits 1
        if exit_.code not in (0, None, 143):  # 143: stopped by SIGTERM after saving, no mistake to hint at
            _print_hints(config_name)
        raise
    except Exception:  # with HYDRA_FULL_ERROR=1 the exception itself propagates
        _print_hints(config_name)
        raise
