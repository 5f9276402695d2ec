"""Train a Kannada-MNIST classifier: `python train.py [model=cnn] [optim.lr=0.01] [-m sweeps]`.

Configs in conf/ are the API (`python train.py --help` lists the groups); kmnist.tasks.train does
the work. Returns the metric a sweep optimises (`optimized_metric`, default val/acc).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from kmnist.engine.options import check_options
    from kmnist.tasks.wrapper import sweep_job, task_wrapper

    # An option at fault is one line at once, before torch and Lightning load (5-10 s on 2 cores).
    task_wrapper(check_options)(cfg)
    from kmnist.tasks.train import train

    result = sweep_job(task_wrapper(train))(cfg)
    # A sweep's crashed job (sweep_continue_on_crash): None is a failed trial to Optuna (NaN breaks its tell).
    if result is None:
        return None
    metrics, run = result
    return metrics.get(
        run.cfg.optimized_metric
    )  # the derived metric (dev/acc when validating on data.val_file alone)


if __name__ == "__main__":
    import sys

    from kmnist.utils.hints import run_with_hints
    from kmnist.utils.ranks import hydra_overrides_for_rank

    sys.argv += hydra_overrides_for_rank(
        sys.argv
    )  # torchrun/srun ranks 1..N-1: rank 0 owns the run directory

    run_with_hints(main, "config")
