"""The Kannada-MNIST LightningDataModule: CSV -> uint8 tensors in memory -> batches.

The whole dataset is 47 MB of uint8, so it lives in memory as one tensor (on the training
device with `on_device=true`) and batches are index slices: no DataLoader workers, no
per-sample collation. Batches stay uint8 until they reach their device, where augmentation
(training only) and scaling run as batched tensor ops in `on_after_batch_transfer`.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from kmnist.data.augment import BatchAugment
from kmnist.data.batches import TensorBatches
from kmnist.data.preprocess import Preprocess
from kmnist.data.splits import make_split, writer_order_share
from kmnist.data.training_files import TrainingFiles
from kmnist.errors import ConfigError, DataError
from kmnist.utils.lists import as_list


class KannadaMNISTDataModule(pl.LightningDataModule):
    def __init__(
        self,
        dir: str = "data/kannada_mnist",
        train_file: str = "train.csv.gz",
        predict_file: str = "test.csv.gz",
        split: str = "writer",
        val_writers: int = 6,
        val_fraction: float = 0.1,
        val_rows: int = 1000,
        seed: int = 42,
        limit_rows: int | None = None,
        scaling: str = "scale",
        input_size: int = 28,
        in_chans: int = 1,
        imagenet_norm: bool = False,
        channels_last: bool = False,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        on_device: bool = False,
        augment: BatchAugment | None = None,
        cache_dir: str | None = None,
        use_cache: bool = True,
        extra_train: list[str] | None = None,
        val_file: str | None = None,
    ):
        super().__init__()
        self.files = TrainingFiles(dir, cache_dir, use_cache)
        self.train_file, self.predict_file = train_file, predict_file
        self.split, self.val_writers = split, val_writers
        self.val_fraction, self.val_rows = val_fraction, val_rows
        self.seed, self.limit_rows, self.on_device = seed, limit_rows, on_device
        self.batch_size, self.eval_batch_size, self.channels_last = batch_size, eval_batch_size, channels_last
        self.extra_train = [str(f) for f in as_list(extra_train)]  # one PATH is [PATH], not its letters
        self.val_file = str(val_file) if val_file else None
        if augment is not None and not isinstance(augment, BatchAugment):
            raise ConfigError(
                f"data.augment={augment!r}: pick a preset with data/augment=NAME "
                "(none, light, notebook, ...) or set its fields, e.g. data.augment.rotation=10"
            )
        self.augment = augment or BatchAugment()
        self.preprocess = Preprocess(
            scaling=scaling, input_size=input_size, in_chans=in_chans, imagenet_norm=imagenet_norm
        )
        self.train_set: tuple[torch.Tensor, torch.Tensor] | None = None
        self.val_set: tuple[torch.Tensor, torch.Tensor] | None = None
        # A labelled file validated beside (or instead of) the held-out writers, e.g. the test
        # cohort's dev writers: its metrics are logged as dev/*.
        self.dev_set: tuple[torch.Tensor, torch.Tensor] | None = None
        self.predict_set: tuple[torch.Tensor] | None = None
        self.predict_ids: np.ndarray | None = None

    # ------------------------------------------------------------ files

    @property
    def holds_out_validation(self) -> bool:
        """Whether the configured split leaves any validation rows (known before loading data)."""
        return {"writer": self.val_writers, "stratified": self.val_fraction, "first_n": self.val_rows}.get(
            self.split, 1
        ) > 0

    @property
    def val_set_names(self) -> list[str]:
        """The validation dataloaders, in order, by the prefix their metrics are logged under:
        `val` (held-out training rows) and/or `dev` (data.val_file). Known before loading data."""
        return ["val"] * self.holds_out_validation + ["dev"] * (self.val_file is not None)

    def path(self, name: str) -> Path:
        """Where a data file named in the config is (kmnist.data.training_files)."""
        return self.files.path(name)

    # ------------------------------------------------------------ setup

    def _device(self) -> torch.device:
        if self.on_device and self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    @staticmethod
    def _as_tensor(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)  # uint8 (N, 1, 28, 28)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            self._setup_fit()
        if stage == "predict" and self.predict_set is None:
            table = self.files.read(self.predict_file)
            self.predict_ids = table.ids if table.ids is not None else np.arange(len(table))
            self.predict_set = (self._as_tensor(table.images).to(self._device()),)

    def _setup_fit(self) -> None:
        table = self.files.train_table(self.train_file)
        images, labels = table.images, table.labels
        if self.limit_rows:
            images, labels = images[: self.limit_rows], labels[: self.limit_rows]
        if self.split == "writer" and self.val_writers > 0 and (share := writer_order_share(labels)) < 0.5:
            raise DataError(
                f"{self.path(self.train_file)}: only {share:.0%} of its rows keep the official order "
                "(label = row mod 10), so its writers (row // 1280) are unknown and data.split=writer "
                "would be a random split; use data.split=stratified (a random split, reads optimistic) "
                "or the file in its original order"
            )
        train_idx, val_idx = make_split(
            self.split,
            labels,
            val_writers=self.val_writers,
            val_fraction=self.val_fraction,
            val_rows=self.val_rows,
            seed=self.seed,
        )
        train_images, train_labels = images[train_idx], labels[train_idx]
        if self.extra_train:  # labelled rows (e.g. pseudo-labels) join the training split only
            extra = self.files.extra_tables(self.extra_train)
            train_images = np.concatenate([train_images, *(t.images for t in extra)])
            train_labels = np.concatenate([train_labels, *(t.labels for t in extra)])
        # Statistics from the training split only, so validation stays unseen.
        unit = train_images.astype(np.float32) / 255.0
        self.preprocess.set_statistics(unit.mean(), unit.std())
        device = self._device()
        self.train_set = (self._as_tensor(train_images).to(device), torch.from_numpy(train_labels).to(device))
        self.val_set = (
            self._as_tensor(images[val_idx]).to(device),
            torch.from_numpy(labels[val_idx]).to(device),
        )
        if self.val_file is not None:
            dev = self.files.val_table(self.val_file)
            self.dev_set = self._as_tensor(dev.images).to(device), torch.from_numpy(dev.labels).to(device)
            training = [
                ("data.train_file", self.train_file),
                *(("data.extra_train", n) for n in self.extra_train),
            ]
            self.files.refuse_training_on(self.val_file, training)

    # ------------------------------------------------------------ loaders

    def _rank_info(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def per_process_batch_size(self, world_size: int) -> int:
        """`batch_size` is the global batch of one optimiser step; each DDP process takes an equal share."""
        if self.batch_size % world_size:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is the global batch and must divide evenly over the "
                f"{world_size} processes (trainer.devices x trainer.num_nodes); try "
                f"data.batch_size={max(world_size, self.batch_size // world_size * world_size)}"
            )
        return self.batch_size // world_size

    def train_dataloader(self) -> TensorBatches:
        rank, world = self._rank_info()
        batch_size = self.per_process_batch_size(world)
        # drop_last only when it loses little: a tiny slice must still give one batch. The test is
        # the same for any number of processes, so DDP and one process drop the same rows.
        drop_last = len(self.train_set[0]) // world >= 4 * batch_size
        trainer = self.trainer

        def done() -> int:  # batches of this epoch already trained on: 0 unless resumed mid-epoch
            return trainer.fit_loop.epoch_loop.batch_progress.current.completed if trainer.training else 0

        return TensorBatches(
            self.train_set,
            batch_size,
            shuffle=True,
            drop_last=drop_last,
            seed=self.seed,
            rank=rank,
            world_size=world,
            epoch_fn=(lambda: trainer.current_epoch) if trainer else None,
            done_fn=done if trainer else None,
        )

    def validation_sets(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each validation set by its metric prefix, in dataloader order (see `val_set_names`)."""
        sets = {"val": self.val_set, "dev": self.dev_set}
        return {name: sets[name] for name in self.val_set_names}

    def val_dataloader(self) -> list[TensorBatches]:
        rank, world = self._rank_info()
        loaders = []
        for name, tensors in self.validation_sets().items():
            if 0 < len(tensors[0]) < world:  # a rank without a batch would wait forever for the others
                raise ConfigError(
                    f"{len(tensors[0])} {name} rows cannot be shared by {world} processes; "
                    "hold out more rows or use fewer trainer.devices"
                )
            # eval_batch_size is per process: it bounds memory and does not change the metrics.
            loaders.append(
                TensorBatches(tensors, self.eval_batch_size, rank=rank, world_size=world, equal_shards=False)
            )
        return loaders

    def predict_dataloader(self) -> TensorBatches:
        return TensorBatches(self.predict_set, self.eval_batch_size)

    # ------------------------------------------------------------ on the device

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.transform(batch, train=self.trainer is not None and self.trainer.training)

    def transform(self, batch, train: bool):
        """A batch as the network receives it: augmented (and mixed) for training, then preprocessed.
        Also kmnist.show_batch's, which has no trainer to ask whether it is training."""
        images, *rest = batch
        self.preprocess.to(images.device)
        x = Preprocess.to_unit(images)
        if train:
            x = self.augment(x)
            if self.augment.mixes:  # MixUp / CutMix: the batch gains soft targets (x, y, target)
                x, target = self.augment.mix(x, rest[0])
                rest = [*rest, target]
        x = self.preprocess(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return (x, *rest)

    # Normalisation statistics travel inside every checkpoint, so prediction needs no data.
    def state_dict(self) -> dict:
        return {"mean": float(self.preprocess.mean), "std": float(self.preprocess.std)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.preprocess.set_statistics(state_dict["mean"], state_dict["std"])
