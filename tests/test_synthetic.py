"""The in-memory data sets: the synthetic hierarchy (embedded default) and scikit-learn's digits."""

from __future__ import annotations

import pytest
import torch

from hyperdml.data import build_datasets
from hyperdml.data.synthetic import make_synthetic


@pytest.fixture(scope="module")
def default_splits():
    return build_datasets("synthetic")


def test_default_shapes_and_ranges(default_splits):
    s = default_splits
    assert (s.channels, s.image_size, s.num_train_classes, s.num_test_classes) == (3, 32, 16, 16)
    assert s.train.images.shape == (16 * 80, 3, 32, 32) and s.test.images.shape == (16 * 80, 3, 32, 32)
    for ds in (s.train, s.test):
        assert ds.images.dtype == torch.float32 and ds.images.min() >= 0 and ds.images.max() <= 1
        assert ds.labels.dtype == torch.int64 and torch.equal(ds.labels.bincount(), torch.full((16,), 80))
        x, y = ds[5]
        assert x.shape == (3, 32, 32) and isinstance(y, int)
        assert torch.allclose(x, (ds.images[5] - 0.5) / 0.25)  # standardised items
    assert 0.1 < s.train.images.std() < 0.4  # neither blank nor saturated


def test_tree_is_consistent(default_splits):
    s = default_splits
    assert s.super_class_names == ["s0", "s1", "s2", "s3"]
    assert set(s.train_class_names).isdisjoint(s.test_class_names)
    for names, supers in ((s.train_class_names, s.train_super_labels), (s.test_class_names, s.test_super_labels)):
        assert len(names) == len(supers)
        assert [int(n.split("/")[0][1:]) for n in names] == supers  # "s{super}/c{k}"
        assert sorted(set(supers)) == [0, 1, 2, 3] and all(supers.count(a) == 4 for a in range(4))
    assert all(int(n.split("/c")[1]) % 2 == 0 for n in s.train_class_names)  # even k train, odd k test
    assert all(int(n.split("/c")[1]) % 2 == 1 for n in s.test_class_names)


def test_seeded():
    a = make_synthetic(images_per_class=6, seed=3)
    b = make_synthetic(images_per_class=6, seed=3)
    c = make_synthetic(images_per_class=6, seed=4)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.train.images, c.train.images)
    assert torch.equal(a.train.labels, c.train.labels)


def test_parameters():
    s = make_synthetic(num_super=6, classes_per_super=5, images_per_class=3, image_size=20, seed=1,
                       train_classes_per_super=3)
    assert (s.num_train_classes, s.num_test_classes) == (18, 12)
    assert s.train.images.shape == (54, 3, 20, 20) and s.test.images.shape == (36, 3, 20, 20)
    assert s.train_class_names[:3] == ["s0/c0", "s0/c2", "s0/c4"] and s.test_class_names[:2] == ["s0/c1", "s0/c3"]
    assert s.train_super_labels == [a for a in range(6) for _ in range(3)]
    with pytest.raises(ValueError, match="train_classes_per_super"):
        make_synthetic(classes_per_super=4, train_classes_per_super=4)
    with pytest.raises(ValueError, match="classes_per_super"):
        make_synthetic(classes_per_super=1)


def test_image_size_and_noise_through_build_datasets():
    s = build_datasets("synthetic", image_size=16, seed=2, label_noise=0.25)
    assert s.image_size == 16 and s.train[0][0].shape == (3, 16, 16)
    flipped = s.train.noise_mask
    assert 0.15 < flipped.float().mean() < 0.35
    assert torch.equal(s.train.labels != s.train.clean_labels, flipped)
    assert not hasattr(s.test, "clean_labels")


def nearest_centroid_accuracy(train_x, train_y, test_x, test_y):
    classes = train_y.unique()
    centroids = torch.stack([train_x[train_y == c].mean(0) for c in classes])
    return (classes[torch.cdist(test_x, centroids).argmin(1)] == test_y).float().mean().item()


def test_super_classes_are_visible_in_raw_pixels(default_splits):
    """Nearest super-class centroid (from the train classes) on raw pixels of the unseen test
    classes: far above the chance of 1/4."""
    s = default_splits
    tr_sup = torch.tensor(s.train_super_labels)[s.train.labels]
    te_sup = torch.tensor(s.test_super_labels)[s.test.labels]
    acc = nearest_centroid_accuracy(s.train.images.flatten(1), tr_sup, s.test.images.flatten(1), te_sup)
    assert acc > 0.8


def test_classes_differ_within_a_super_class_but_not_trivially(default_splits):
    """Within each super-class, raw-pixel Recall@1 over its 4 test classes is above chance
    (79 of 319 others share the class: 0.25) and well below perfect (measured 0.47 on average)."""
    from hyperdml.metrics import evaluate_retrieval

    s = default_splits
    x, y = s.test.images.flatten(1), s.test.labels
    sup = torch.tensor(s.test_super_labels)[y]
    recalls = [evaluate_retrieval(x[sup == a], y[sup == a], ks=(1,), metric="euclidean", nmi=False)["recall@1"]
               for a in range(4)]
    assert min(recalls) > 0.29 and sum(recalls) / 4 < 0.8, recalls


def test_digits():
    s = build_datasets("digits")
    assert (len(s.train), len(s.test)) == (901, 896)  # digits 0-4 / 5-9 of sklearn's 1797
    assert (s.channels, s.image_size, s.num_train_classes, s.num_test_classes) == (1, 8, 5, 5)
    assert s.train_class_names == ["0", "1", "2", "3", "4"] and s.test_class_names == ["5", "6", "7", "8", "9"]
    assert set(s.train.labels.tolist()) == set(s.test.labels.tolist()) == set(range(5))
    x, y = s.test[0]
    assert x.shape == (1, 8, 8) and x.min() >= -1 and x.max() <= 1 and y == 0  # sklearn's digit 5 → 0
    from sklearn.datasets import load_digits

    d = load_digits()
    first_five = torch.as_tensor(d.images[d.target == 5][0], dtype=torch.float32) / 8 - 1
    assert torch.allclose(x[0], first_five)
    big = build_datasets("digits", image_size=16)
    assert big.image_size == 16 and big.train[0][0].shape == (1, 16, 16)
