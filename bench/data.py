"""Cold and cached load time of the 60k training CSV.

    python bench/data.py [--file $KMNIST_DATA/train.csv.gz] [--repeats 5] [--out FILE]

Cold: a fresh, empty cache folder (pandas parses and validates the CSV, then the cache is
written). Cached: the same file again through that cache (uint8 .npy files, hash-checked).
Writes bench/results/data_<machine>_<date>.json unless --out says otherwise (benchmeta.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmeta import default_out, meta, write_result

from kmnist.data.io import read_digits


def main(argv=None) -> None:
    default = Path(os.environ.get("KMNIST_DATA", "data/kannada_mnist")) / "train.csv.gz"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", default=str(default))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="default: bench/results/data_<machine>_<date>.json")
    args = parser.parse_args(argv)

    cold, cached = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            table = read_digits(args.file, cache_dir=cache)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            read_digits(args.file, cache_dir=cache)
            cached.append(time.perf_counter() - start)
    result = {
        "file": args.file,
        "rows": len(table),
        "repeats": args.repeats,
        "cold_s_mean": statistics.mean(cold),
        "cold_s_min": min(cold),
        "cached_s_mean": statistics.mean(cached),
        "cached_s_min": min(cached),
    }
    print(
        f"{'load':<8} {'mean s':>8} {'min s':>8}   "
        f"({result['rows']:,} rows, {args.repeats} repeats, {args.file})"
    )
    print(f"{'cold':<8} {result['cold_s_mean']:>8.3f} {result['cold_s_min']:>8.3f}")
    print(f"{'cached':<8} {result['cached_s_mean']:>8.3f} {result['cached_s_min']:>8.3f}")
    write_result(args.out or default_out("data", "cpu"), result, meta(__file__, argv, "cpu"))


if __name__ == "__main__":
    main()
