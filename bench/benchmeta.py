"""What every bench script records beside its figures: the command, the machine and the date.

A result is written as `bench/results/<what>_<machine>_<date>.json` with a top-level `meta`:
`{"command": ..., "machine": ..., "machine_detail": ..., "date": ...}`. The machine is a short slug,
detected at run time: the GPU (`h100`, `h200`, `2xh100`) when the benchmark runs on CUDA, else the CPU
as its cores and what it computes natively: `cpu2-bf16` (AVX512-BF16 or AMX), `cpu2-avx512`,
`cpu2-avx2`, `cpu2` (none of these, or no /proc/cpuinfo).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return set(line.partition(":")[2].split())


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_slug(flags: set[str] | None = None, cores: int | None = None) -> str:
    flags = _cpu_flags() if flags is None else flags
    cores = _cores() if cores is None else cores
    if flags & {"avx512_bf16", "amx_bf16"}:
        isa = "-bf16"
    elif "avx512f" in flags:
        isa = "-avx512"
    elif "avx2" in flags:
        isa = "-avx2"
    else:
        isa = ""
    return f"cpu{cores}{isa}"


def gpu_slug(name: str, count: int = 1) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100'; 'NVIDIA A100-SXM4-80GB' -> 'a100';
    'NVIDIA GeForce RTX 4090' -> 'rtx-4090'."""
    words = [w for w in name.split() if w.lower() not in {"nvidia", "geforce", "tesla", "quadro"}]
    kept = []
    for word in words:
        if re.fullmatch(r"\d+GB|HBM\d*e?|PCIe|SXM\d*|NVL", word, flags=re.IGNORECASE):
            break
        kept.append(word.split("-")[0])
        if "-" in word:
            break
    slug = "-".join(re.sub(r"[^a-z0-9]", "", w.lower()) for w in kept if w) or "gpu"
    return f"{count}x{slug}" if count > 1 else slug


def machine(device: str | None = None) -> tuple[str, str]:
    """(slug, description) of where a benchmark on `device` ('cpu', 'cuda'; None: CUDA if present) runs."""
    if device is None or device.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                name = torch.cuda.get_device_name()
                count = torch.cuda.device_count()
                return gpu_slug(name, count), f"{count} x {name}"
        except ImportError:
            pass
    cpuinfo = Path("/proc/cpuinfo")
    model = ""
    if cpuinfo.exists():
        model = next(
            (
                ln.partition(":")[2].strip()
                for ln in cpuinfo.read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
    slug = cpu_slug()
    return slug, f"{_cores()}-core CPU{f' ({model})' if model else ''}"


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def command(script: str, argv: list[str] | None) -> str:
    """The command line that ran `script` with `argv` (sys.argv[1:] when None), from the repository root."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(script).resolve()
    shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    return shlex.join(["python", shown, *argv])


def default_out(what: str, device: str | None = None, ext: str = "json") -> str:
    """bench/results/<what>_<machine>_<date>.<ext>, with _2, _3 ... after `what` if that file exists."""
    slug, _ = machine(device)
    name = f"{what}_{slug}_{today()}"
    path, n = RESULTS / f"{name}.{ext}", 1
    while path.exists():
        n += 1
        path = RESULTS / f"{what}_{n}_{slug}_{today()}.{ext}"
    return str(path)


def meta(script: str, argv: list[str] | None, device: str | None = None) -> dict:
    slug, detail = machine(device)
    return {"command": command(script, argv), "machine": slug, "machine_detail": detail, "date": today()}


def write_result(path: str | Path, result: dict, meta_: dict) -> None:
    """Write `result` with `meta` first, atomically (a temporary file renamed over `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"meta": meta_, **result}, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
