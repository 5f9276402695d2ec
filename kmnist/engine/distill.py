"""Knowledge distillation: an ensemble of trained checkpoints teaches one network.

The teachers score every training batch as the student sees it, augmentation included ("function
matching", Beyer et al. 2022), so no soft labels are stored and test images (added through
`data.extra_train`) are taught like training images. The target is a mix of the label and the
teachers' mean probabilities, and cross-entropy against it equals `weight` x KL(teacher || student)
plus `1 - weight` x the usual loss, up to a constant. Because the target is just a tensor,
the CUDA-graph step (`speed.cuda_graph`) and label smoothing work unchanged. A temperature is
left out: with T = 1 the soft targets need no rescaled student logits, and
function matching trains at T = 1.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from kmnist import NUM_CLASSES
from kmnist.engine.inference import LoadedModel, load_checkpoint
from kmnist.errors import CheckpointError, ConfigError
from kmnist.models.probabilities import probabilities

# Settings that shape what a network receives: a teacher must see the student's very inputs.
INPUT_SETTINGS = ("scaling", "input_size", "in_chans", "imagenet_norm")


class TeacherEnsemble:
    """Frozen checkpoints in eval mode; `soft_targets` mixes their mean softmax with the labels.

    Deliberately not an nn.Module: registered as a submodule, the teachers would enter the
    student's checkpoint, its optimiser and its EMA average. Copies (EMA deep-copies the
    LightningModule) share the teachers rather than duplicating them.
    """

    def __init__(
        self, checkpoints: list[str | Path], weight: float = 0.9, student_inputs: dict | None = None
    ):
        if not checkpoints:
            raise ConfigError(
                "loss.distill.teachers=[]: name at least one checkpoint, "
                "e.g. loss.distill.teachers=[a.ckpt,b.ckpt]"
            )
        if not 0.0 < weight <= 1.0:
            raise ConfigError(
                f"loss.distill.weight={weight}: expected a share in (0, 1] of the loss given to the teachers"
            )
        missing = [str(path) for path in checkpoints if not Path(path).is_file()]
        if missing:  # load_checkpoint's own hint names predict.py's ckpt=
            raise CheckpointError(
                f"{missing[0]}: checkpoint not found "
                "(loss.distill.teachers=[...] takes .ckpt files written by train.py)"
            )
        self.models: list[LoadedModel] = [load_checkpoint(path) for path in checkpoints]
        self.weight = float(weight)
        if student_inputs is not None:
            for model in self.models:
                check_same_inputs(model, student_inputs)

    def __deepcopy__(self, memo) -> TeacherEnsemble:
        return self

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Mean softmax of the teachers on a preprocessed batch (float32, (B, 10))."""
        total = 0
        for model in self.models:
            if next(model.net.parameters()).device != x.device:
                model.to(x.device)
            total = total + probabilities(model.net, x)
        return total / len(self.models)

    def soft_targets(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(1 - weight) x the target (labels, or MixUp/CutMix's soft targets) + weight x the teachers'."""
        if target.ndim == 1:
            target = F.one_hot(target, num_classes=NUM_CLASSES).float()
        return torch.lerp(target, self.probabilities(x), self.weight)


def check_same_inputs(teacher: LoadedModel, student_inputs: dict) -> None:
    """Refuse a teacher whose preprocessing differs from the student's: it would be scored on
    inputs it was never trained on."""
    for key in INPUT_SETTINGS:
        theirs = getattr(teacher.preprocess, key)
        option = (
            "data.scaling" if key == "scaling" else f"input {key}"
        )  # the rest is the network's input spec
        if key in student_inputs and student_inputs[key] != theirs:
            raise ConfigError(
                f"loss.distill.teachers: {teacher.path} was trained with {option}={theirs}, "
                f"this student gets {option}={student_inputs[key]}: "
                "teacher and student must see the same inputs"
            )
