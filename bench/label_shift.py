"""Label-shift-aware prediction and test-time adaptation, scored on the dev writers (issue #34).

    python bench/label_shift.py CKPT [CKPT ...] [--data $KMNIST_DATA] [--out bench/results/NAME.json]

Transductive: every arm predicts all of `test.csv.gz` (its 8 writers' unlabelled images are what
AdaBN, TENT and the class totals read), then scores the rows whose ids are in `test_dev.csv.gz`
(the dev writers' labels, read for scoring only). Arms, over the checkpoints' ensemble:
plain (one view), tta=affine, then with tta=affine: adapt=bn (AdaBN), adapt=tent (TENT then AdaBN),
each with prior=none|uniform|estimate. `estimate` runs EM on probabilities calibrated by a
temperature fitted on the training writers every checkpoint held out (T=1 when there are none).
Choosing a recipe on these figures makes dev optimistic: the private writers are the unbiased test.
Writes bench/results/label_shift_<machine>_<date>.json (machine e.g. cpu2-avx2) with a `meta` field.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kmnist.data.io import read_digits
from kmnist.data.splits import writer_split
from kmnist.data.table import DigitTable
from kmnist.engine.adapt import adapt_models
from kmnist.engine.inference import LoadedModel, load_checkpoint, predict_proba, resolve_device
from kmnist.engine.label_shift import (
    PRIOR_MODES,
    apply_prior,
    estimate_prior,
    fit_temperature,
    probs_temperature,
)

TTA = "affine"


def machine_slug(device: torch.device) -> str:
    """cpu2-avx2, cpu16-avx512-bf16, ... or the GPU's name (gpu-nvidia-h100-80gb-hbm3)."""
    if device.type == "cuda":
        return "gpu-" + re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    flags = set()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    isa = next(
        (
            name
            for flag, name in (("avx512_bf16", "avx512-bf16"), ("avx512f", "avx512"), ("avx2", "avx2"))
            if flag in flags
        ),
        "cpu",
    )
    return f"cpu{os.cpu_count()}-{isa}"


def held_out_rows(models: list[LoadedModel], n_rows: int) -> np.ndarray:
    """Training rows every checkpoint held out (writer splits only): where a temperature is fitted."""
    rows = None
    for model in models:
        data = model.config.get("data", {})
        if data.get("split", "writer") != "writer" or not data.get("val_writers"):
            return np.array([], dtype=np.int64)
        _, val = writer_split(n_rows, int(data["val_writers"]), int(data["seed"]))
        rows = val if rows is None else np.intersect1d(rows, val)
    return rows if rows is not None else np.array([], dtype=np.int64)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt", nargs="+")
    parser.add_argument("--data", default=os.environ.get("KMNIST_DATA", "data/kannada_mnist"))
    parser.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    parser.add_argument("--seed", type=int, default=0, help="adaptation's shuffling seed")
    parser.add_argument("--out", default=None)
    parser.add_argument("--rows", type=int, default=None, help="smoke test: the first ROWS test rows only")
    args = parser.parse_args(argv)

    data = Path(args.data)
    test, dev, train = (
        read_digits(data / name) for name in ("test.csv.gz", "test_dev.csv.gz", "train.csv.gz")
    )
    if args.rows:
        test = DigitTable(images=test.images[: args.rows], ids=test.ids[: args.rows])
    position = {int(i): k for k, i in enumerate(test.ids)}
    on_dev = np.array([int(i) in position for i in dev.ids])
    dev_labels = dev.labels[on_dev]
    dev_rows = np.array([position[int(i)] for i in dev.ids[on_dev]], dtype=np.int64)  # dev ids are test ids
    device = resolve_device(args.accelerator)
    models = [load_checkpoint(path) for path in args.ckpt]
    batch = 1024 if device.type == "cuda" else 256

    def predict(nets, images, tta):
        return predict_proba(nets, images, tta=tta, device=device, batch_size=batch, progress=False)

    held = held_out_rows(models, len(train))[: args.rows]
    start = time.perf_counter()
    temperature = None
    if len(held):
        val_probs = predict(models, train.images[held], TTA)
        temperature = fit_temperature(np.log(np.maximum(val_probs, 1e-30)), train.labels[held])
    timings = {"temperature_s": time.perf_counter() - start}

    probs = {}
    start = time.perf_counter()
    probs["plain"] = predict(models, test.images, False)
    timings["plain_s"] = time.perf_counter() - start
    for mode in ("none", "bn", "tent"):
        start = time.perf_counter()
        nets = models if mode == "none" else adapt_models(models, test.images, mode, device, seed=args.seed)
        timings[f"adapt_{mode}_s"] = time.perf_counter() - start
        start = time.perf_counter()
        probs[mode] = predict(nets, test.images, TTA)
        timings[f"predict_{mode}_s"] = time.perf_counter() - start

    arms = []
    for key, label in (
        ("plain", "plain"),
        ("none", "tta=affine"),
        ("bn", "+ adapt=bn"),
        ("tent", "+ adapt=tent"),
    ):
        for prior in PRIOR_MODES if key != "plain" else ("none",):
            start = time.perf_counter()
            p = apply_prior(probs[key], prior, temperature=temperature)
            seconds = time.perf_counter() - start
            decision = p.argmax(1)
            arm = {
                "arm": label + ("" if prior == "none" else f" + prior={prior}"),
                "tta": "none" if key == "plain" else TTA,
                "adapt": "none" if key == "plain" else key,
                "prior": prior,
                "dev_acc": float((decision[dev_rows] == dev_labels).mean()),
                "dev_errors": int((decision[dev_rows] != dev_labels).sum()),
                "test_class_totals": np.bincount(decision, minlength=p.shape[1]).tolist(),
                "prior_s": seconds,
            }
            if prior == "estimate":
                calibrated = probs[key] if temperature is None else probs_temperature(probs[key], temperature)
                arm["estimated_prior"] = estimate_prior(calibrated)[0].round(4).tolist()
            arms.append(arm)

    print(
        f"{len(args.ckpt)} checkpoint(s), dev = {len(dev_rows):,} of test.csv.gz's {len(test):,} rows; "
        f"temperature {temperature if temperature is None else round(temperature, 3)} "
        f"(fitted on {len(held):,} held-out training rows)"
    )
    print("| arm | dev acc % | dev errors | test class totals (min-max) |")
    print("|---|---:|---:|---:|")
    for arm in arms:
        totals = arm["test_class_totals"]
        spread = f"{min(totals)}-{max(totals)}"
        print(f"| {arm['arm']} | {100 * arm['dev_acc']:.2f} | {arm['dev_errors']} | {spread} |")

    machine, date = machine_slug(device), datetime.date.today().isoformat()
    out = Path(args.out or Path(__file__).parent / "results" / f"label_shift_{machine}_{date}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "meta": {
            "command": " ".join(["python bench/label_shift.py", *argv]),
            "machine": machine,
            "date": date,
        },
        "kind": "transductive: adapts to and balances test.csv.gz's unlabelled images; scored on dev ids",
        "checkpoints": args.ckpt,
        "models": [m.config["model"]["name"] for m in models],
        "device": str(device),
        "threads": torch.get_num_threads(),
        "dev_rows": len(dev_rows),
        "test_rows": len(test),
        "temperature": temperature,
        "temperature_rows": len(held),
        "seed": args.seed,
        "timings": timings,
        "arms": arms,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
