"""Training and inference images/s for every registered architecture.

    python bench/throughput.py [--models cnn,dnn] [--batch-sizes 256,1024] [--device cpu|cuda]
                               [--channels-last] [--compile] [--bf16] [--seconds 3] [--out FILE]

Measures the network alone (forward + loss + backward + fused Adam step, as conf/optim/adam.yaml,
for training; forward under inference_mode for inference) on random inputs of each model's own
input shape, after warm-up steps, as the mean over a fixed wall-time budget. Prints a table and writes JSON:
bench/results/throughput_<machine>_<date>.json unless --out says otherwise (benchmeta.py).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from benchmeta import default_out, meta, write_result
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from kmnist.models import build_network, input_spec, list_models

CONF = Path(__file__).resolve().parents[1] / "conf"


def model_config(name: str) -> dict:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name="config", overrides=[f"model={name}"])
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if "pretrained" in model:
        model.update(pretrained=False, weights=None)  # throughput does not depend on the weights
    return model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(step, batch_size: int, device: torch.device, seconds: float, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 3:
            return n * batch_size / elapsed


def bench_model(
    name: str,
    batch_size: int,
    device: torch.device,
    seconds: float,
    channels_last: bool,
    compile_: bool,
    bf16: bool | None = None,
) -> dict:
    """bf16: autocast to bfloat16 (None: on CUDA only, as trainer=gpu does; True on CPU uses AMX where
    present)."""
    cfg = model_config(name)
    net = build_network(cfg).to(device)
    params = sum(p.numel() for p in net.parameters())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    runner = torch.compile(net) if compile_ else net
    spec = input_spec(cfg)
    x = torch.randn(batch_size, spec.in_chans, spec.input_size, spec.input_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch_size,), device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    bf16 = device.type == "cuda" if bf16 is None else bf16
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def train_step():
        with autocast:
            loss = loss_fn(runner(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.inference_mode(), autocast:
            runner(x)

    net.train()
    train = measure(train_step, batch_size, device, seconds)
    net.eval()
    infer = measure(infer_step, batch_size, device, seconds)
    return {
        "model": name,
        "params": params,
        "batch_size": batch_size,
        "device": device.type,
        "channels_last": channels_last,
        "compile": compile_,
        "bf16": bf16,
        "train_img_s": round(train, 1),
        "infer_img_s": round(infer, 1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument("--batch-sizes", default="256,1024")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action="store_true", help="also measure channels_last")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument(
        "--bf16", action="store_true", help="also measure bf16 autocast on the CPU (always on with CUDA)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="timed budget per measurement")
    parser.add_argument("--out", help="default: bench/results/throughput_<machine>_<date>.json")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    # compile is measured in the best layout asked for (channels_last when --channels-last is given)
    variants = (
        [(False, False, None)]
        + ([(True, False, None)] if args.channels_last else [])
        + ([(args.channels_last, True, None)] if args.compile else [])
        + ([(args.channels_last, False, True)] if args.bf16 and device.type == "cpu" else [])
    )
    rows = []
    header = (
        f"{'model':<10} {'params':>11} {'batch':>6} {'ch_last':>7} {'compile':>7} {'bf16':>5} "
        f"{'train img/s':>12} {'infer img/s':>12}"
    )
    dev_name = (
        torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    )
    print(f"device: {device} ({dev_name}, {torch.get_num_threads()} threads), torch {torch.__version__}")
    print(header)
    for name in args.models.split(","):
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            for channels_last, compile_, bf16 in variants:
                row = bench_model(name, batch_size, device, args.seconds, channels_last, compile_, bf16)
                rows.append(row)
                print(
                    f"{name:<10} {row['params']:>11,} {batch_size:>6} {str(channels_last):>7} "
                    f"{str(compile_):>7} {str(row['bf16']):>5} "
                    f"{row['train_img_s']:>12,.0f} {row['infer_img_s']:>12,.0f}",
                    flush=True,
                )
    result = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    where = device.type
    write_result(args.out or default_out("throughput", where), result, meta(__file__, argv, where))


if __name__ == "__main__":
    main()
