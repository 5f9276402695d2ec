"""Train a Kannada-MNIST classifier: `python train.py [model=cnn] [optim.lr=0.01] [-m sweeps]`.

Configs in conf/ are the API (`python train.py --help` lists the groups); kmnist.training does
the work. Returns the metric a sweep optimises (`optimized_metric`, default val/acc).
"""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from kmnist.data.io import DataError
    from kmnist.inference import CheckpointError
    from kmnist.training import train

    try:
        metrics = train(cfg)
    except (DataError, CheckpointError) as err:
        raise SystemExit(f"error: {err}") from None
    except SIGTERMException:
        print(f"SIGTERM: checkpoint saved; resume with ckpt_path={cfg.paths.output_dir}", file=sys.stderr)
        raise SystemExit(143) from None  # 128 + SIGTERM, as schedulers expect
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    from kmnist.hints import run_with_hints

    run_with_hints(main, "config")
