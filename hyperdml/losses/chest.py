"""CHEST: Combined Hyperbolic and Euclidean Soft Triple loss.

Saeki, Kawahara, Aman, "Combined Hyperbolic and Euclidean Soft Triple Loss Beyond the Single
Space Deep Metric Learning". The paper's equations are not public to us; the choices made here
are listed in :class:`CHEST`'s docstring.
"""

from __future__ import annotations

import torch
from torch import nn

from hyperdml.losses.base import check_number
from hyperdml.losses.hyphc import HypHCLoss, similarity_from_features
from hyperdml.losses.soft_triple import SoftTriple
from hyperdml.spaces import EuclideanSpace, PoincareSpace
from hyperdml.spaces.poincare import DEFAULT_CLIP_R, DEFAULT_CURVATURE

__all__ = ["CHEST"]


class CHEST(nn.Module):
    """CHEST loss for a dual-head model: ``loss(z_e (B, D_E), z_h (B, D_H), labels (B,))`` → scalar.

    ``L = w_E · SoftTriple_E(z_E) + w_H · SoftTriple_H(z_H) + λ_hc · HypHC(hyperbolic proxies)``

    - ``SoftTriple_E`` (:attr:`euclidean`): :class:`SoftTriple` in ``EuclideanSpace`` on the
      Euclidean head output ``z_E`` with its own ``C·K`` centers of dimension ``D_E``.
    - ``SoftTriple_H`` (:attr:`hyperbolic`): :class:`SoftTriple` in ``PoincareSpace(c, clip_r)`` on
      the hyperbolic head output ``z_H`` (a tangent vector: clipped to ``clip_r``, then
      ``expmap0``) with ``C·K`` centers of dimension ``D_H`` in the ball. Both SoftTriples use the
      same hyperparameters (``PoincareSpace`` rescales −d into the cosine's range, so SoftTriple's
      defaults serve both).
    - ``HypHC`` (:attr:`hyphc`): :class:`~hyperdml.losses.hyphc.HypHCLoss` on the ``C·K``
      hyperbolic centers, with pair similarities ``0.5·(1 + cos)`` of the corresponding Euclidean
      centers (same class-major order), detached: the Euclidean space tells the hyperbolic
      proxies which classes to put under a common ancestor (the "cross-space" regulariser).
      With ``lambda_hc == 0`` the term is not computed at all.

    After each call, :attr:`parts` holds the three weighted terms, detached, for logging:
    ``{"euclidean": w_E·L_E, "hyperbolic": w_H·L_H, "hyphc": λ_hc·L_hc}``; they sum to the total.
    :meth:`forward_parts` returns them with their graphs.

    Args:
        num_classes: ``C``.
        euclidean_size: ``D_E``, dimension of the Euclidean head output.
        hyperbolic_size: ``D_H``, dimension of the hyperbolic head output (may differ from ``D_E``).
        centers_per_class, la, gamma, margin, tau: SoftTriple's (defaults 10, 20, 0.1, 0.01, 0).
        c: curvature of the ball (default 0.1).
        clip_r: feature-clipping radius before ``expmap0`` (default 2.3).
        lambda_hc: weight ``λ_hc`` of the HypHC term (default 1).
        w_e, w_h: weights of the two SoftTriple terms (default 1, 1).
        hc_tau: HypHC's softmax temperature (default 0.05, HypHC's).
        num_triplets: HypHC triplets per call when the ``C(C·K, 3)`` triplets are more than
            ``max_all_triplets`` (HypHCLoss's defaults: all triplets up to 50 000, else 50 000
            drawn per call).
        proxy_param: ``"manifold"`` (default, stepped by RiemannianAdam) or ``"tangent"``
            (the paper's expmap0 of a Euclidean parameter), see ``PoincareSpace``.
        seed: seed of HypHC's triplet sampler.
        inputs: what ``z_H`` is, see ``PoincareSpace``: ``"tangent"`` (default, a plain linear head's
            output, clipped and mapped by ``expmap0``) or ``"ball"`` (points already in the ball,
            e.g. from :class:`hyperdml.models.HyperbolicHead`).
    """

    def __init__(
        self,
        num_classes: int,
        euclidean_size: int,
        hyperbolic_size: int,
        centers_per_class: int = 10,
        la: float = 20,
        gamma: float = 0.1,
        margin: float = 0.01,
        tau: float = 0.0,
        c: float = DEFAULT_CURVATURE,
        clip_r: float | None = DEFAULT_CLIP_R,
        lambda_hc: float = 1.0,
        w_e: float = 1.0,
        w_h: float = 1.0,
        hc_tau: float = 0.05,
        num_triplets: int | None = None,
        proxy_param: str = "manifold",
        seed: int = 0,
        inputs: str = "tangent",
    ):
        super().__init__()
        for name, value in (("lambda_hc", lambda_hc), ("w_e", w_e), ("w_h", w_h)):
            check_number(name, value, nonnegative=True)
        st = dict(centers_per_class=centers_per_class, la=la, gamma=gamma, margin=margin, tau=tau)
        self.euclidean = SoftTriple(num_classes, euclidean_size, **st, space=EuclideanSpace())
        space = PoincareSpace(c=c, clip_r=clip_r, proxy_param=proxy_param, inputs=inputs)
        self.hyperbolic = SoftTriple(num_classes, hyperbolic_size, **st, space=space)
        if lambda_hc > 0 and num_classes * centers_per_class < 3:
            raise ValueError("the HypHC term needs at least 3 proxies (num_classes * centers_per_class >= 3)")
        self.hyphc = HypHCLoss(c=space.c, tau=hc_tau, num_triplets=num_triplets, seed=seed)
        self.num_classes = num_classes
        self.lambda_hc, self.w_e, self.w_h = float(lambda_hc), float(w_e), float(w_h)
        self.parts: dict[str, torch.Tensor] = {}
        #: data-dependent input checks (NaN/Inf, label range) in ``forward``; see ``ProxyLoss``.
        self.check_values = True

    def extra_repr(self) -> str:
        return f"lambda_hc={self.lambda_hc}, w_e={self.w_e}, w_h={self.w_h}"

    def hyphc_term(self) -> torch.Tensor:
        """HypHC loss of the hyperbolic centers with similarities from the Euclidean ones (unweighted)."""
        e = self.euclidean.proxy_points()
        with torch.no_grad(), torch.autocast(e.device.type, enabled=False):
            sims = similarity_from_features(e.float() if e.dtype in (torch.float16, torch.bfloat16) else e)
        return self.hyphc(self.hyperbolic.proxy_points(), sims)

    def forward_parts(self, z_e: torch.Tensor, z_h: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted terms with their graphs: ``{"euclidean", "hyperbolic", "hyphc", "total"}``."""
        if not isinstance(z_e, torch.Tensor) or not isinstance(z_h, torch.Tensor):
            raise TypeError("z_e and z_h must be torch.Tensors")
        if z_e.dim() >= 1 and z_h.dim() >= 1 and z_e.shape[0] != z_h.shape[0]:
            raise ValueError(f"z_e has {z_e.shape[0]} rows but z_h has {z_h.shape[0]}")
        for part in (self.euclidean, self.hyperbolic):
            part.check_values = self.check_values
        labels_e = self.euclidean.check_inputs(z_e, labels, name="z_e")
        labels_h = self.hyperbolic.check_inputs(z_h, labels, name="z_h")
        parts = {
            "euclidean": self.w_e * self.euclidean.compute(z_e, labels_e),
            "hyperbolic": self.w_h * self.hyperbolic.compute(z_h, labels_h),
        }
        if self.lambda_hc != 0:
            parts["hyphc"] = self.lambda_hc * self.hyphc_term()
            total = parts["euclidean"] + parts["hyperbolic"] + parts["hyphc"]
        else:
            total = parts["euclidean"] + parts["hyperbolic"]
            parts["hyphc"] = torch.zeros((), dtype=total.dtype, device=total.device)
        parts["total"] = total
        return parts

    def forward(self, z_e: torch.Tensor, z_h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``z_e (B, D_E)``, ``z_h (B, D_H)`` head outputs, ``labels (B,)`` → scalar total loss."""
        parts = self.forward_parts(z_e, z_h, labels)
        self.parts = {k: v.detach() for k, v in parts.items() if k != "total"}
        return parts["total"]

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the epoch (HypHC's temperature schedule follows it)."""
        self.hyphc.set_epoch(epoch)

    def set_gathered_inputs(self, gathered: bool) -> None:
        """Tell the loss whether its inputs are the all-gathered global batch (passed to both SoftTriples)."""
        self.euclidean.set_gathered_inputs(gathered)
        self.hyperbolic.set_gathered_inputs(gathered)

    @property
    def input_spaces(self) -> tuple:
        """The spaces of ``z_e`` and ``z_h``: ``(EuclideanSpace, PoincareSpace)``."""
        return (self.euclidean.space, self.hyperbolic.space)

    def proxy_sets(self) -> dict:
        """Both SoftTriples' centers: ``{"euclidean": ProxySet, "hyperbolic": ProxySet}``."""
        return {**self.euclidean.proxy_sets(), **self.hyperbolic.proxy_sets()}
