"""``PoincareSpace``: the Poincaré ball of curvature −c, the one owner of the hyperbolic geometry."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

from hyperdml import geometry
from hyperdml.geometry import geoopt
from hyperdml.ops import poincare_cdist
from hyperdml.ops._checks import check_curvature
from hyperdml.spaces.base import HALF, Space, _promote, register_space

__all__ = ["PoincareSpace", "DEFAULT_CURVATURE", "DEFAULT_CLIP_R", "INPUTS"]

#: The package's one curvature default (Hyp-ViT, HIER and the CHEST paper use c = 0.1).
DEFAULT_CURVATURE = 0.1
#: The feature-clipping radius of Hyp-ViT / HIER.
DEFAULT_CLIP_R = 2.3
#: What head outputs are: tangent vectors at the origin, or points already in the ball.
INPUTS = ("tangent", "ball")


def _upcast(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in HALF else t


@register_space
class PoincareSpace(Space):
    """The Poincaré ball of curvature −c, with similarity ``sim_offset − sim_scale · d_c(x, p)``.

    Args:
        c: curvature magnitude (``c > 0``). Default 0.1, as Hyp-ViT / HIER and the CHEST paper;
            the only curvature default of the package.
        clip_r: feature-clipping radius of tangent vectors before ``expmap0`` (head outputs with
            ``inputs="tangent"``, tangent proxies); ``None`` disables clipping. Default 2.3
            (Hyp-ViT / HIER).
        proxy_param: ``"manifold"`` (default): proxies are a ``geoopt.ManifoldParameter`` on
            ``geoopt.PoincareBall(c)``, stepped by ``geoopt.optim.RiemannianAdam`` (whose
            retraction projects them back inside the ball). ``"tangent"``: proxies are a plain
            Euclidean parameter ``v`` and the points are ``expmap0(clip(v))`` (the CHEST paper's
            formulation); any optimiser works.
        sim_scale: factor on the distance. Default ``1 / (2·clip_r)`` (``1/4.6``), or ``1/4.6``
            when ``clip_r`` is ``None``.
        sim_offset: added to the scaled negative distance. Default 1.
        inputs: what the head outputs given to a loss (and to :meth:`to_space`) are.
            ``"tangent"`` (default): tangent vectors at the origin, clipped to ``clip_r`` and
            mapped by ``expmap0`` (a plain ``nn.Linear`` head). ``"ball"``: points already in the
            ball (:class:`hyperdml.models.HyperbolicHead`, hyptorch's ``ToPoincare``, a geoopt
            ``ManifoldTensor``), checked to lie inside it (``ValueError`` otherwise) and used as
            they are.

    Similarity scale (the hyperbolic default). The geodesic distance is unbounded, while every
    loss's default hyperparameters (PML's ``margin``, ``alpha``, ``la``, ``gamma``) are calibrated
    for cosines in ``[−1, 1]``. Since ``d_c(0, expmap0(v)) = 2‖v‖`` for every c, clipped
    embeddings lie within distance ``2·clip_r`` of the origin and two of them at most
    ``4·clip_r`` apart. With the defaults, ``similarity = 1 − d / (2·clip_r)`` maps that range
    ``[0, 4·clip_r]`` onto ``[1, −1]``: identical points score 1 like parallel vectors, points
    ``2·clip_r`` apart (the origin and the clipping sphere) score 0 like orthogonal ones. So the
    losses keep the same defaults in both spaces; ``alpha = 32`` on this scale is ≈ 7 per unit
    of distance (Hyp-ViT uses 5 = 1/0.2 on −d). Set ``sim_scale=1, sim_offset=0`` for the raw −d
    (then retune the loss's scales and margins).

    What the space decides (everything else asks it): the map of head outputs into the ball,
    distance (:func:`hyperdml.ops.poincare_cdist`) and similarity, squared distances of sets
    (Calibrate Proxy), ``expmap0``/``logmap0``, features (``logmap0``: k-means, NMI, angle
    similarities), the class mean (:func:`hyperdml.geometry.tangent_mean`), the proxies, tree
    decoding (:func:`hyperdml.hierarchy.decode_tree`: single linkage on the depth of the
    hyperbolic lowest common ancestor), the disk picture and exact kNN retrieval (faiss on the
    hyperboloid, :mod:`hyperdml.spaces.poincare_search`).

    Numerics: :meth:`to_space`, :meth:`distance` and :meth:`similarity` run with autocast
    disabled and in float32 at least (half inputs are upcast), and points are kept strictly
    inside the ball (``geometry.project``).
    """

    kind = "poincare"
    metric = "poincare"
    label = "hyperbolic"
    has_disk = True
    #: Typical Euclidean norm of the initial tangent vectors of the proxies (points at distance
    #: ≈ 2 × this from the origin): near the origin but not degenerate.
    proxy_init_norm = 0.5
    #: Relative distance to the clipping shell below which a point counts as saturated.
    saturation_tolerance = 1e-4

    def __init__(
        self,
        c: float = DEFAULT_CURVATURE,
        clip_r: float | None = DEFAULT_CLIP_R,
        proxy_param: str = "manifold",
        sim_scale: float | None = None,
        sim_offset: float = 1.0,
        *,
        inputs: str = "tangent",
    ):
        c = check_curvature(c)
        if clip_r is not None and (isinstance(clip_r, bool) or not isinstance(clip_r, numbers.Real)
                                   or not (clip_r > 0 and math.isfinite(clip_r))):
            raise ValueError(f"clip_r must be a finite number > 0 or None, got {clip_r!r}")
        if proxy_param not in ("manifold", "tangent"):
            raise ValueError(f"proxy_param must be 'manifold' or 'tangent', got {proxy_param!r}")
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be 'tangent' (head outputs mapped by expmap0) or 'ball' "
                             f"(points already in the ball), got {inputs!r}")
        if sim_scale is None:
            sim_scale = 1.0 / (2.0 * (clip_r if clip_r is not None else DEFAULT_CLIP_R))
        if not (sim_scale > 0 and math.isfinite(sim_scale)):
            raise ValueError(f"sim_scale must be a finite number > 0, got {sim_scale}")
        if not math.isfinite(sim_offset):
            raise ValueError(f"sim_offset must be a finite number, got {sim_offset}")
        self.c, self.clip_r, self.proxy_param = c, (None if clip_r is None else float(clip_r)), proxy_param
        self.sim_scale, self.sim_offset = float(sim_scale), float(sim_offset)
        self.inputs = inputs
        self.manifold = geometry.ball(c)

    def config(self) -> dict:
        return {"kind": self.kind, "c": self.c, "clip_r": self.clip_r, "proxy_param": self.proxy_param,
                "sim_scale": self.sim_scale, "sim_offset": self.sim_offset, "inputs": self.inputs}

    def __repr__(self) -> str:
        return (f"PoincareSpace(c={self.c}, clip_r={self.clip_r}, proxy_param={self.proxy_param!r}, "
                f"sim_scale={self.sim_scale:.4g}, sim_offset={self.sim_offset}, inputs={self.inputs!r})")

    @property
    def takes_points(self) -> bool:
        """``inputs == "ball"``: head outputs are points of the ball already."""
        return self.inputs == "ball"

    @property
    def radius(self) -> float:
        """Euclidean radius ``1/√c`` of the ball."""
        return self.c**-0.5

    # -- points --------------------------------------------------------------------------------

    def to_space(self, h: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Head outputs ``(B, D)`` → ball points ``(B, D)``, float32 at least.

        ``inputs="tangent"``: ``expmap0(clip(h))``. ``inputs="ball"``: ``h`` itself. With ``check``
        (one host sync) ``h`` is first checked by :meth:`check_inputs`.
        """
        if check:
            self.check_inputs(h, "head outputs")
        with torch.autocast(h.device.type, enabled=False):
            h = _upcast(h)
            return h if self.inputs == "ball" else geometry.to_ball(h, self.c, self.clip_r)

    def check_inputs(self, h: torch.Tensor, name: str = "embeddings") -> None:
        """Finite head outputs; with ``inputs="ball"`` also strictly inside the ball."""
        if self.inputs == "ball":
            self.check_points(h, f"{name} (inputs='ball')")
        else:
            super().check_inputs(h, name)

    def check_points(self, x: torch.Tensor, name: str = "points") -> None:
        """``ValueError`` unless every row of ``x`` is finite and strictly inside the ball (one sync)."""
        super().check_points(x, name)
        if x.numel() == 0:
            return
        scaled = float(geometry.row_norm(x.detach()).max()) * self.c**0.5
        if scaled >= 1:
            raise ValueError(
                f"{name}: a point lies on or outside the Poincaré ball of curvature -{self.c} "
                f"(largest √c·‖x‖ = {scaled:.6g} ≥ 1); with inputs='ball' the head must output ball "
                "points (e.g. hyperdml.models.HyperbolicHead), with inputs='tangent' any vectors"
            )

    def saturation(self, h: torch.Tensor) -> float:
        """Fraction of head outputs ``(B, D)`` that land on the clipping sphere (or, without clipping,
        on the boundary), where norms, and so depths, no longer differ (one host sync)."""
        return float(self.collapse_stats(h)[0])

    def collapse_stats(self, h: torch.Tensor) -> torch.Tensor:
        """``(2,)`` float32 tensor, no host sync: the fraction of head outputs ``h (B, D)`` on the
        clipping sphere (:meth:`saturation`) and their mean resultant length
        ``R = ‖mean_i h_i/‖h_i‖‖`` (1: every output points the same way; ball points and the
        tangent vectors they come from share directions). Both 0 for an empty batch."""
        with torch.no_grad():
            h = _upcast(h.detach())
            if h.numel() == 0:
                return torch.zeros(2, device=h.device)
            norm = geometry.row_norm(h)
            if self.inputs == "ball":
                scaled = norm.squeeze(-1) * self.c**0.5
            else:
                clipped = norm.squeeze(-1) if self.clip_r is None else norm.squeeze(-1).clamp_max(self.clip_r)
                scaled = torch.tanh(clipped * self.c**0.5)
            shell = math.tanh(self.clip_r * self.c**0.5) if self.clip_r is not None else 1.0
            fraction = (scaled >= shell * (1 - self.saturation_tolerance)).float().mean()
            directions = h / norm.clamp_min(torch.finfo(h.dtype).tiny)
            resultant = directions.mean(dim=0).norm()
            return torch.stack([fraction, resultant]).float()

    def expmap0(self, v: torch.Tensor) -> torch.Tensor:
        return geometry.expmap0(v, self.c)

    def logmap0(self, x: torch.Tensor) -> torch.Tensor:
        return geometry.logmap0(x, self.c)

    def to_lorentz(self, x: torch.Tensor) -> torch.Tensor:
        """Ball points ``(..., D)`` → hyperboloid ``(..., D + 1)`` (:func:`hyperdml.geometry.to_lorentz`)."""
        return geometry.to_lorentz(x, self.c)

    # -- metric --------------------------------------------------------------------------------

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Geodesic distances ``(B, D) × (M, D) → (B, M)`` (``hyperdml.ops.poincare_cdist``)."""
        with torch.autocast(x.device.type, enabled=False):
            x, y = _promote(_upcast(x), _upcast(y))
            return poincare_cdist(x, y, self.c)

    def similarity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``sim_offset − sim_scale · d_c(x, p)``, ``(B, D) × (M, D) → (B, M)``."""
        return self.sim_offset - self.sim_scale * self.distance(x, y)

    def sq_distance_matrix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Squared geodesic distances, batched (:func:`hyperdml.geometry.sq_dist_matrix`)."""
        with torch.autocast(x.device.type, enabled=False):
            return geometry.sq_dist_matrix(_upcast(x), _upcast(y), self.c)

    # -- features, means, proxies --------------------------------------------------------------

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``logmap0``: tangent vectors at the origin (direction and depth of each point)."""
        return geometry.logmap0(x, self.c)

    def class_mean(self, points: torch.Tensor) -> torch.Tensor:
        """``(C, K, D)`` → ``(C, D)``: the tangent-space mean at the origin (:func:`~hyperdml.geometry.tangent_mean`)."""
        return geometry.tangent_mean(points, self.c, dim=1)

    def init_proxies(self, num: int, dim: int) -> nn.Parameter:
        """Proxies near the origin: tangent vectors ``N(0, (proxy_init_norm²/D)·I)``.

        ``"manifold"``: a ``geoopt.ManifoldParameter`` holding ``expmap0`` of them on
        ``geoopt.PoincareBall(c)``; ``"tangent"``: an ``nn.Parameter`` holding the vectors.
        """
        v = torch.randn(num, dim) * (self.proxy_init_norm / math.sqrt(dim))
        if self.proxy_param == "tangent":
            return nn.Parameter(v)
        return geoopt.ManifoldParameter(geometry.to_ball(v, self.c, self.clip_r), manifold=self.manifold)

    def proxy_points(self, param: torch.Tensor) -> torch.Tensor:
        """Ball points ``(M, D)``: the projected manifold parameter, or ``expmap0(clip(v))``."""
        with torch.autocast(param.device.type, enabled=False):
            if self.proxy_param == "tangent":
                return geometry.to_ball(_upcast(param), self.c, self.clip_r)
            return geometry.project(param, self.c)

    def proxies_from_features(self, v: torch.Tensor) -> torch.Tensor:
        """Tangent vectors ``(M, D)`` → a proxy value: clipped, then ``expmap0`` unless ``proxy_param="tangent"``."""
        v = geometry.clip_features(v, self.clip_r)
        return v if self.proxy_param == "tangent" else geometry.expmap0(v, self.c)

    # -- trees, pictures, retrieval ------------------------------------------------------------

    def decode_tree(self, points) -> np.ndarray:
        """HypHC's decoding: single linkage on the depth of the hyperbolic lowest common ancestor."""
        from hyperdml.hierarchy import decode_tree

        return decode_tree(points, self.c)

    def tree_axis(self, points) -> dict:
        """Heights of :meth:`decode_tree` are ``δ_max − δ``; ``depth_max`` is the deepest leaf's depth."""
        x = points.detach().cpu().double() if isinstance(points, torch.Tensor) else torch.as_tensor(np.asarray(points, np.float64))
        depth = 2 * torch.atanh((geometry.row_norm(x) * self.c**0.5).clamp_max(1 - 1e-16)) / self.c**0.5
        return {"kind": "lca", "depth_max": float(depth.max()) if len(depth) else 0.0,
                "short": f"HypHC decoding (c={self.c:g})",
                "description": "HypHC decoding: single linkage on the depth of the hyperbolic LCA"}

    def disk_projection(self, fit_points):
        """PCA in the tangent space at the origin, fitted on ``fit_points`` (:class:`~hyperdml.spaces.TangentPCA`)."""
        from hyperdml.spaces.tangent_pca import TangentPCA

        return TangentPCA(self.c).fit(fit_points)

    def tree_edges(self, z: np.ndarray, points) -> np.ndarray:
        """The leaf pair behind each merge of :meth:`decode_tree`'s tree (:func:`hyperdml.hierarchy.tree_edges`)."""
        from hyperdml.hierarchy import tree_edges

        return tree_edges(z, points, self.c)

    def clip_disk_radius(self) -> float | None:
        """Radius of the clipping sphere in the unit disk of :meth:`disk_projection` (None without clipping)."""
        return math.tanh(self.c**0.5 * self.clip_r) if self.clip_r is not None else None

    def knn(self, query, gallery, k, *, exclude_self=False, chunk_size=4096, progress=False):
        """Exact kNN by geodesic distance: faiss on the hyperboloid, certified float64 re-ranking."""
        from hyperdml.spaces.poincare_search import poincare_knn

        return poincare_knn(query, gallery, k, self.c, exclude_self=exclude_self, chunk_size=chunk_size,
                            progress=progress)
