"""Write a Kaggle submission from checkpoint(s): `python predict.py ckpt=PATH [input=CSV] [output=CSV]`.

`ckpt=[a.ckpt,b.ckpt] tta=true` averages an ensemble over flip-free test-time views. An input
with a `label` column is also scored (accuracy printed and saved beside the submission).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    from kmnist.errors import user_error
    from kmnist.prediction import predict

    try:
        predict(cfg)
    except Exception as err:  # a bad option, file or checkpoint: one line; anything else: its traceback
        if (cause := user_error(err)) is None:
            raise
        raise SystemExit(f"error: {cause}") from None


if __name__ == "__main__":
    from kmnist.hints import run_with_hints

    run_with_hints(main, "predict")
