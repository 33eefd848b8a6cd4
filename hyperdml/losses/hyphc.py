"""HypHC regulariser (Chami et al., NeurIPS 2020, "From Trees to Continuous Embeddings and Back").

``HypHCLoss(points, sims)`` is the mean over triplets (i, j, k) of

    Σ s − s · softmax(δ / τ),   s = (s_ij, s_ik, s_jk),   δ = (δ(z_i∨z_j), δ(z_i∨z_k), δ(z_j∨z_k)),

with ``δ(a∨b)`` the depth (distance to the origin) of the hyperbolic lowest common ancestor of a
and b, computed by :func:`hyperdml.ops.hyphc_triplet_loss`. It pulls the pair with the largest
similarity of each triplet to the deepest LCA, so that single linkage on LCA depth
(:func:`hyperdml.hierarchy.decode_tree`) recovers a tree with low Dasgupta cost. At ``c = 1`` it is
HazyResearch/HypHC's ``HypHC.loss``.

With ``sphere=True`` the loss sees the points as HypHC's model holds its leaves
(``normalize_embeddings``): every point moved along its ray onto one sphere, ``z/‖z‖ · r``, whose
radius ``r`` is a parameter of the loss, learned with the rest and capped inside the ball.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hyperdml.ops import hyphc_triplet_loss
from hyperdml.ops._checks import check_curvature, check_temperature
from hyperdml.spaces.poincare import DEFAULT_CURVATURE

__all__ = ["HypHCLoss", "similarity_from_features"]


def similarity_from_features(features: torch.Tensor) -> torch.Tensor:
    """HypHC's pair similarities from features: ``(P, D)`` → ``(P, P)`` ``0.5·(1 + cos)``.

    As HypHC's ``load_data``: rows are L2-normalised, ``s = 0.5·(1 + x_i·x_j)`` is clamped to
    ``[0, 1]`` and the diagonal set to 1. Differentiable (detach it for a fixed target).
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ValueError(f"features must be a (P, D) tensor, got shape {tuple(getattr(features, 'shape', ()))}")
    x = F.normalize(features, p=2, dim=1)
    sims = (0.5 * (1 + x @ x.t())).clamp(0.0, 1.0)
    eye = torch.eye(len(sims), dtype=torch.bool, device=sims.device)
    return torch.where(eye, torch.ones_like(sims), sims)


