"""Batches as index slices of tensors held in memory: no DataLoader workers, no collation."""

from __future__ import annotations

import math

import torch


class TensorBatches:
    """Iterate over tensors in index-sliced batches; reshuffled each epoch from (seed, epoch).

    `epoch_fn` gives the epoch (the trainer's), so a resumed run sees the same order as an
    uninterrupted one; without it each pass counts as the next epoch. `done_fn` gives how many of
    this epoch's batches were already trained on (a run resumed from a checkpoint saved mid-epoch,
    e.g. on SIGTERM): those are skipped, so the epoch goes on where it stopped.

    With `world_size > 1` each rank takes its own interleaved share of every epoch's order, so
    processes see disjoint data, as a DistributedSampler would give. `equal_shards` (training)
    gives every rank the same number of rows, dropping up to world_size - 1 of them: DDP hangs if
    one rank takes a step more than another. Without it (evaluation) the ranks split the rows
    exactly, some taking one more, so metrics synced across ranks count every row once.
    """

    def __init__(
        self,
        tensors: tuple[torch.Tensor, ...],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn=None,
        equal_shards: bool = True,
        done_fn=None,
    ):
        self.tensors, self.batch_size, self.shuffle, self.drop_last = tensors, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size, self.epoch, self.epoch_fn = seed, rank, world_size, 0, epoch_fn
        self.done_fn = done_fn
        self.equal_shards = equal_shards

    def _rows(self) -> int:
        n = len(self.tensors[0])
        if self.equal_shards:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        rows = self._rows()
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def __iter__(self):
        n = len(self.tensors[0])
        device = self.tensors[0].device
        if self.shuffle:
            epoch = self.epoch_fn() if self.epoch_fn else self.epoch
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=generator).to(device)
            self.epoch += 1
        else:
            order = torch.arange(n, device=device)
        if self.equal_shards:
            order = order[: n // self.world_size * self.world_size]
        # Interleaved: with the global batch split evenly, the ranks' k-th batches together are
        # exactly one process's k-th batch, so DDP takes the same steps as a single process.
        order = order[self.rank :: self.world_size]
        done = self.done_fn() if self.done_fn else 0
        for start in range(done * self.batch_size, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield tuple(t[index] for t in self.tensors)
