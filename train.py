"""Train a Kannada-MNIST classifier: `python train.py [model=cnn] [optim.lr=0.01] [-m sweeps]`.

Configs in conf/ are the API (`python train.py --help` lists the groups); kmnist.training does
the work. Returns the metric a sweep optimises (`optimized_metric`, default val/acc).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from kmnist.data.io import DataError
    from kmnist.inference import CheckpointError
    from kmnist.training import train

    try:
        metrics = train(cfg)
    except (DataError, CheckpointError) as err:
        raise SystemExit(f"error: {err}") from None
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
