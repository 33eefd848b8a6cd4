"""Find the proxies of any hyperdml loss object, per space.

:func:`find_proxies` walks a loss module and returns its proxies as :class:`ProxySet` objects
keyed by space (``"hyperbolic"`` and/or ``"euclidean"``):

- a :class:`~hyperdml.losses.ProxyLoss` (ProxyAnchor, ProxyNCA, SoftTriple) is one set, in the
  space of its ``space`` attribute (``PoincareSpace`` → ``"hyperbolic"``, ``EuclideanSpace`` →
  ``"euclidean"``);
- :class:`~hyperdml.losses.CHEST` has both: ``loss.euclidean`` and ``loss.hyperbolic``;
- wrappers (CalibrateProxy, HierarchicalProxy, anything with a ``.base``) and containers with a
  ``.module`` (DistributedDataParallel) are unwrapped.

When the loss hands its hyperbolic proxies to HypHC on a sphere (CHEST with ``hc_sphere=True``,
:class:`~hyperdml.losses.HypHCLoss` ``sphere=True``), the hyperbolic set holds them placed on that
sphere, ``p/‖p‖ · r``, the points HypHC arranges and decodes (``ProxySet.sphere_radius = r``).

The points are detached float64 CPU tensors: ball points for the hyperbolic space
(``ProxyLoss.proxy_points()``, so tangent-parametrised proxies are mapped too), the raw proxy
vectors for the Euclidean space (whose similarity is the cosine, so only their directions count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hyperdml.errors import HyperdmlError

__all__ = ["ProxySet", "find_proxies", "class_means", "on_sphere"]


@dataclass
class ProxySet:
    """The proxies of one space.

    Attributes:
        space: ``"hyperbolic"`` or ``"euclidean"``.
        points: ``(C·K, D)`` float64 tensor, class-major (rows ``c·K … c·K+K−1`` are class c);
            ball points of curvature −c for the hyperbolic space.
        num_classes: ``C``.
        per_class: ``K``.
        c: curvature magnitude of the ball (``None`` for the Euclidean space).
        clip_r: the space's feature-clipping radius (``None`` for Euclidean or no clipping).
        space_obj: the loss's space object (maps head outputs into the space: ``to_space``).
        sphere_radius: the radius of HypHC's sphere the points were placed on, or ``None``.
    """

    space: str
    points: torch.Tensor
    num_classes: int
    per_class: int
    c: float | None = None
    clip_r: float | None = None
    space_obj: object = None
    sphere_radius: float | None = None

    @property
    def labels(self) -> np.ndarray:
        """``(C·K,)`` int64 class of every proxy row."""
        return np.repeat(np.arange(self.num_classes), self.per_class)

    def class_points(self) -> torch.Tensor:
        """One point per class, ``(C, D)``: see :func:`class_means` (put back on the sphere, if any)."""
        means = class_means(self.points, self.per_class, self.space, self.c)
        return means if self.sphere_radius is None else on_sphere(means, self.sphere_radius)


def on_sphere(points: torch.Tensor, radius: float) -> torch.Tensor:
    """Rows of ``points (N, D)`` moved along their rays onto the sphere of ``radius``: ``p/‖p‖ · radius``."""
    return torch.nn.functional.normalize(points, dim=1, eps=1e-15) * radius


def _hyphc_sphere_radius(obj) -> float | None:
    """Radius of the HypHC sphere of a loss that places its hyperbolic proxies on one, else None."""
    hyphc = getattr(obj, "hyphc", None)
    if not getattr(hyphc, "sphere", False) or not callable(getattr(hyphc, "sphere_radius", None)):
        return None
    with torch.no_grad():
        return float(hyphc.sphere_radius())


def class_means(points: torch.Tensor, per_class: int, space: str, c: float | None = None) -> torch.Tensor:
    """Mean of each class's ``K`` proxies: ``(C·K, D)`` class-major → ``(C, D)``.

    Hyperbolic: the mean of the tangent vectors at the origin, mapped back,
    ``expmap0(mean_k logmap0(p_ck))`` (a tangent-space mean; the exact Fréchet mean has no closed
    form, and the tangent mean keeps the points' common direction and depth). Euclidean: the mean
    of the L2-normalised proxies (the cosine only sees directions). ``K = 1`` returns the points.
    """
    if per_class == 1:
        return points
    p = points.reshape(-1, per_class, points.shape[1])
    if space == "hyperbolic":
        from hyperdml import geometry

        return geometry.expmap0(geometry.logmap0(p, c).mean(dim=1), c)
    return torch.nn.functional.normalize(p, dim=2).mean(dim=1)


def _proxy_set(loss) -> ProxySet | None:
    from hyperdml.losses import ProxyLoss

    if not isinstance(loss, ProxyLoss):
        return None
    with torch.no_grad():
        pts = loss.proxy_points().detach().to("cpu", torch.float64)
    kind = getattr(loss.space, "kind", "")
    if kind == "poincare":
        return ProxySet("hyperbolic", pts, loss.num_classes, loss.proxies_per_class,
                        float(loss.space.c), loss.space.clip_r, loss.space)
    if kind == "euclidean":
        return ProxySet("euclidean", pts, loss.num_classes, loss.proxies_per_class, None, None, loss.space)
    return None


def find_proxies(loss) -> dict[str, ProxySet]:
    """The proxies of ``loss`` by space: ``{"hyperbolic": ProxySet, "euclidean": ProxySet}`` (either may be absent).

    Unwraps ``.base`` (CalibrateProxy, HierarchicalProxy) and ``.module`` (DDP); for CHEST reads
    ``.hyperbolic`` and ``.euclidean``. Raises :class:`~hyperdml.errors.HyperdmlError` when the
    object holds no proxies at all, or two proxy sets in the same space.
    """
    found: dict[str, ProxySet] = {}
    seen: set[int] = set()
    stack = [loss]
    sphere = None
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        sphere = sphere if sphere is not None else _hyphc_sphere_radius(obj)
        ps = _proxy_set(obj)
        if ps is not None:
            if ps.space in found:
                raise HyperdmlError(f"the loss holds more than one set of {ps.space} proxies; pass the one to plot")
            found[ps.space] = ps
            continue
        for attr in ("base", "module", "hyperbolic", "euclidean"):
            child = getattr(obj, attr, None)
            if isinstance(child, torch.nn.Module):
                stack.append(child)
    if not found:
        raise HyperdmlError(f"{type(loss).__name__} holds no proxies (expected a proxy loss, CHEST or a wrapper with .base)")
    if sphere is not None and "hyperbolic" in found:
        hyp = found["hyperbolic"]
        hyp.points, hyp.sphere_radius = on_sphere(hyp.points, sphere), sphere
    return found
