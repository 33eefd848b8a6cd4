"""Class-balanced batch samplers: every batch holds ``samples_per_class`` images of each of
``batch_size / samples_per_class`` distinct classes (PML's ``MPerClassSampler`` idea).

Both are *batch* samplers (``DataLoader(ds, batch_sampler=...)``), seeded, and reshuffle per
epoch through ``set_epoch(e)``. Classes are drawn from a running sequence of shuffled class
orders, so all classes appear about equally often; within a class, images are taken along a
shuffled order of its images (every image before any repeats); a class with fewer than
``samples_per_class`` images is completed by drawing with replacement.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ClassBalancedSampler", "DistributedClassBalancedSampler"]


class ClassBalancedSampler(Sampler):
    """Yields ``len(self)`` lists of ``batch_size`` dataset indices.

    Args:
        labels: ``(N,)`` integer labels.
        batch_size: images per batch, a multiple of ``samples_per_class``.
        samples_per_class: ``m``, images per class in a batch.
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        drop_last: ``len = N // batch_size`` batches if True, else ``ceil(N / batch_size)``
            (every batch is full either way).
    """

    def __init__(self, labels, batch_size: int, samples_per_class: int, seed: int = 0, drop_last: bool = True):
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if samples_per_class < 1 or batch_size < 1 or batch_size % samples_per_class:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of samples_per_class ({samples_per_class})"
            )
        self.classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        # indices of each class in ascending order: one stable sort, not a scan of N per class
        self.per_class = torch.split(torch.argsort(inverse, stable=True), counts.tolist())
        self.classes_per_batch = batch_size // samples_per_class
        if self.classes_per_batch > len(self.classes):
            raise ValueError(
                f"a batch of {batch_size} with {samples_per_class} per class needs {self.classes_per_batch} "
                f"classes, but the labels have only {len(self.classes)}"
            )
        self.num_samples, self.batch_size, self.m = len(labels), batch_size, samples_per_class
        self.seed, self.drop_last, self.epoch = int(seed), drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffles of epoch ``epoch`` on the next iteration."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = self.num_samples // self.batch_size if self.drop_last else -(-self.num_samples // self.batch_size)
        return max(n, 1)

    def _take(self, cls: int, g: torch.Generator, orders: dict) -> list[int]:
        """``m`` indices of class ``cls``, continuing its shuffled order (reshuffled when spent)."""
        idx = self.per_class[cls]
        if len(idx) < self.m:
            extra = idx[torch.randint(len(idx), (self.m - len(idx),), generator=g)]
            return torch.cat([idx[torch.randperm(len(idx), generator=g)], extra]).tolist()
        order, pos = orders.get(cls, (None, len(idx)))
        if pos + self.m > len(idx):
            order, pos = idx[torch.randperm(len(idx), generator=g)], 0
        orders[cls] = (order, pos + self.m)
        return order[pos : pos + self.m].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        queue: list[int] = []
        orders: dict = {}
        for _ in range(len(self)):
            chosen: list[int] = []
            while len(chosen) < self.classes_per_batch:
                if not queue:
                    queue = torch.randperm(len(self.classes), generator=g).tolist()
                    queue = [c for c in queue if c not in chosen] + [c for c in queue if c in chosen]
                chosen.append(queue.pop(0))
            yield [i for c in chosen for i in self._take(c, g, orders)]


class DistributedClassBalancedSampler(Sampler):
    """This rank's slice of the global class-balanced batches of ``batch_size · num_replicas``.

    Every rank builds the same global batches (same seed and epoch) and yields the rows
    ``[rank·batch_size, (rank+1)·batch_size)``; with ``batch_size`` a multiple of
    ``samples_per_class`` each class of a batch lives on one rank. All ranks yield
    ``len(self) = N // (batch_size · num_replicas)`` batches. ``num_replicas`` / ``rank`` default
    to ``torch.distributed``'s world (1 / 0 when it is not initialised).
    """

    def __init__(self, labels, batch_size: int, samples_per_class: int, num_replicas: int | None = None,
                 rank: int | None = None, seed: int = 0):
        import torch.distributed as dist

        ready = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if ready else 1)
        self.rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} outside 0..{self.num_replicas - 1}")
        self.batch_size = batch_size
        self.global_sampler = ClassBalancedSampler(labels, batch_size * self.num_replicas, samples_per_class, seed)

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffles of epoch ``epoch`` (call it with the same value on every rank)."""
        self.global_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.global_sampler)

    def __iter__(self) -> Iterator[list[int]]:
        lo = self.rank * self.batch_size
        for batch in self.global_sampler:
            yield batch[lo : lo + self.batch_size]