class HypHCLoss(nn.Module):
    """HypHC's triplet loss over all points, as a regulariser: ``forward(points, sims)`` → scalar.

    Triplets. With ``P`` points, if ``C(P, 3) ≤ max_all_triplets`` every triplet ``i < j < k`` is
    used (the exact loss; the ``(C(P, 3), 3)`` index tensor is built once per ``(P, device)`` and
    cached). Otherwise each call draws ``num_triplets`` triplets from the module's own seeded
    ``torch.Generator`` (reproducible, independent of the global RNG, saved in ``state_dict``),
    following HypHC's ``samples_triples``: a pair ``i < j`` uniform among the ``C(P, 2)`` pairs,
    and a third index ``k`` uniform over all ``P`` points, so ``k`` may repeat ``i`` or ``j`` (the
    triplet then compares ``δ(z_i∨z_j)`` with ``δ(z_i∨z_i) = d(0, z_i)``; the op handles it).
    Unlike HypHC, which draws a fixed set of distinct pairs once, pairs are drawn afresh at every
    call and independently (with replacement).

    Temperature. ``tau`` is the softmax temperature. HypHC multiplies it by ``anneal_factor``
    every ``anneal_every`` epochs; here :meth:`anneal` does one such step and :meth:`set_epoch`
    sets ``tau = max(min_tau, tau0 · anneal_factor ** (epoch // anneal_every))`` (or
    ``tau_schedule(epoch)`` when given), so the temperature follows the epoch after a resume.

    Args:
        c: curvature magnitude of the ball, ``c > 0`` (default 0.1, ``PoincareSpace``'s; HypHC's own
            experiments use c = 1).
        tau: initial temperature ``τ > 0`` (HypHC's default 0.05; its configs use 0.01–0.1).
        num_triplets: triplets drawn per call when not all are used; ``None``: ``max_all_triplets``.
        max_all_triplets: use all triplets when there are at most this many.
        seed: seed of the sampling generator.
        anneal_factor: factor applied to ``tau`` per annealing step (HypHC's ``anneal_factor``).
        anneal_every: epochs per annealing step in :meth:`set_epoch` (HypHC's ``anneal_every``).
        min_tau: floor of the annealed temperature.
        tau_schedule: optional ``epoch → tau`` used by :meth:`set_epoch` instead of the factor.
        sphere: place the points on one sphere of learned radius before the loss, as HypHC's
            ``normalize_embeddings``: the loss sees ``z/‖z‖ · r`` (only the points' directions
            count), ``r = max_radius · clamp(ρ, min_radius/max_radius, 1) / √c`` with the
            parameter :attr:`radius` ``ρ``: the radius as a fraction of the cap, so that an
            optimiser's steps are relative to the cap however small it is. Outside the clamp
            range its gradient is zero, as in HypHC. Default False (the points as given).
        init_radius, min_radius, max_radius: the sphere's initial radius and bounds, as fractions
            of the ball's radius ``1/√c`` (defaults 0.5, 1e-2 and ``1 − 1e-3``: HypHC's minimum
            and ``max_scale``). Ignored unless ``sphere``.

    Shapes:
        ``points (P, D)`` inside the ball (‖z‖ < 1/√c), float32/float64, ``P ≥ 3`` (fewer points
        have no triplet: a ``ValueError``, not a silent 0); ``sims (P, P)`` finite and
        symmetric, cast to ``points``' dtype and device; output: scalar.
    """

    def __init__(
        self,
        c: float = DEFAULT_CURVATURE,
        tau: float = 0.05,
        num_triplets: int | None = None,
        max_all_triplets: int = 50_000,
        seed: int = 0,
        anneal_factor: float = 1.0,
        anneal_every: int = 1,
        min_tau: float = 1e-3,
        tau_schedule: Callable[[int], float] | None = None,
        sphere: bool = False,
        init_radius: float = 0.5,
        min_radius: float = 1e-2,
        max_radius: float = 1 - 1e-3,
    ):
        super().__init__()
        c = check_curvature(c)
        tau, min_tau = check_temperature(tau), check_temperature(min_tau)
        if not anneal_factor > 0 or anneal_every < 1:
            raise ValueError(f"need anneal_factor > 0 and anneal_every >= 1, got {anneal_factor}, {anneal_every}")
        num_triplets = max_all_triplets if num_triplets is None else num_triplets
        if num_triplets < 1:
            raise ValueError(f"num_triplets (default: max_all_triplets) must be >= 1, got {num_triplets}")
        self.c, self.tau0, self.tau = float(c), float(tau), float(tau)
        self.num_triplets, self.max_all_triplets = int(num_triplets), int(max_all_triplets)
        self.anneal_factor, self.anneal_every, self.min_tau = float(anneal_factor), int(anneal_every), float(min_tau)
        self.tau_schedule = tau_schedule
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._all_triplets: dict = {}
        self.sphere = bool(sphere)
        if self.sphere:
            if not 0 < min_radius <= max_radius < 1:
                raise ValueError(f"need 0 < min_radius <= max_radius < 1 (fractions of the ball's radius), "
                                 f"got {min_radius}, {max_radius}")
            if not min_radius <= init_radius <= max_radius:
                raise ValueError(f"init_radius must lie in [min_radius, max_radius] = [{min_radius}, {max_radius}], "
                                 f"got {init_radius}")
            self.min_radius, self.max_radius = float(min_radius), float(max_radius)
            #: the sphere's radius as a fraction ``ρ`` of the cap ``max_radius`` (``sphere=True`` only)
            self.radius = nn.Parameter(torch.tensor(float(init_radius) / float(max_radius)))

    def extra_repr(self) -> str:
        text = f"c={self.c}, tau={self.tau:g}, num_triplets={self.num_triplets}, max_all_triplets={self.max_all_triplets}"
        return text + (f", sphere=True, max_radius={self.max_radius:g}" if self.sphere else "")

    # -- the sphere (HypHC's normalize_embeddings) -----------------------------------------------

    def sphere_radius(self) -> torch.Tensor:
        """The sphere's radius in the ball, ``max_radius · clamp(ρ, min_radius/max_radius, 1) / √c`` (scalar tensor)."""
        if not self.sphere:
            raise RuntimeError("sphere_radius: this HypHCLoss was built with sphere=False")
        return self.radius.clamp(self.min_radius / self.max_radius, 1.0) * (self.max_radius / math.sqrt(self.c))

    def place(self, points: torch.Tensor) -> torch.Tensor:
        """The points the loss sees: ``(P, D)`` → ``z/‖z‖ · r`` with ``sphere``, else unchanged."""
        if not self.sphere:
            return points
        radius = self.sphere_radius().to(points.dtype)
        return F.normalize(points, p=2, dim=1, eps=1e-15) * radius

    # -- temperature ---------------------------------------------------------------------------

    def anneal(self, factor: float | None = None) -> float:
        """One annealing step: ``tau ← max(min_tau, tau · factor)`` (``anneal_factor`` by default).

        Returns the new temperature.
        """
        factor = self.anneal_factor if factor is None else float(factor)
        self.tau = max(self.min_tau, self.tau * factor)
        return self.tau

    def set_epoch(self, epoch: int) -> None:
        """Set the temperature for ``epoch`` (0-based) from ``tau_schedule`` or the annealing rule."""
        if self.tau_schedule is not None:
            tau = float(self.tau_schedule(epoch))
        else:
            tau = self.tau0 * self.anneal_factor ** (int(epoch) // self.anneal_every)
        try:
            tau = check_temperature(tau)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the temperature for epoch {epoch}: {exc}") from None
        self.tau = max(self.min_tau, tau)

    # -- state (temperature and sampler survive a checkpoint) ----------------------------------

    def get_extra_state(self):
        """Current temperature and sampler state, stored in ``state_dict`` as ``_extra_state``."""
        return {"tau": self.tau, "generator": self.generator.get_state()}

    def set_extra_state(self, state) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.tau = float(state["tau"])
        self.generator.set_state(state["generator"])

    # -- triplets ------------------------------------------------------------------------------

    def uses_all_triplets(self, num_points: int) -> bool:
        """Whether ``num_points`` points are few enough to use every triplet ``i < j < k``."""
        return math.comb(num_points, 3) <= self.max_all_triplets

    def sample_triplets(self, num_points: int, device=None) -> torch.Tensor:
        """The triplets a call with ``num_points`` points uses: ``(T, 3)`` int64 on ``device``.

        All ``C(P, 3)`` triplets ``i < j < k`` (cached), or ``num_triplets`` drawn as described in
        the class docstring (each call advances the generator).
        """
        p = int(num_points)
        if p < 3:
            raise ValueError(f"HypHCLoss needs at least 3 points (a triplet), got {p}")
        device = torch.device("cpu") if device is None else torch.device(device)
        if self.uses_all_triplets(p):
            key = (p, device)
            if key not in self._all_triplets:
                self._all_triplets[key] = torch.combinations(torch.arange(p), r=3).to(device)
            return self._all_triplets[key]
        t, g = self.num_triplets, self.generator
        i = torch.randint(p, (t,), generator=g)
        j = torch.randint(p - 1, (t,), generator=g)
        j = j + (j >= i).long()  # uniform over j ≠ i
        k = torch.randint(p, (t,), generator=g)
        return torch.stack([torch.minimum(i, j), torch.maximum(i, j), k], dim=1).to(device)

    # -- loss ----------------------------------------------------------------------------------

    def forward(self, points: torch.Tensor, sims: torch.Tensor) -> torch.Tensor:
        """Mean HypHC triplet loss: ``points (P, D)`` in the ball, ``sims (P, P)`` → scalar."""
        if not isinstance(points, torch.Tensor) or points.dim() != 2:
            raise ValueError(f"points must be a (P, D) tensor, got shape {tuple(getattr(points, 'shape', ()))}")
        p = points.shape[0]
        if not isinstance(sims, torch.Tensor) or sims.shape != (p, p):
            raise ValueError(f"sims must be a ({p}, {p}) tensor for {p} points, got shape {tuple(getattr(sims, 'shape', ()))}")
        if p < 3:
            raise ValueError(f"HypHCLoss needs at least 3 points (a triplet), got {p}")
        sims = sims.to(device=points.device, dtype=points.dtype)
        with torch.no_grad():
            if not bool(torch.isfinite(sims).all()):
                raise ValueError("sims contains NaN or Inf")
            scale = float(sims.abs().max())
            if not torch.allclose(sims, sims.t(), rtol=1e-5, atol=1e-6 * max(scale, 1.0)):
                raise ValueError("sims must be symmetric (s_ij == s_ji)")
        points = self.place(points)
        t = self.sample_triplets(p, points.device)
        i, j, k = t.unbind(1)
        s = torch.stack([sims[i, j], sims[i, k], sims[j, k]], dim=1)
        return hyphc_triplet_loss(points, t, s, c=self.c, tau=self.tau).mean()
