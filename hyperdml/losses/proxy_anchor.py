"""Proxy-Anchor loss (Kim et al., CVPR 2020), as PML's ``ProxyAnchorLoss``, in any space."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hyperdml.losses.base import ProxyLoss, check_number
from hyperdml.spaces import Space

__all__ = ["ProxyAnchor"]


def _log1p_sum_exp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log(1 + Σ_i exp(x_ic))`` over the rows where ``mask`` is True, per column: ``(B, N) → (N,)``.

    Written as PML's ``logsumexp(keep_mask, add_one=True, dim=0)``: 0 for a column with no row.
    """
    x = x.masked_fill(~mask, float("-inf"))
    x = torch.cat([x, x.new_zeros(1, x.shape[1])], dim=0)
    return torch.logsumexp(x, dim=0)


class ProxyAnchor(ProxyLoss):
    """Proxy-Anchor loss: ``loss(embeddings (B, D), labels (B,))`` → scalar.

    With class similarity ``s (B, C)``, ``P_c`` the samples of class c and ``C⁺`` the classes with a
    sample in the batch::

        L = 1/|C⁺| Σ_{c∈C⁺} log(1 + Σ_{i∈P_c} e^{−α(s_ic − m)})
          + 1/C    Σ_c      log(1 + Σ_{i∉P_c} e^{α(s_ic + m)})

    In :class:`~hyperdml.spaces.EuclideanSpace` with ``K = 1`` this equals PML 2.9's
    ``ProxyAnchorLoss(num_classes, embedding_size, margin, alpha)`` with the same proxies (value
    and gradients).

    Args:
        num_classes, embedding_size: ``C`` and ``D``.
        margin: ``m`` (PML's default 0.1).
        alpha: ``α`` (PML's default 32).
        proxies_per_class: ``K``; ``K > 1`` combines each class's proxies by
            ``Σ_k softmax_k(s_k)·s_k`` (Calibrate Proxy's multi-proxy module).
        space: ``EuclideanSpace()`` (default) or ``PoincareSpace(...)``. The same defaults serve
            both: ``PoincareSpace`` rescales ``−d`` into the cosine's range ``[−1, 1]``
            (``s = 1 − d/(2·clip_r)``), so α = 32 is ≈ 7 per unit of hyperbolic distance and the
            margin asks positives within ``2·clip_r·(1 − m)`` ≈ 4.1 and negatives beyond ≈ 5.1.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.1,
        alpha: float = 32,
        proxies_per_class: int = 1,
        space: Space | None = None,
    ):
        super().__init__(num_classes, embedding_size, proxies_per_class, space)
        self.margin, self.alpha = check_number("margin", margin), check_number("alpha", alpha, positive=True)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, alpha={self.alpha}"

    def loss_from_similarity(self, sim: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pos_mask = F.one_hot(labels, sim.shape[1]).bool()
        pos_term = _log1p_sum_exp(self.alpha * (self.margin - sim), pos_mask)
        neg_term = _log1p_sum_exp(self.alpha * (sim + self.margin), ~pos_mask)
        num_pos_classes = pos_mask.any(dim=0).sum().to(sim.dtype)  # ≥ 1: the batch is not empty
        return pos_term.sum() / num_pos_classes + neg_term.sum() / sim.shape[1]
