"""CHEST: Combined Hyperbolic and Euclidean Soft Triple loss.

Saeki, Kawahara, Aman, "Combined Hyperbolic and Euclidean Soft Triple Loss Beyond the Single
Space Deep Metric Learning". The paper's equations are not public to us; the choices made here
are listed in :class:`CHEST`'s docstring.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from hyperdml.losses.base import check_number
from hyperdml.losses.hyphc import HypHCLoss, similarity_from_features
from hyperdml.losses.proxy_set import ProxySet
from hyperdml.losses.soft_triple import SoftTriple
from hyperdml.spaces import EuclideanSpace, PoincareSpace
from hyperdml.spaces.poincare import DEFAULT_CLIP_R, DEFAULT_CURVATURE

__all__ = ["CHEST", "HC_TARGETS"]

#: SoftTriple's own settings, which CHEST passes to both of its SoftTriples
SOFTTRIPLE_SETTINGS = tuple(name for name, p in inspect.signature(SoftTriple).parameters.items()
                            if p.kind is p.POSITIONAL_OR_KEYWORD and name not in ("num_classes", "embedding_size", "space"))

#: where CHEST's HypHC term takes its similarities from (see :class:`CHEST`)
HC_TARGETS = ("class_means", "proxies")


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
      hyperbolic centers, with pair similarities ``0.5·(1 + cos)`` taken from the Euclidean
      space, detached: the Euclidean space tells the hyperbolic proxies which classes to put
      under a common ancestor (the "cross-space" regulariser). ``hc_target`` says which
      Euclidean vectors: ``"class_means"`` (default), a running mean of each class's
      L2-normalised ``z_E`` (buffer :attr:`hc_means` ``(C, D_E)``, updated from every batch in
      training mode: ``m ← hc_momentum·m + (1 − hc_momentum)·batch mean``; the term then covers
      the classes seen so far, and is 0 until three centers' classes have been seen); or
      ``"proxies"``, the Euclidean centers (same class-major order). A class's center shares its
      class's similarity in ``"class_means"``. With ``lambda_hc == 0`` the term is not computed.

    After each call, :attr:`parts` holds the three weighted terms, detached, for logging:
    ``{"euclidean": w_E·L_E, "hyperbolic": w_H·L_H, "hyphc": λ_hc·L_hc}``; they sum to the total.
    :meth:`forward_parts` returns them with their graphs.

    Args:
        num_classes: ``C``.
        euclidean_size: ``D_E``, dimension of the Euclidean head output.
        hyperbolic_size: ``D_H``, dimension of the hyperbolic head output (may differ from ``D_E``).
        **softtriple: keyword arguments of :class:`SoftTriple` for both SoftTriples
            (``centers_per_class``, ``la``, ``gamma``, ``margin``, ``tau``; SoftTriple's defaults),
            e.g. ``CHEST(C, 64, 32, centers_per_class=2, la=20)``. The arguments below are
            keyword-only.
        c: curvature of the ball (default 0.1).
        clip_r: feature-clipping radius before ``expmap0`` (default 2.3).
        lambda_hc: weight ``λ_hc`` of the HypHC term (default 1).
        w_e, w_h: weights of the two SoftTriple terms (default 1, 1).
        hc_tau: HypHC's softmax temperature (default 0.01, the temperature of HypHC's configs).
        num_triplets: HypHC triplets per call when the ``C(C·K, 3)`` triplets are more than
            ``max_all_triplets`` (HypHCLoss's defaults: all triplets up to 50 000, else 50 000
            drawn per call).
        hc_target: ``"class_means"`` (default) or ``"proxies"``: the Euclidean vectors behind
            HypHC's similarities (above).
        hc_momentum: momentum of the running class means (default 0.9).
        hc_sphere: hand HypHC the hyperbolic centers placed on one sphere of learned radius,
            capped inside the ball (HypHC's ``normalize_embeddings``; ``HypHCLoss(sphere=True)``):
            the HypHC term then arranges the centers' directions. Default True. The tree is then
            decoded from the centers on that sphere (``CHEST.proxy_sets`` places them there), as
            HypHC decodes its leaves.
        hc_max_radius: the sphere's cap as a fraction of the ball's radius (default 0.02). The
            radius starts at 3/4 of the cap (at least 1e-2) and, since a larger radius sharpens
            the softmax, climbs to the cap within a few steps and stays there. HypHC's code holds its leaves at 1e-2 of the ball's radius: its learned
            ``scale`` starts at 1e-3, below the clamp's minimum 1e-2, where the clamp passes no
            gradient. Near the boundary (HypHC's ``max_scale`` 1 − 1e-3) the LCA depths span 0
            to ≈ 24 at c = 0.1, the softmax is close to a hard maximum, and the term's gradients
            outweigh SoftTriple's on the hyperbolic centers.
        proxy_param: ``"manifold"`` (default, stepped by RiemannianAdam) or ``"tangent"``
            (the paper's expmap0 of a Euclidean parameter), see ``PoincareSpace``.
        seed: seed of HypHC's triplet sampler.
        inputs: what ``z_H`` is, see ``PoincareSpace``: ``"tangent"`` (default, a plain linear head's
            output, clipped and mapped by ``expmap0``) or ``"ball"`` (points already in the ball,
            e.g. from :class:`hyperdml.models.HyperbolicHead`).
    """

    #: the loss whose keyword arguments ``**softtriple`` carries (read by the loss factory)
    FORWARDED_KWARGS = SoftTriple

    def __init__(
        self,
        num_classes: int,
        euclidean_size: int,
        hyperbolic_size: int,
        *,
        c: float = DEFAULT_CURVATURE,
        clip_r: float | None = DEFAULT_CLIP_R,
        lambda_hc: float = 1.0,
        w_e: float = 1.0,
        w_h: float = 1.0,
        hc_tau: float = 0.01,
        num_triplets: int | None = None,
        hc_target: str = "class_means",
        hc_momentum: float = 0.9,
        hc_sphere: bool = True,
        hc_max_radius: float = 0.02,
        proxy_param: str = "manifold",
        seed: int = 0,
        inputs: str = "tangent",
        **softtriple,
    ):
        super().__init__()
        for name, value in (("lambda_hc", lambda_hc), ("w_e", w_e), ("w_h", w_h)):
            check_number(name, value, nonnegative=True)
        unknown = sorted(set(softtriple) - set(SOFTTRIPLE_SETTINGS))
        if unknown:
            raise TypeError(f"CHEST got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                            f"it passes SoftTriple's {', '.join(SOFTTRIPLE_SETTINGS)} to both SoftTriples")
        self.euclidean = SoftTriple(num_classes, euclidean_size, space=EuclideanSpace(), **softtriple)
        space = PoincareSpace(c=c, clip_r=clip_r, proxy_param=proxy_param, inputs=inputs)
        self.hyperbolic = SoftTriple(num_classes, hyperbolic_size, space=space, **softtriple)
        if lambda_hc > 0 and num_classes * self.hyperbolic.centers_per_class < 3:
            raise ValueError("the HypHC term needs at least 3 proxies (num_classes * centers_per_class >= 3)")
        if hc_target not in HC_TARGETS:
            raise ValueError(f"hc_target must be one of {', '.join(map(repr, HC_TARGETS))}, got {hc_target!r}")
        if not 0 <= check_number("hc_momentum", hc_momentum) < 1:
            raise ValueError(f"hc_momentum must lie in [0, 1), got {hc_momentum}")
        self.hyphc = HypHCLoss(c=space.c, tau=hc_tau, num_triplets=num_triplets, seed=seed, sphere=hc_sphere,
                               init_radius=max(1e-2, min(0.5, 0.75 * hc_max_radius)), max_radius=hc_max_radius)
        self.hc_target, self.hc_momentum = hc_target, float(hc_momentum)
        if hc_target == "class_means":
            #: running mean of each class's L2-normalised Euclidean head output (``hc_target="class_means"``)
            self.register_buffer("hc_means", torch.zeros(num_classes, euclidean_size))
            #: whether each class has been seen (its row of :attr:`hc_means` is set)
            self.register_buffer("hc_seen", torch.zeros(num_classes, dtype=torch.bool))
        self.num_classes = num_classes
        self.lambda_hc, self.w_e, self.w_h = float(lambda_hc), float(w_e), float(w_h)
        self.parts: dict[str, torch.Tensor] = {}
        #: data-dependent input checks (NaN/Inf, label range) in ``forward``; see ``ProxyLoss``.
        self.check_values = True

    def extra_repr(self) -> str:
        return f"lambda_hc={self.lambda_hc}, w_e={self.w_e}, w_h={self.w_h}"

    @torch.no_grad()
    def update_class_means(self, z_e: torch.Tensor, labels: torch.Tensor) -> None:
        """Fold a batch into :attr:`hc_means`: ``z_e (B, D_E)``, ``labels (B,)`` in ``0..C−1``."""
        f = F.normalize(z_e.detach().to(self.hc_means.dtype), p=2, dim=1)
        labels = labels.to(f.device)
        sums = torch.zeros_like(self.hc_means).index_add_(0, labels, f)
        counts = torch.bincount(labels, minlength=self.num_classes).to(f.dtype).unsqueeze(1)
        present = counts.squeeze(1) > 0
        batch_means = sums / counts.clamp_min(1)
        blended = torch.where(self.hc_seen.unsqueeze(1),
                              self.hc_momentum * self.hc_means + (1 - self.hc_momentum) * batch_means, batch_means)
        self.hc_means.copy_(torch.where(present.unsqueeze(1), blended, self.hc_means))
        self.hc_seen |= present

    def hyphc_term(self) -> torch.Tensor:
        """HypHC loss of the hyperbolic centers with similarities from the Euclidean space (unweighted)."""
        points = self.hyperbolic.proxy_points()
        if self.hc_target == "proxies":
            e = self.euclidean.proxy_points()
        else:
            k = self.hyperbolic.proxies_per_class
            seen = self.hc_seen.nonzero().squeeze(1)
            if seen.numel() * k < 3:
                return points.sum() * 0
            e = self.hc_means[seen].repeat_interleave(k, dim=0)
            if seen.numel() < self.num_classes:
                points = points[(seen.unsqueeze(1) * k + torch.arange(k, device=seen.device)).reshape(-1)]
        with torch.no_grad(), torch.autocast(e.device.type, enabled=False):
            sims = similarity_from_features(e.float() if e.dtype in (torch.float16, torch.bfloat16) else e)
        return self.hyphc(points, sims)

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
            if self.hc_target == "class_means" and self.training:
                self.update_class_means(z_e, labels_e)
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
        """Both SoftTriples' centers: ``{"euclidean": ProxySet, "hyperbolic": ProxySet}``; with
        ``hc_sphere`` the hyperbolic centers placed on HypHC's sphere, as the HypHC term sees them."""
        sets = {**self.euclidean.proxy_sets(), **self.hyperbolic.proxy_sets()}
        if self.hyphc.sphere:
            h = self.hyperbolic
            with torch.no_grad():
                radius = float(self.hyphc.sphere_radius())
            sets[h.space.label] = ProxySet.of(h.space, h.proxy_points(), h.num_classes, h.proxies_per_class,
                                              sphere_radius=radius)
        return sets
