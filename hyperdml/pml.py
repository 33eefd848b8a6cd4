"""pytorch-metric-learning in the Poincaré ball: :class:`PoincareDistance`, a PML ``BaseDistance``.

Every PML loss and miner that takes ``distance=`` (``TripletMarginLoss``, ``ContrastiveLoss``,
``MultiSimilarityLoss``, ``TripletMarginMiner``, ``MultiSimilarityMiner``, ...) computes in the
ball with it::

    from pytorch_metric_learning import losses, miners
    from hyperdml.pml import PoincareDistance

    dist = PoincareDistance(c=0.1)                     # embeddings: points of the ball
    miner = miners.TripletMarginMiner(margin=0.2, distance=dist)
    loss_fn = losses.TripletMarginLoss(margin=0.2, distance=dist)
    loss = loss_fn(z, labels, miner(z, labels))

Needs pytorch-metric-learning (``pip install hyperdml[pml]``). The proxy losses themselves
(:class:`hyperdml.losses.ProxyAnchor`, ``ProxyNCA``, ``SoftTriple``) take PML's call and keywords
without it.
"""

from __future__ import annotations

try:
    from pytorch_metric_learning.distances import BaseDistance
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "hyperdml.pml needs pytorch-metric-learning, an optional dependency: pip install hyperdml[pml]",
        name=exc.name,
    ) from exc

import torch

from hyperdml import geometry
from hyperdml.ops import poincare_cdist
from hyperdml.spaces.poincare import DEFAULT_CLIP_R, INPUTS, PoincareSpace

__all__ = ["PoincareDistance"]


class PoincareDistance(BaseDistance):
    """Geodesic distance in the Poincaré ball of curvature −c, as a PML distance.

    ``dist(query (B, D), ref (N, D) = query)`` → ``(B, N)`` distances
    ``d_c(x, y) = arccosh(1 + 2c‖x−y‖² / ((1−c‖x‖²)(1−c‖y‖²))) / √c`` from the fused op
    :func:`hyperdml.ops.poincare_cdist` (compiled CPU/CUDA kernels; gradient 0 at ``x == y``).
    A distance, not a similarity (``is_inverted = False``): PML's losses and miners then treat
    small values as close. Embeddings are not normalised (``normalize_embeddings = False``).

    Args:
        c: curvature magnitude ``c > 0`` (required: the ball must be the one the embeddings
            live in).
        inputs: ``"ball"`` (default): embeddings are points of the ball (e.g. the outputs of
            :class:`hyperdml.models.HyperbolicHead`, or ``PoincareSpace(c).to_space(h)``), checked
            to lie strictly inside it (``ValueError`` otherwise). ``"tangent"``: embeddings are
            head outputs, clipped to ``clip_r`` and mapped by ``expmap0`` first
            (``PoincareSpace(c, clip_r).to_space``), so gradients reach the head through the map.
        clip_r: the clipping radius of ``inputs="tangent"`` (default 2.3; ``None``: no clipping).
        power: PML's exponent on the distances (default 1; 2 gives squared distances).
        **kwargs: PML's ``collect_stats``.

    Attributes:
        space: the :class:`~hyperdml.spaces.PoincareSpace` of the embeddings.
    """

    def __init__(self, c: float, *, inputs: str = "ball", clip_r: float | None = DEFAULT_CLIP_R, power: float = 1,
                 **kwargs):
        for key, bad in (("normalize_embeddings", True), ("is_inverted", True)):
            if kwargs.get(key, not bad) == bad:
                raise ValueError(f"PoincareDistance: {key}={bad} has no meaning here (a geodesic distance of ball "
                                 "points: never normalised, small is close)")
            kwargs.pop(key, None)
        if inputs not in INPUTS:
            raise ValueError(f"PoincareDistance: inputs must be 'ball' (points of the ball) or 'tangent' "
                             f"(head outputs, mapped by expmap0), got {inputs!r}")
        self.space = PoincareSpace(c=c, clip_r=clip_r, inputs=inputs)
        super().__init__(normalize_embeddings=False, is_inverted=False, power=power, **kwargs)
        self.c = self.space.c

    def extra_repr(self) -> str:
        return f"c={self.c}, inputs={self.space.inputs!r}, clip_r={self.space.clip_r}, power={self.power}"

    def _points(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"PoincareDistance: {name} must be a floating tensor, got "
                            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
        points = self.space.to_space(x, check=True)
        return points

    def compute_mat(self, query_emb: torch.Tensor, ref_emb: torch.Tensor | None) -> torch.Tensor:
        """``(B, D) × (N, D) → (B, N)`` geodesic distances (``ref_emb`` None: the query itself)."""
        x = self._points(query_emb, "query embeddings")
        y = x if ref_emb is None or ref_emb is query_emb else self._points(ref_emb, "reference embeddings")
        x, y = (x, y) if x.dtype == y.dtype else (x.double(), y.double())
        return poincare_cdist(x, y, self.c)

    def pairwise_distance(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """Row-wise distances ``(B, D), (B, D) → (B,)`` (``d_c(x_i, y_i)``, elementwise)."""
        return geometry.dist(self._points(query_emb, "query embeddings"), self._points(ref_emb, "reference embeddings"),
                             self.c)
