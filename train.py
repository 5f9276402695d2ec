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

    from kmnist.errors import user_error
    from kmnist.training import train

    try:
        metrics = train(cfg)
    except Exception as err:  # a bad option, file or checkpoint: one line; anything else: its traceback
        if (cause := user_error(err)) is None:
            raise
        raise SystemExit(f"error: {cause}") from None
    except SIGTERMException:
        print(f"SIGTERM: checkpoint saved; resume with ckpt_path={cfg.paths.output_dir}", file=sys.stderr)
        raise SystemExit(143) from None  # 128 + SIGTERM, as schedulers expect
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    from kmnist.hints import run_with_hints

    run_with_hints(main, "config")
