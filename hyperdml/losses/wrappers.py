"""``ProxyLossWrapper``: the common part of the wrappers around a proxy loss (CP, HPL)."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from hyperdml.losses.base import ProxyLoss

__all__ = ["ProxyLossWrapper"]


def _check_wrappable(base, wrapper: str) -> None:
    """Raise ``TypeError`` unless ``base`` is a :class:`ProxyLoss` with a ``proxies`` tensor."""
    if not isinstance(base, ProxyLoss) or not isinstance(getattr(base, "proxies", None), torch.Tensor):
        hint = ""
        if type(base).__name__ == "CHEST":
            hint = " (CHEST holds two SoftTriples: wrap loss.euclidean / loss.hyperbolic, or build your own)"
        raise TypeError(
            f"{wrapper} wraps a proxy loss (a hyperdml.losses.ProxyLoss with .proxies, e.g. ProxyAnchor, "
            f"ProxyNCA, SoftTriple), got {type(base).__name__}{hint}"
        )


class ProxyLossWrapper(nn.Module):
    """Common part of the wrappers (CP, HPL): holds :attr:`base` and forwards its attributes.

    ``num_classes``, ``embedding_size``, ``proxies_per_class``, ``space``, ``check_values``,
    :meth:`embed` and :meth:`proxy_points` are the base loss's, so code written for a
    :class:`~hyperdml.losses.base.ProxyLoss` (evaluation, visualisation) works on a wrapper too.
    """

    def __init__(self, base: ProxyLoss):
        super().__init__()
        _check_wrappable(base, type(self).__name__)
        self.base = base

    # -- the base's attributes -----------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """``C`` of the base loss."""
        return self.base.num_classes

    @property
    def embedding_size(self) -> int:
        """``D`` of the base loss."""
        return self.base.embedding_size

    @property
    def proxies_per_class(self) -> int:
        """``K`` of the base loss."""
        return self.base.proxies_per_class

    @property
    def space(self):
        """The base loss's space."""
        return self.base.space

    @property
    def check_values(self) -> bool:
        """The base loss's ``check_values`` (data-dependent input checks); settable."""
        return self.base.check_values

    @check_values.setter
    def check_values(self, value: bool) -> None:
        self.base.check_values = bool(value)

    def embed(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Head outputs ``(B, D)`` → points of the space ``(B, D)`` (the base's map)."""
        return self.base.embed(embeddings)

    def proxy_points(self) -> torch.Tensor:
        """The base's proxies as points of the space ``(C·K, D)``."""
        return self.base.proxy_points()

    # -- the loss protocol ---------------------------------------------------------------------

    @property
    def input_spaces(self) -> tuple:
        """The base loss's ``input_spaces``."""
        return self.base.input_spaces

    def proxy_sets(self) -> dict:
        """The base loss's class proxies (a wrapper's own proxies, such as HPL's groups, are not class proxies)."""
        return self.base.proxy_sets()

    def set_gathered_inputs(self, gathered: bool) -> None:
        """Tell the loss whether its inputs are the all-gathered global batch (passed to the base)."""
        self.base.set_gathered_inputs(gathered)

    @staticmethod
    def _check_epoch(epoch, name: str = "epoch") -> int:
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"{name} must be an int >= 0, got {epoch!r}")
        return int(epoch)
