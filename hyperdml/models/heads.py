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

__all__ = ["HyperbolicHead", "build_head"]


class HyperbolicHead(nn.Module):
    """A head that outputs points of the Poincaré ball: LayerNorm → Linear → clip → ``expmap0``.

    ``head(features (B, in_features))`` → ``(B, out_features)`` points with ``‖x‖ < 1/√c``, to be
    given to a hyperbolic loss whose space takes ball points: ``head.space`` is that space
    (``PoincareSpace(c, clip_r, inputs="ball")``), e.g.
    ``ProxyAnchor(C, D, space=head.space)``.

    The features are normalised before the linear map, as the LayerNorm'ed features of the ViTs
    behind Hyp-ViT and HIER are: a plain linear head on unnormalised CNN features grows its outputs
    far past ``clip_r`` within a few steps, every embedding lands on the clipping sphere (same
    depth for all) and training stalls. The LayerNorm keeps the features' scale fixed, so the
    outputs' norms, and so the points' depths, stay informative.

    Args:
        in_features: size of the backbone's features.
        out_features: dimension ``D`` of the ball.
        c: curvature magnitude of the ball (default 0.1, ``PoincareSpace``'s).
        clip_r: feature-clipping radius before ``expmap0`` (default 2.3; None: no clipping).
    """

    def __init__(self, in_features: int, out_features: int, c: float = DEFAULT_CURVATURE,
                 clip_r: float | None = DEFAULT_CLIP_R):
        super().__init__()
        self._tangent_space = PoincareSpace(c=c, clip_r=clip_r)  # clip + expmap0 of the tangent vectors
        self.norm = nn.LayerNorm(in_features)
        self.linear = nn.Linear(in_features, out_features)

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
        return self.linear(self.norm(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` → ball points ``(B, D)`` (float32 at least, outside autocast)."""
        return self._tangent_space.to_space(self.tangent(features), check=False)

    def extra_repr(self) -> str:
        sp = self._tangent_space
        return f"c={sp.c}, clip_r={sp.clip_r}"


def build_head(in_features: int, out_features: int, space: Space) -> nn.Module:
    """The head whose outputs ``space`` takes: :class:`HyperbolicHead` for ball points, else ``nn.Linear``."""
    if space.takes_points:
        return HyperbolicHead(in_features, out_features, c=space.c, clip_r=space.clip_r)
    return nn.Linear(in_features, out_features)
