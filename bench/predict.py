"""Wall time of `predict.py` on the 10,000-image test file, end to end, and the inference loop's
images/s alone.

    python bench/predict.py CKPT [--input $KMNIST_DATA/test.csv.gz] [--repeats 3] [--tta]
                            [--precision 32-true|bf16-mixed|auto] [--out FILE]

End to end: process start to submission written (imports, checkpoint, CSV through the parse
cache, inference, atomic write), the cache warmed by one untimed run first. Loop: the same
checkpoint's `predict_proba` over the file's images in this process, after a warm-up. Writes
bench/results/predict[_tta]_<machine>_<date>.json unless --out says otherwise (benchmeta.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchmeta import default_out, meta, write_result

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    default = Path(os.environ.get("KMNIST_DATA", "data/kannada_mnist")) / "test.csv.gz"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt")
    parser.add_argument("--input", default=str(default))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument(
        "--precision", default="32-true", help="predict.py's precision= (bf16 autocast: bf16-mixed, or auto)"
    )
    parser.add_argument("--out", help="default: bench/results/predict_<machine>_<date>.json")
    args = parser.parse_args(argv)

    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(ROOT / "predict.py"),
            f"ckpt={args.ckpt}",
            f"input={args.input}",
            f"output={tmp}/submission.csv",
            "overwrite=true",
            "progress=false",
            f"tta={str(args.tta).lower()}",
            f"precision={args.precision}",
            f"paths.log_dir={tmp}",
            "hydra.output_subdir=null",
        ]
        for i in range(args.repeats + 1):
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"error: predict.py failed:\n{done.stderr[-2000:]}")
            if i:  # the first run warms the parse cache
                walls.append(time.perf_counter() - start)

    from kmnist.data.io import read_digits
    from kmnist.engine.inference import load_checkpoint, predict_proba
    from kmnist.engine.precision import native_bf16

    images = read_digits(args.input).images
    model = load_checkpoint(args.ckpt)
    predict_proba([model], images[:2048], progress=False, tta=args.tta, precision=args.precision)
    loops = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        predict_proba([model], images, progress=False, tta=args.tta, precision=args.precision)
        loops.append(len(images) / (time.perf_counter() - start))

    result = {
        "ckpt": args.ckpt,
        "input": args.input,
        "rows": len(images),
        "tta": args.tta,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "cpu_native_bf16": native_bf16("cpu"),
        "end_to_end_s_mean": statistics.mean(walls),
        "end_to_end_s_min": min(walls),
        "loop_img_s_mean": statistics.mean(loops),
    }
    print(
        f"predict.py end to end ({len(images):,} rows, tta={args.tta}, precision={args.precision}): "
        f"mean {result['end_to_end_s_mean']:.2f} s, "
        f"min {result['end_to_end_s_min']:.2f} s over {args.repeats}"
    )
    print(f"inference loop: {result['loop_img_s_mean']:,.0f} images/s")
    what = "predict" + ("_tta" if args.tta else "")
    write_result(args.out or default_out(what, "cpu"), result, meta(__file__, argv, "cpu"))


if __name__ == "__main__":
    main()
