"""Embedding heads: a linear map for the Euclidean losses and :class:`HyperbolicHead` for the ball.

:func:`build_head` makes the head a space asks for: ``nn.Linear`` when the space takes vectors as
they are (``EuclideanSpace``, ``PoincareSpace(inputs="tangent")``, which clips and maps them
itself), :class:`HyperbolicHead` when it takes points of the ball (``PoincareSpace(inputs="ball")``).
"""

from __future__ import annotations

import torch
from torch import nn

from hyperdml.spaces import PoincareSpace, Space
from hyperdml.spaces.poincare import DEFAULT_CLIP_R, DEFAULT_CURVATURE

__all__ = ["HEAD_NORMS", "HyperbolicHead", "build_head"]

#: the normalisations of :class:`HyperbolicHead`, its default first: ``batch`` (Linear → BatchNorm1d)
#: and ``layer`` (LayerNorm → Linear, independent of the batch)
HEAD_NORMS = ("batch", "layer")


class HyperbolicHead(nn.Module):
    """A head that outputs points of the Poincaré ball: normalised linear map → clip → ``expmap0``.

    ``norm="batch"`` (default): Linear → BatchNorm1d(out_features) → clip to ``clip_r`` →
    ``expmap0``. ``norm="layer"``: LayerNorm(in_features) → Linear → clip → ``expmap0`` (the
    order of Hyp-ViT's and HIER's ViT features; no batch statistics, so one sample's output does
    not depend on its batch).

    Why: a plain ``nn.Linear`` on unnormalised CNN features (ReLU, pooled) outputs vectors that
    all point the same way; their norms grow past ``clip_r`` within a few dozen steps, every
    embedding lands on the clipping sphere at nearly one point, the clip's Jacobian leaves only
    tiny tangential gradients, and training stalls (the hyperbolic losses warn when they see it).
    The normalisation centres the outputs, so they spread over directions and depths.

    Shapes: ``head(features (B, in_features))`` → ``(B, out_features)`` ball points with
    ``‖x‖ ≤ tanh(√c·clip_r)/√c < 1/√c`` (float32 at least). With ``norm="batch"`` training needs
    ``B ≥ 2``; in eval mode the running statistics are used (under DDP on CUDA the trainer turns
    the BatchNorm into ``SyncBatchNorm``).

    Feed the outputs to a loss whose space takes ball points: :attr:`space`
    (``PoincareSpace(c, clip_r, inputs="ball")``)::

        head = HyperbolicHead(512, 64)                 # c = PoincareSpace's default, clip_r = 2.3
        loss = ProxyAnchor(num_classes, 64, space=head.space)
        x = head(backbone(images))                     # (B, 64) points of the ball
        loss(x, labels).backward()

    Args:
        in_features: size of the backbone's features.
        out_features: dimension ``D`` of the ball.
        c: curvature magnitude of the ball (default: ``PoincareSpace``'s).
        clip_r: feature-clipping radius before ``expmap0`` (default 2.3; None: no clipping).
        norm: ``"batch"`` or ``"layer"`` (see above).

    Raises:
        ValueError: for an unknown ``norm`` (naming the choices), a bad ``c`` or ``clip_r``.
    """

    def __init__(self, in_features: int, out_features: int, c: float = DEFAULT_CURVATURE,
                 clip_r: float | None = DEFAULT_CLIP_R, norm: str = "batch"):
        super().__init__()
        if norm not in HEAD_NORMS:
            raise ValueError(f"norm must be one of {', '.join(map(repr, HEAD_NORMS))}, got {norm!r}")
        self._tangent_space = PoincareSpace(c=c, clip_r=clip_r)  # clip + expmap0 of the tangent vectors
        self.norm_kind = norm
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.BatchNorm1d(out_features) if norm == "batch" else nn.LayerNorm(in_features)

    @property
    def space(self) -> PoincareSpace:
        """The space of the outputs: ``PoincareSpace(c, clip_r, inputs="ball")``."""
        sp = self._tangent_space
        return PoincareSpace(c=sp.c, clip_r=sp.clip_r, inputs="ball")

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def tangent(self, features: torch.Tensor) -> torch.Tensor:
        """The tangent vectors at the origin before clipping: ``(B, in_features)`` → ``(B, D)``."""
        if self.norm_kind == "batch":
            return self.norm(self.linear(features))
        return self.linear(self.norm(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` → ball points ``(B, D)`` (float32 at least, outside autocast)."""
        return self._tangent_space.to_space(self.tangent(features), check=False)

    def extra_repr(self) -> str:
        sp = self._tangent_space
        return f"c={sp.c}, clip_r={sp.clip_r}, norm={self.norm_kind!r}"


def build_head(in_features: int, out_features: int, space: Space, norm: str = HEAD_NORMS[0]) -> nn.Module:
    """The head whose outputs ``space`` takes: ``HyperbolicHead(..., norm=norm)`` for ball points,
    else ``nn.Linear`` (``norm`` unused); ``(B, in_features)`` → ``(B, out_features)``."""
    if space.takes_points:
        return HyperbolicHead(in_features, out_features, c=space.c, clip_r=space.clip_r, norm=norm)
    return nn.Linear(in_features, out_features)
