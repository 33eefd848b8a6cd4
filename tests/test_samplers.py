"""Class-balanced (and distributed) batch samplers, and symmetric label noise."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hyperdml.data import ClassBalancedSampler, DistributedClassBalancedSampler, inject_label_noise


def uneven_labels(seed=0):
    """12 classes with 4..20 images each, shuffled order."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(4, 21, (12,), generator=g)
    labels = torch.repeat_interleave(torch.arange(12), sizes)
    return labels[torch.randperm(len(labels), generator=g)]


@pytest.mark.parametrize("batch_size, m", [(16, 4), (12, 2), (24, 3)])
def test_every_batch_is_class_balanced(batch_size, m):
    labels = uneven_labels()
    sampler = ClassBalancedSampler(labels, batch_size, m, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(labels) // batch_size
    for b in batches:
        assert len(b) == batch_size and len(set(b)) == batch_size  # all classes have ≥ m images
        counts = Counter(labels[b].tolist())
        assert len(counts) == batch_size // m and set(counts.values()) == {m}


def test_classes_and_images_are_covered_evenly():
    labels = torch.arange(10).repeat_interleave(8)  # 10 classes × 8
    sampler = ClassBalancedSampler(labels, 20, 4, seed=0)  # 4 batches = 20 class draws per epoch
    class_draws, seen = Counter(), Counter()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for b in sampler:
            class_draws.update(set(labels[b].tolist()))
            seen.update(b)
    assert set(class_draws.values()) == {10}  # shuffled class orders: each class 2× per epoch
    assert set(seen) == set(range(80))  # every image used
    assert max(seen.values()) - min(seen.values()) <= 2  # images of a class cycle before repeating


def test_small_classes_are_drawn_with_replacement():
    labels = torch.tensor([0] * 2 + [1] * 6 + [2] * 1 + [3] * 5)
    sampler = ClassBalancedSampler(labels, 8, 4, seed=0, drop_last=False)
    assert len(sampler) == 2
    for epoch in range(10):
        sampler.set_epoch(epoch)
        for b in sampler:
            counts = Counter(labels[b].tolist())
            assert set(counts.values()) == {4}
            if 2 in counts:
                assert b.count(8) == 4  # the one image of class 2, four times
            if 0 in counts:
                assert {0, 1} <= set(b)  # both images of class 0 before any repeat


def test_seeded_and_epoch_dependent():
    labels = uneven_labels(1)
    a, b = ClassBalancedSampler(labels, 16, 4, seed=5), ClassBalancedSampler(labels, 16, 4, seed=5)
    assert list(a) == list(b) == list(a)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(ClassBalancedSampler(labels, 16, 4, seed=6)) != list(ClassBalancedSampler(labels, 16, 4, seed=5))


def test_sampler_errors():
    labels = torch.arange(3).repeat_interleave(5)
    with pytest.raises(ValueError, match="multiple of samples_per_class"):
        ClassBalancedSampler(labels, 10, 4)
    with pytest.raises(ValueError, match="needs 4 classes, but the labels have only 3"):
        ClassBalancedSampler(labels, 8, 2)


def test_works_as_a_dataloader_batch_sampler():
    labels = torch.arange(6).repeat_interleave(5)
    ds = TensorDataset(torch.randn(30, 2), labels)
    loader = DataLoader(ds, batch_sampler=ClassBalancedSampler(labels, 6, 2))
    for _, y in loader:
        assert sorted(Counter(y.tolist()).values()) == [2, 2, 2]


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_ranks_slice_the_same_global_batches(world):
    labels = uneven_labels(2)
    per_rank, m = 8, 4
    ranks = [DistributedClassBalancedSampler(labels, per_rank, m, num_replicas=world, rank=r, seed=3)
             for r in range(world)]
    glob = ClassBalancedSampler(labels, per_rank * world, m, seed=3)
    for epoch in (0, 4):
        for s in ranks + [glob]:
            s.set_epoch(epoch)
        parts = [list(s) for s in ranks]
        assert len({len(p) for p in parts}) == 1 and len(parts[0]) == len(labels) // (per_rank * world)
        for step, global_batch in enumerate(glob):
            slices = [p[step] for p in parts]
            assert sum(slices, []) == global_batch
            assert all(len(sl) == per_rank for sl in slices)
            assert len(set().union(*map(set, slices))) == per_rank * world  # disjoint across ranks
            class_sets = [set(labels[sl].tolist()) for sl in slices]
            assert sum(len(cs) for cs in class_sets) == len(set().union(*class_sets))  # a class on one rank


def test_distributed_defaults_outside_torchrun():
    s = DistributedClassBalancedSampler(torch.arange(4).repeat_interleave(4), 4, 2)
    assert (s.num_replicas, s.rank) == (1, 0) and len(s) == 4
    with pytest.raises(ValueError, match="rank 2 outside"):
        DistributedClassBalancedSampler(torch.arange(4).repeat_interleave(4), 4, 2, num_replicas=2, rank=2)


# ---------------------------------------------------------------- label noise
def test_label_noise_flips_at_the_rate_to_other_classes():
    labels = torch.arange(10).repeat(2000)  # 20 000 labels
    noisy, flipped = inject_label_noise(labels, 0.2, 10, seed=0)
    assert noisy.dtype == torch.int64 and flipped.dtype == torch.bool
    assert torch.equal(noisy != labels, flipped)  # a flip never lands on the same class
    n = len(labels)
    assert abs(flipped.float().mean().item() - 0.2) < 4 * (0.2 * 0.8 / n) ** 0.5
    offsets = Counter(((noisy - labels) % 10)[flipped].tolist())  # uniform over the 9 other classes
    expected = flipped.sum().item() / 9
    assert set(offsets) == set(range(1, 10))
    assert sum((v - expected) ** 2 / expected for v in offsets.values()) < 30  # χ²(8): p ≈ 2e-4


def test_label_noise_is_seeded_and_edge_rates():
    labels = torch.randint(0, 5, (500,), generator=torch.Generator().manual_seed(0))
    a, b = inject_label_noise(labels, 0.3, 5, 7), inject_label_noise(labels, 0.3, 5, 7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], inject_label_noise(labels, 0.3, 5, 8)[0])
    zero, mask = inject_label_noise(labels, 0.0, 5, 7)
    assert torch.equal(zero, labels) and not mask.any()
    one, mask = inject_label_noise(labels, 1.0, 5, 7)
    assert mask.all() and (one != labels).all()
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
        inject_label_noise(labels, 1.5, 5)
    with pytest.raises(ValueError, match="labels must lie in 0..3"):
        inject_label_noise(labels, 0.1, 4)
