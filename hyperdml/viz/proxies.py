"""The proxies of any hyperdml loss object, per space: :func:`find_proxies`.

Every loss reports the class proxies it holds (``loss.proxy_sets()``, a dict of
:class:`~hyperdml.losses.ProxySet` by name): a proxy loss one set in its space, CHEST its
Euclidean and hyperbolic sets, the wrappers (Calibrate Proxy, HPL) their base's. A
``DistributedDataParallel``-style container (``.module``) is unwrapped.
"""

from __future__ import annotations

import torch

from hyperdml.errors import HyperdmlError
from hyperdml.losses.proxy_set import ProxySet

__all__ = ["ProxySet", "find_proxies", "class_means"]


def class_means(points: torch.Tensor, per_class: int, space) -> torch.Tensor:
    """Mean of each class's ``K`` proxies: ``(C·K, D)`` class-major → ``(C, D)``, by ``space.class_mean``
    (the tangent-space mean in the ball, the mean of unit vectors for the cosine). ``K = 1`` returns
    the points."""
    if per_class == 1:
        return points
    return space.class_mean(points.reshape(-1, per_class, points.shape[1]))


def find_proxies(loss) -> dict[str, ProxySet]:
    """The class proxies of ``loss`` by name (``{"hyperbolic": ProxySet, "euclidean": ProxySet}``, either
    may be absent): ``loss.proxy_sets()``.

    Raises :class:`~hyperdml.errors.HyperdmlError` when the object holds no proxies.
    """
    obj = loss
    while not hasattr(obj, "proxy_sets") and isinstance(getattr(obj, "module", None), torch.nn.Module):
        obj = obj.module
    sets = obj.proxy_sets() if callable(getattr(obj, "proxy_sets", None)) else {}
    if not sets:
        raise HyperdmlError(f"{type(loss).__name__} holds no proxies (expected a hyperdml loss: a proxy loss, "
                            "CHEST or a wrapper)")
    return sets
