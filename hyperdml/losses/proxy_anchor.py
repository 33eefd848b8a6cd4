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
    and gradients), and is called as it: ``loss(embeddings, labels, indices_tuple)``. A miner's
    ``indices_tuple`` gives each sample a weight ``w_i`` (:meth:`miner_weights`) that enters
    both sums as PML's does, ``e^{...}`` → ``e^{... + w_i − 1}``. ``reducer=MeanReducer()``
    divides the positive term by ``C`` instead of ``|C⁺|`` (PML's ``MeanReducer``).

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
        **pml_options: PML's keywords (``reducer``, ``distance``, ``weight_init_func``,
            ``weight_regularizer``, ``embedding_regularizer``, ...; see
            :class:`~hyperdml.losses.ProxyLoss`).
    """

    pml_reducers = ("DivisorReducer", "MeanReducer")

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.1,
        alpha: float = 32,
        proxies_per_class: int = 1,
        space: Space | None = None,
        **pml_options,
    ):
        super().__init__(num_classes, embedding_size, proxies_per_class, space, **pml_options)
        self.margin, self.alpha = check_number("margin", margin), check_number("alpha", alpha, positive=True)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, alpha={self.alpha}"

    def loss_from_similarity(self, sim: torch.Tensor, labels: torch.Tensor,
                             weights: torch.Tensor | None = None) -> torch.Tensor:
        pos_mask = F.one_hot(labels, sim.shape[1]).bool()
        pos_exp, neg_exp = self.alpha * (self.margin - sim), self.alpha * (sim + self.margin)
        if weights is not None:  # PML: the miner weights, minus 1, added to the exponents
            log_w = (weights - 1).to(sim.dtype)[:, None]
            pos_exp, neg_exp = pos_exp + log_w, neg_exp + log_w
        pos_term = _log1p_sum_exp(pos_exp, pos_mask)
        neg_term = _log1p_sum_exp(neg_exp, ~pos_mask)
        if self.reducer_name == "MeanReducer":
            pos_divisor = sim.shape[1]
        else:
            pos_divisor = pos_mask.any(dim=0).sum().to(sim.dtype)  # ≥ 1: the batch is not empty
        return pos_term.sum() / pos_divisor + neg_term.sum() / sim.shape[1]
