"""Knowledge distillation: checkpoints teach a student on every augmented batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import open_dict

from kmnist.data.io import DigitTable, read_digits, table_to_frame
from kmnist.data.preprocess import Preprocess
from kmnist.engine.distill import TeacherEnsemble
from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.errors import ConfigError
from kmnist.models import build_network
from kmnist.tasks.train import train
from kmnist.utils.atomic import atomic_write_csv


@pytest.fixture
def teacher_ckpt(compose_train, data_dir, tmp_path_factory) -> str:
    """A real, briefly trained checkpoint that teaches a wrong lesson on purpose: it learnt every
    digit d as d + 1 (mod 10). A student that follows it cannot have learnt from the labels."""
    shifted_dir = tmp_path_factory.mktemp("shifted")
    table = read_digits(data_dir / "train.csv.gz")
    atomic_write_csv(
        table_to_frame(DigitTable(images=table.images, labels=(table.labels + 1) % 10)),
        shifted_dir / "train.csv.gz",
    )
    cfg = compose_train("model=kresnet", "report=false", "seed=7", f"paths.data_dir={shifted_dir}")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path_factory.mktemp("teacher"))
        cfg.trainer.limit_train_batches = 40
    metrics, _ = train(cfg)
    assert metrics["val/acc"] > 0.5, "the teacher must know its lesson for the student to learn it"
    return metrics["best_ckpt"]


def test_soft_targets_mix_labels_with_the_teachers_mean_probabilities(teacher_ckpt, data_dir):
    images = read_digits(data_dir / "test_dev.csv.gz").images[:50]
    x = Preprocess.to_unit(torch.from_numpy(images).unsqueeze(1))  # scale: the network's input as is
    teacher = TeacherEnsemble([teacher_ckpt, teacher_ckpt], weight=0.75)
    probs = teacher.probabilities(x)
    torch.testing.assert_close(
        probs, torch.from_numpy(predict_proba([load_checkpoint(teacher_ckpt)], images, progress=False))
    )
    y = torch.arange(50) % 10
    expected = 0.25 * F.one_hot(y, 10).float() + 0.75 * probs
    torch.testing.assert_close(teacher.soft_targets(x, y), expected)
    soft = torch.full((50, 10), 0.1)  # MixUp/CutMix targets are mixed the same way
    torch.testing.assert_close(teacher.soft_targets(x, soft), 0.25 * soft + 0.75 * probs)


def mean_kl(teacher: torch.Tensor, student_net: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(F.kl_div(F.log_softmax(student_net.eval()(x), -1), teacher, reduction="batchmean"))


@pytest.mark.parametrize("manual_loop", [False, True])
def test_a_student_moves_toward_its_fixed_teacher(
    compose_train, teacher_ckpt, data_dir, tmp_path, manual_loop
):
    cfg = compose_train(
        "model=cnn",
        "model.dropout=0",
        "data/augment=none",
        "report=false",
        f"loss.distill.teachers=[{teacher_ckpt}]",
        "loss.distill.weight=1.0",
        f"speed.cuda_graph={str(manual_loop).lower()}",
    )  # the CUDA-graph loop runs eagerly on CPU
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
        cfg.trainer.limit_train_batches = 30
    images = read_digits(data_dir / "train.csv.gz").images[:256]
    x = Preprocess.to_unit(torch.from_numpy(images).unsqueeze(1))
    teacher = TeacherEnsemble([teacher_ckpt]).probabilities(x)
    torch.manual_seed(cfg.seed)
    before = mean_kl(teacher, build_network(dict(cfg.model)), x)

    metrics, _ = train(cfg)
    student = load_checkpoint(metrics["best_ckpt"])
    after = mean_kl(teacher, student.net.float(), x.contiguous(memory_format=torch.channels_last))
    assert after < 0.5 * before, (before, after)
    # It learnt the teacher's lesson (d -> d + 1), which the labels never taught.
    labels = read_digits(data_dir / "train.csv.gz").labels[:256]
    predicted = predict_proba([student], images, progress=False).argmax(1)
    agreement = float((predicted == teacher.argmax(1).numpy()).mean())
    assert agreement > 0.5 and agreement > 2 * float((predicted == labels).mean()), agreement
    # The teacher stays outside the student's checkpoint: only the student's own weights are saved.
    state = torch.load(metrics["best_ckpt"], weights_only=True)["state_dict"]
    assert set(state) == {f"net.{k}" for k in student.net.state_dict()}


def test_a_teacher_that_sees_other_inputs_is_refused(compose_train, teacher_ckpt):
    cfg = compose_train("model=cnn", "data.scaling=standardize", f"loss.distill.teachers=[{teacher_ckpt}]")
    with pytest.raises(ConfigError, match="data.scaling=scale.*data.scaling=standardize"):
        train(cfg)


@pytest.mark.parametrize("weight", [0.0, 1.5])
def test_a_weight_outside_the_unit_interval_is_refused(teacher_ckpt, weight):
    with pytest.raises(ConfigError, match=f"loss.distill.weight={weight}"):
        TeacherEnsemble([teacher_ckpt], weight=weight)


def test_one_teacher_path_is_a_list_of_one_and_a_missing_one_names_the_option(
    compose_train, teacher_ckpt, tmp_path
):
    from kmnist.errors import CheckpointError
    from kmnist.tasks.train import build_teacher

    cfg = compose_train(
        "model=cnn", f"loss.distill.teachers={teacher_ckpt}"
    )  # no brackets: a path, not its letters
    assert [str(m.path) for m in build_teacher(cfg).models] == [str(teacher_ckpt)]
    missing = tmp_path / "typo.ckpt"
    with pytest.raises(
        CheckpointError, match=rf"^{missing}: checkpoint not found \(loss.distill.teachers=\[...\]"
    ):
        build_teacher(compose_train("model=cnn", f"loss.distill.teachers={missing}"))
