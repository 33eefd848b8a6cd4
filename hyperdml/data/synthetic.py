"""The embedded default data set: seeded synthetic images whose traits follow a known class tree.

Tree: ``num_super`` super-classes × ``classes_per_super`` classes. Each image is drawn on the fly
(vectorised torch, no files) as a soft foreground pattern on a background:

- super-class ``s`` → colour palette (foreground hue ``s / num_super``, a dark complementary
  background) and shape family ``s mod 4``: 0 star with n lobes, 1 striped disk, 2 ringed disk,
  3 elongated bar;
- class ``k`` (of its super-class) → the family's parameter: lobes ``2 + k`` (star), stripe or bar
  orientation ``π k / classes_per_super``, ring frequency; plus a small hue shift;
- per image: position, scale, rotation jitter (up to ±1.4 gaps between neighbouring classes, so
  classes overlap), lobe depth, colour and brightness jitter, a background gradient, a
  distractor blob and pixel noise.

Classes with even ``k`` are train classes and odd ``k`` test classes (``train_classes_per_super``
of each super-class train, the rest test), so test classes are unseen but share the super-classes,
and their parameters fall between those of the train classes.
"""

from __future__ import annotations

import math

import torch

from hyperdml.data.base import TensorImageDataset
from hyperdml.data.splits import DataSplits
from hyperdml.data.transforms import Standardize

__all__ = ["make_synthetic", "render_synthetic"]

NUM_FAMILIES = 4


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(N,)`` hue (turns), saturation, value → ``(N, 3)`` RGB in ``[0, 1]``."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + 6 * (h % 1.0).unsqueeze(-1)) % 6
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * (torch.minimum(k, 4 - k).clamp(0, 1))


