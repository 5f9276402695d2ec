"""Write a Kaggle submission from checkpoint(s): `python predict.py ckpt=PATH [input=CSV] [output=CSV]`.

`ckpt=[a.ckpt,b.ckpt] tta=true` averages an ensemble over flip-free test-time views. An input
with a `label` column is also scored (accuracy printed and saved beside the submission).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    from kmnist.tasks.predict import predict
    from kmnist.tasks.wrapper import task_wrapper

    task_wrapper(predict)(cfg)


if __name__ == "__main__":
    from kmnist.utils.hints import run_with_hints

    run_with_hints(main, "predict")
