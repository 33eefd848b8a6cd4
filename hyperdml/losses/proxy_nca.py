"""Proxy-NCA loss (Movshovitz-Attias et al., ICCV 2017), as PML's ``ProxyNCALoss``, in any space."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hyperdml.losses.base import ProxyLoss, check_number
from hyperdml.spaces import Space

__all__ = ["ProxyNCA"]


class ProxyNCA(ProxyLoss):
    """Proxy-NCA loss: ``loss(embeddings (B, D), labels (B,))`` → scalar.

    Softmax cross-entropy over classes with logits ``softmax_scale · (2s − 2)`` where ``s (B, C)``
    is the class similarity, averaged over the batch. In
    :class:`~hyperdml.spaces.EuclideanSpace` ``2s − 2 = −‖x̂ − p̂‖²`` (the squared distance of
    the L2-normalised vectors, PML's ``LpDistance(power=2)``), so with ``K = 1`` this equals PML
    2.9's ``ProxyNCALoss(num_classes, embedding_size, softmax_scale)`` with the same proxies
    (value and gradients). One difference: PML drops samples whose probability underflows to 0
    (an infinite loss); here the log-softmax keeps them finite and counted.

    Args:
        num_classes, embedding_size: ``C`` and ``D``.
        softmax_scale: scale of the logits (PML's default 1).
        proxies_per_class: ``K``; ``K > 1`` combines each class's proxies by
            ``Σ_k softmax_k(s_k)·s_k`` (Calibrate Proxy's multi-proxy module).
        space: ``EuclideanSpace()`` (default) or ``PoincareSpace(...)``. In the ball the logits
            are ``−softmax_scale · d / clip_r`` (``s = 1 − d/(2·clip_r)``), the same range
            ``[−4, 0]`` as the Euclidean ``−‖x̂ − p̂‖²``; the default scale serves both.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        softmax_scale: float = 1,
        proxies_per_class: int = 1,
        space: Space | None = None,
    ):
        super().__init__(num_classes, embedding_size, proxies_per_class, space)
        self.softmax_scale = check_number("softmax_scale", softmax_scale, positive=True)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, softmax_scale={self.softmax_scale}"

    def loss_from_similarity(self, sim: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.softmax_scale * (2 * sim - 2)
        return F.cross_entropy(logits, labels)