def render_synthetic(super_ids: torch.Tensor, class_ids: torch.Tensor, classes_per_super: int,
                     num_super: int, image_size: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one image per ``(super_ids[i], class_ids[i])`` (``(N,)`` each) → ``(N, 3, S, S)`` in ``[0, 1]``."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    n, S, C = super_ids.numel(), image_size, classes_per_super
    s, k = super_ids.float(), class_ids.float()
    family = super_ids % NUM_FAMILIES

    def u(lo, hi):  # per-image uniform draws (N,)
        return lo + (hi - lo) * torch.rand(n, generator=g)

    # Geometry: pixel centres in [-1, 1], then per-image translation, scale and rotation.
    ax = (torch.arange(S, dtype=torch.float32) + 0.5) / S * 2 - 1
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    dx, dy, scale = u(-0.3, 0.3), u(-0.3, 0.3), u(0.7, 1.15)
    orient = math.pi * k / C + u(-1.4, 1.4) * math.pi / C              # class orientation + jitter
    spin = torch.where(family == 0, u(0, 2 * math.pi), orient)         # stars: any rotation
    x = (xx - dx[:, None, None]) / scale[:, None, None]
    y = (yy - dy[:, None, None]) / scale[:, None, None]
    cos, sin = spin.cos()[:, None, None], spin.sin()[:, None, None]
    xr, yr = cos * x + sin * y, -sin * x + cos * y
    r, theta = torch.sqrt(xr**2 + yr**2), torch.atan2(yr, xr)
    R = 0.62
    disk = torch.sigmoid((R - r) / 0.03)

    lobes = (2 + k)[:, None, None]
    depth = u(0.15, 0.35)[:, None, None]
    star = torch.sigmoid((R * (1 + depth * torch.cos(lobes * theta)) * 0.85 - r) / 0.03)
    stripes = disk * (0.5 + 0.5 * torch.tanh(4 * torch.sin(2 * math.pi * 2.2 * xr / (2 * R))))
    freq = (1.2 + 3.0 * k / max(C - 1, 1))[:, None, None]
    rings = disk * (0.5 + 0.5 * torch.tanh(4 * torch.cos(2 * math.pi * freq * r / R)))
    bar = torch.sigmoid((1 - (xr / (0.95 * R)) ** 2 - (yr / (0.28 * R)) ** 2) / 0.15)
    pattern = torch.stack([star, stripes, rings, bar], 1)[torch.arange(n), family]  # (N, S, S)

    # Colours: palette of the super-class, a class hue shift, per-image jitter.
    hue = s / num_super + 0.05 * (k / max(C - 1, 1) - 0.5) + u(-0.03, 0.03)
    fg = _hsv_to_rgb(hue, u(0.55, 0.9), u(0.7, 1.0))
    bg = _hsv_to_rgb(hue + 0.5 + u(-0.08, 0.08), u(0.2, 0.5), u(0.15, 0.4))
    gradient = (u(-0.15, 0.15)[:, None, None] * xx + u(-0.15, 0.15)[:, None, None] * yy).unsqueeze(1)
    p = pattern.unsqueeze(1)
    img = bg[:, :, None, None] * (1 - p) + fg[:, :, None, None] * p + gradient
    # A distractor: a small blob of a random colour at a random place (clutter to ignore).
    bx, by, br = u(-0.9, 0.9), u(-0.9, 0.9), u(0.08, 0.2)
    dist = torch.sqrt((xx - bx[:, None, None]) ** 2 + (yy - by[:, None, None]) ** 2)
    blob = torch.sigmoid((br[:, None, None] - dist) / 0.03)
    blob = (blob * (torch.rand(n, generator=g) < 0.7).float()[:, None, None]).unsqueeze(1)
    clutter = _hsv_to_rgb(u(0, 1), u(0.3, 0.9), u(0.3, 1.0))
    img = img * (1 - blob) + clutter[:, :, None, None] * blob
    img = img + 0.14 * torch.randn(img.shape, generator=g)
    return img.clamp_(0, 1)


def make_synthetic(num_super: int = 4, classes_per_super: int = 8, images_per_class: int = 80,
                   image_size: int = 32, seed: int = 0, train_classes_per_super: int | None = None,
                   transform=None) -> DataSplits:
    """The synthetic hierarchy as DataSplits (items ``(3, S, S)`` standardised: ``(x − 0.5) / 0.25``).

    Train classes: the even ``k`` of each super-class (``train_classes_per_super`` of them,
    default half), test classes the others. ``.images`` of each set holds the raw ``[0, 1]``
    images; class names are ``"s{super}/c{k}"``, super-class names ``"s{super}"``.
    """
    if num_super < 1 or classes_per_super < 2 or images_per_class < 1:
        raise ValueError("synthetic needs num_super ≥ 1, classes_per_super ≥ 2, images_per_class ≥ 1")
    n_train = train_classes_per_super if train_classes_per_super is not None else classes_per_super // 2
    if not 1 <= n_train < classes_per_super:
        raise ValueError(f"train_classes_per_super must be in 1..{classes_per_super - 1}, got {n_train}")
    order = list(range(0, classes_per_super, 2)) + list(range(1, classes_per_super, 2))
    train_k, test_k = sorted(order[:n_train]), sorted(order[n_train:])
    g = torch.Generator().manual_seed(int(seed))
    transform = transform if transform is not None else Standardize(0.5, 0.25)
    sets, supers = {}, {}
    for split, ks in (("train", train_k), ("test", test_k)):
        pairs = [(sup, k) for sup in range(num_super) for k in ks]
        sup_ids = torch.tensor([p[0] for p in pairs]).repeat_interleave(images_per_class)
        k_ids = torch.tensor([p[1] for p in pairs]).repeat_interleave(images_per_class)
        images = render_synthetic(sup_ids, k_ids, classes_per_super, num_super, image_size, g)
        labels = torch.arange(len(pairs)).repeat_interleave(images_per_class)
        sets[split] = TensorImageDataset(images, labels, [f"s{a}/c{b}" for a, b in pairs], transform)
        supers[split] = [a for a, _ in pairs]
    return DataSplits.from_sets(
        sets["train"], sets["test"], channels=3, image_size=image_size,
        train_super_labels=supers["train"], test_super_labels=supers["test"],
        super_class_names=[f"s{a}" for a in range(num_super)],
    )
