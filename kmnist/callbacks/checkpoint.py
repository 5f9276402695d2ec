"""Lightning's ModelCheckpoint, still competing against the run it resumed.

Configured in conf/callbacks/model_checkpoint.yaml.

A run resumed with `ckpt_path=` writes into a new run folder, and Lightning drops the best score when
the folder changes: only epochs after the resume competed, so `best_ckpt` in metrics.json (and the
score a sweep gets) could be an epoch worse than one the first folder already held. Here the earlier
best checkpoints are copied into the new folder with their scores, and the run goes on comparing
against them, as an uninterrupted run would.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from kmnist.utils.atomic import atomic_write


class ResumableModelCheckpoint(ModelCheckpoint):
    def _generate_state_key(self, **kwargs: Any) -> str:
        # ModelCheckpoint's own key: checkpoints from before this class (or the plain one) still restore it.
        return f"ModelCheckpoint{kwargs!r}"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        earlier = state_dict.get("dirpath")
        if (
            self.dirpath is None
            or earlier in (None, self.dirpath)
            or state_dict.get("monitor") != self.monitor
        ):
            return  # the same folder (Lightning restored everything) or another metric: nothing to carry over
        carried = {}
        for path, score in (state_dict.get("best_k_models") or {}).items():
            if Path(path).is_file():  # a folder moved or cleaned since: that one cannot be carried
                copy = Path(self.dirpath) / Path(path).name
                # Atomic: under DDP every rank restores this state and copies at once, each renaming a whole
                # file.
                atomic_write(copy, lambda tmp, source=path: shutil.copyfile(source, tmp))
                carried[str(copy)] = score
        if not carried:
            return
        better, worse = (max, min) if self.mode == "max" else (min, max)
        self.best_k_models = carried
        self.best_model_path = better(carried, key=lambda p: float(carried[p]))
        self.best_model_score = carried[self.best_model_path]
        self.kth_best_model_path = worse(carried, key=lambda p: float(carried[p]))
        self.kth_value = carried[self.kth_best_model_path]
