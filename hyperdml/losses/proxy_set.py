"""``ProxySet``: the class proxies a loss holds in one space, as every loss reports them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hyperdml.spaces import Space

__all__ = ["ProxySet"]


@dataclass(frozen=True)
class ProxySet:
    """The class proxies of a loss in one space (``loss.proxy_sets()`` returns them by name).

    Attributes:
        name: the set's name in reports (the space's ``label``: ``"euclidean"``, ``"hyperbolic"``).
        space: the :class:`~hyperdml.spaces.Space` the proxies live in (it decodes their tree,
            averages them, draws them).
        points: ``(C·K, D)`` detached float64 CPU tensor of points of the space, class-major (rows
            ``c·K … c·K+K−1`` are class c).
        num_classes: ``C``.
        per_class: ``K``.
        sphere_radius: when the loss hands these proxies to HypHC on a sphere (CHEST's
            ``hc_sphere``), its radius: ``points`` are then placed on it, ``p/‖p‖ · r``, the points
            HypHC arranges and decodes, and :meth:`class_points` puts the class means back on it.
            ``None`` otherwise.
    """

    name: str
    space: Space
    points: torch.Tensor
    num_classes: int
    per_class: int
    sphere_radius: float | None = None

    @classmethod
    def of(cls, space: Space, points: torch.Tensor, num_classes: int, per_class: int, name: str | None = None,
           sphere_radius: float | None = None):
        """A set from live proxy points (detached and copied to float64 CPU here; placed on the sphere
        of ``sphere_radius`` when given)."""
        with torch.no_grad():
            pts = points.detach().to("cpu", torch.float64)
            if sphere_radius is not None:
                pts = torch.nn.functional.normalize(pts, dim=1, eps=1e-15) * float(sphere_radius)
        return cls(name or space.label, space, pts, int(num_classes), int(per_class),
                   None if sphere_radius is None else float(sphere_radius))

    @property
    def labels(self) -> np.ndarray:
        """``(C·K,)`` int64 class of every proxy row."""
        return np.repeat(np.arange(self.num_classes), self.per_class)

    def class_points(self) -> torch.Tensor:
        """One point per class ``(C, D)``: the space's mean of each class's ``K`` proxies (back on the
        sphere when :attr:`sphere_radius` is set)."""
        if self.per_class == 1:
            return self.points
        means = self.space.class_mean(self.points.view(self.num_classes, self.per_class, -1))
        if self.sphere_radius is None:
            return means
        return torch.nn.functional.normalize(means, dim=1, eps=1e-15) * self.sphere_radius
