"""SoftTriple loss (Qian et al., ICCV 2019), as PML's ``SoftTripleLoss``, in any space."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hyperdml.losses.base import ProxyLoss, check_number
from hyperdml.spaces import Space

__all__ = ["SoftTriple"]


class SoftTriple(ProxyLoss):
    """SoftTriple loss: ``loss(embeddings (B, D), labels (B,))`` → scalar.

    Each class has ``K = centers_per_class`` centers (the proxies, ``(C·K, D)`` class-major). The
    class similarity is ``s_c = Σ_k softmax_k(s_ck / γ)·s_ck`` and the loss is the batch mean of
    ``cross_entropy(λ·(s − δ·onehot(y)), y)``. With ``tau > 0`` and ``K > 1`` the SoftTriple
    paper's center regulariser is added: ``τ · Σ_c Σ_{k<k'} √(2 + 10⁻⁵ − 2·s(w_ck, w_ck')) /
    (C·K·(K − 1))`` (its reference code), ``s`` the space's similarity between centers (in
    :class:`~hyperdml.spaces.EuclideanSpace` the chord distance of the normalised centers; like
    the reference code it forms the ``(C·K, C·K)`` similarity of all centers).

    In ``EuclideanSpace`` with ``tau = 0`` this equals PML 2.9's ``SoftTripleLoss(num_classes,
    embedding_size, centers_per_class, la, gamma, margin)`` whose ``fc`` is ``proxies.t()``
    (:attr:`fc`), and is called as it: ``loss(embeddings, labels, indices_tuple)``; a miner's
    ``indices_tuple`` weights each sample's term by its appearances (:meth:`miner_weights`), the
    mean still over the whole batch. PML's ``SparseCentersRegularizer`` as
    ``weight_regularizer`` with ``weight_reg_weight = τ`` is the same center regulariser as
    ``tau`` up to the constant under the square root (PML: the dtype's smallest normal number
    instead of 10⁻⁵).

    Args:
        num_classes, embedding_size: ``C`` and ``D``.
        centers_per_class: ``K`` (PML's default 10).
        la: ``λ``, scale of the logits (default 20).
        gamma: ``γ``, temperature of the softmax over a class's centers (default 0.1).
        margin: ``δ`` (default 0.01).
        tau: weight of the center regulariser (default 0: off, as PML).
        space: ``EuclideanSpace()`` (default) or ``PoincareSpace(...)``. The same defaults serve
            both: ``PoincareSpace`` rescales ``−d`` into the cosine's range
            (``s = 1 − d/(2·clip_r)``), so λ = 20 is ≈ 4.3 per unit of hyperbolic distance and
            1/γ ≈ 2.2 per unit.
        **pml_options: PML's keywords (see :class:`~hyperdml.losses.ProxyLoss`).
    """

    pml_transposed_weights = True

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        centers_per_class: int = 10,
        la: float = 20,
        gamma: float = 0.1,
        margin: float = 0.01,
        tau: float = 0.0,
        space: Space | None = None,
        **pml_options,
    ):
        super().__init__(num_classes, embedding_size, centers_per_class, space, **pml_options)
        self.la = check_number("la", la, positive=True)
        self.gamma = check_number("gamma", gamma, positive=True)
        self.margin = check_number("margin", margin)
        self.tau = check_number("tau", tau, nonnegative=True)
        self.proxy_temperature = self.gamma

    @property
    def centers_per_class(self) -> int:
        """``K``, the same as :attr:`proxies_per_class`."""
        return self.proxies_per_class

    @property
    def fc(self) -> torch.Tensor:
        """PML's ``fc``: the centers as a ``(D, C·K)`` view of :attr:`proxies` (read-only)."""
        return self.proxies.t()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, la={self.la}, gamma={self.gamma}, margin={self.margin}, tau={self.tau}"

    def loss_from_similarity(self, sim: torch.Tensor, labels: torch.Tensor,
                             weights: torch.Tensor | None = None) -> torch.Tensor:
        margin = self.margin * F.one_hot(labels, sim.shape[1]).to(sim.dtype)
        if weights is None:
            return F.cross_entropy(self.la * (sim - margin), labels)
        losses = F.cross_entropy(self.la * (sim - margin), labels, reduction="none")
        return (losses * weights.to(losses.dtype)).mean()

    def regularizer(self) -> torch.Tensor | None:
        """The center regulariser (``tau > 0`` and ``K > 1``) plus PML's ``weight_regularizer``
        term when one was given; ``None`` when neither applies."""
        pml = super().regularizer()
        center = self.center_regularizer()
        if center is None or pml is None:
            return pml if center is None else center
        return center + pml

    def center_regularizer(self) -> torch.Tensor | None:
        """The SoftTriple paper's center regulariser (``None`` when ``tau == 0`` or ``K == 1``)."""
        k = self.proxies_per_class
        if self.tau == 0 or k == 1:
            return None
        centers = self.proxy_points()
        sim = self.space.similarity(centers, centers)
        cls = torch.arange(sim.shape[0], device=sim.device) // k
        pairs = torch.triu(cls[:, None] == cls[None, :], diagonal=1)  # k < k' within a class
        spread = torch.sqrt((2.0 - 2.0 * sim[pairs]).clamp_min(0) + 1e-5).sum()
        return self.tau * spread / (self.num_classes * k * (k - 1))
