"""Which test-time views help on new writers? Dev accuracy of every TTA view set
(`kmnist/data/tta.py`), for each checkpoint alone and for their ensemble.

    python bench/tta_views.py CKPT [CKPT ...] [--input $KMNIST_DATA/test_dev.csv.gz] [--out FILE]

Each model sees each distinct view once; a set's probabilities are then the mean over its views,
exactly what `predict.py tta=SET` computes. Dev labels only score, never choose a model. Writes
bench/results/tta_views_<machine>_<date>.json unless --out says otherwise (benchmeta.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from benchmeta import default_out, meta, write_result

from kmnist.data.io import read_digits
from kmnist.data.tta import VIEW_SETS
from kmnist.engine.inference import load_checkpoint, predict_proba, resolve_device


def main(argv=None) -> None:
    default = Path(os.environ.get("KMNIST_DATA", "data/kannada_mnist")) / "test_dev.csv.gz"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt", nargs="+")
    parser.add_argument("--input", default=str(default))
    parser.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    parser.add_argument("--out", help="default: bench/results/tta_views_<machine>_<date>.json")
    args = parser.parse_args(argv)

    table = read_digits(args.input)
    if table.labels is None:
        raise SystemExit(f"error: {args.input}: has no `label` column to score the views with")
    views = list(dict.fromkeys(view for members in VIEW_SETS.values() for view in members))
    device = resolve_device(args.accelerator)
    probs = {}  # (checkpoint, view) -> (N, 10)
    start = time.perf_counter()
    for path in args.ckpt:
        model = load_checkpoint(path)
        for view in views:
            probs[path, view] = predict_proba(
                [model],
                table.images,
                tta=(view,),
                device=device,
                batch_size=1024 if device.type == "cuda" else 256,
                progress=False,
            )
    seconds = time.perf_counter() - start

    rows = []
    for name, members in VIEW_SETS.items():
        per_model = [np.mean([probs[path, view] for view in members], axis=0) for path in args.ckpt]
        alone = [float((p.argmax(1) == table.labels).mean()) for p in per_model]
        ensemble = float((np.mean(per_model, axis=0).argmax(1) == table.labels).mean())
        rows.append(
            {
                "set": name,
                "views": len(members),
                "alone_mean": statistics.mean(alone),
                "alone_std": statistics.stdev(alone) if len(alone) > 1 else 0.0,
                "alone": alone,
                "ensemble": ensemble,
            }
        )

    print(
        f"{args.input}: {len(table):,} rows, {len(args.ckpt)} checkpoints, {len(views)} distinct views, "
        f"{seconds:.1f} s of inference"
    )
    print("| view set | views | each model alone: acc % mean ± std | ensemble acc % |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['set']} | {row['views']} | {100 * row['alone_mean']:.2f} ± {100 * row['alone_std']:.2f} "
            f"| {100 * row['ensemble']:.2f} |"
        )
    result = {
        "input": args.input,
        "rows": len(table),
        "checkpoints": args.ckpt,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "inference_s": seconds,
        "sets": rows,
    }
    where = str(device)
    write_result(args.out or default_out("tta_views", where), result, meta(__file__, argv, where))


if __name__ == "__main__":
    main()
