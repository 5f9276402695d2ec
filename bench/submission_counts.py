"""Label-free checks of submissions: predicted digits per class, and how often two files disagree.

    python bench/submission_counts.py bench/submissions/*_dig.csv [--per-class 1024]

Dig-MNIST holds 1,024 images of each digit (the dataset paper), so with `--per-class 1024`,
the sum over classes of max(0, predicted - 1,024) is a lower bound on a Dig submission's errors
and 1 - bound / rows an upper bound on its accuracy. It is a diagnostic, not a score: a model
can meet the class counts and still be wrong. Nothing here reads a hidden label, and a recipe
chosen by this bound would be selected on Dig-MNIST, which issue #12 rules out.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd


def read_submission(path: str) -> pd.Series:
    """A submission's `label` column indexed by `id`, with a one-line error for a bad file."""
    frame = pd.read_csv(path)
    missing = {"id", "label"} - set(frame.columns)
    if missing:
        raise SystemExit(f"error: {path}: expected columns id,label; missing {', '.join(sorted(missing))}")
    if frame["id"].duplicated().any():
        raise SystemExit(f"error: {path}: id {frame['id'][frame['id'].duplicated()].iloc[0]} appears twice")
    return frame.set_index("id")["label"]


def error_bound(counts: pd.Series, per_class: int) -> int:
    """Fewest errors consistent with `per_class` images of every digit: each prediction beyond it is wrong."""
    return int((counts - per_class).clip(lower=0).sum())


def short_names(paths: list[str]) -> list[str]:
    """Each file's stem, or as many of its last path parts as tell it apart (a pipeline's
    `submissions/distilled_dig.csv` against a set-aside `distilled.superseded-1/distilled_dig.csv`)."""
    parts = [Path(p).with_suffix("").parts for p in paths]
    for depth in range(1, max(len(x) for x in parts) + 1):
        names = ["/".join(x[-depth:]) for x in parts]
        if len(set(names)) == len(names):
            return names
    return list(paths)  # one file given twice: shown once


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("submission", nargs="+")
    parser.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="true images per digit, when known (Dig-MNIST: 1024): prints the error bound",
    )
    args = parser.parse_args(argv)

    predictions = {name: read_submission(p) for name, p in zip(short_names(args.submission), args.submission)}
    header = "| submission | rows | predicted per digit 0..9 | min-max |" + (
        " errors at least | accuracy at most |" if args.per_class else ""
    )
    print(header)
    print("|---|---:|---|---:|" + ("---:|---:|" if args.per_class else ""))
    for name, labels in predictions.items():
        counts = labels.value_counts().reindex(range(10), fill_value=0)
        row = (
            f"| {name} | {len(labels)} | {' '.join(str(c) for c in counts)} | {counts.min()}-{counts.max()} |"
        )
        if args.per_class:
            bound = error_bound(counts, args.per_class)
            row += f" {bound} | {100 * (1 - bound / len(labels)):.2f}% |"
        print(row)
    if len(predictions) > 1:
        print("\n| a | b | rows that differ |\n|---|---|---:|")
        for (a, la), (b, lb) in itertools.combinations(predictions.items(), 2):
            common = la.index.intersection(lb.index)
            print(f"| {a} | {b} | {int((la[common] != lb[common]).sum())} of {len(common)} |")


if __name__ == "__main__":
    main()
