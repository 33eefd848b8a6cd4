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
    (value and gradients), and is called as it: ``loss(embeddings, labels, indices_tuple)``; a
    miner's ``indices_tuple`` weights each sample's term by its anchor appearances
    (:meth:`miner_weights`, PML's ``convert_to_weights(..., using_ref=True)``), the mean still
    over the whole batch. One difference: PML drops samples whose probability underflows to 0
    (an infinite loss); here the log-softmax keeps them finite and counted.
    :meth:`get_logits` returns PML's ``get_logits``, the distances ``2 − 2s (B, C)``
    (``‖x̂ − p̂‖²`` in ``EuclideanSpace``).

    Args:
        num_classes, embedding_size: ``C`` and ``D``.
        softmax_scale: scale of the logits (PML's default 1).
        proxies_per_class: ``K``; ``K > 1`` combines each class's proxies by
            ``Σ_k softmax_k(s_k)·s_k`` (Calibrate Proxy's multi-proxy module).
        space: ``EuclideanSpace()`` (default) or ``PoincareSpace(...)``. In the ball the logits
            are ``−softmax_scale · d / clip_r`` (``s = 1 − d/(2·clip_r)``), the same range
            ``[−4, 0]`` as the Euclidean ``−‖x̂ − p̂‖²``; the default scale serves both.
        **pml_options: PML's keywords (``distance=LpDistance(power=2)`` is PML's default;
            see :class:`~hyperdml.losses.ProxyLoss`).
    """

    pml_distance = "squared_l2"
    miner_anchors_only = True

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        softmax_scale: float = 1,
        proxies_per_class: int = 1,
        space: Space | None = None,
        **pml_options,
    ):
        super().__init__(num_classes, embedding_size, proxies_per_class, space, **pml_options)
        self.softmax_scale = check_number("softmax_scale", softmax_scale, positive=True)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, softmax_scale={self.softmax_scale}"

    def loss_from_similarity(self, sim: torch.Tensor, labels: torch.Tensor,
                             weights: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.softmax_scale * (2 * sim - 2)
        if weights is None:
            return F.cross_entropy(logits, labels)
        return (F.cross_entropy(logits, labels, reduction="none") * weights.to(logits.dtype)).mean()

    def get_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """PML's ``ProxyNCALoss.get_logits``: the distances ``2 − 2s (B, C)`` to the classes
        (``‖x̂ − p̂‖²`` of the normalised vectors in ``EuclideanSpace``; ``d / clip_r`` in the ball
        with the default similarity scale)."""
        return 2 - 2 * super().get_logits(embeddings)
