"""Hierarchical Proxy-based Loss (HPL): an implicit hierarchy of proxies around any proxy loss.

After Yang et al., "Hierarchical Proxy-based Loss for Deep Metric Learning" (WACV 2022). Only
the abstract is public, so the construction below is ours where it is silent (listed in
:class:`HierarchicalProxy`'s docstring and in ``docs/wrappers.md``): class proxies are clustered
by k-means (faiss) into groups, each group gets a learnable proxy, samples take their class's
group as pseudo-label, and the base loss's stage 2 runs again at every level.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

from hyperdml import collectives
from hyperdml.losses.base import _HALF, ProxyLoss
from hyperdml.losses.wrappers import ProxyLossWrapper
from hyperdml.metrics.clustering import kmeans

__all__ = ["HierarchicalProxy", "default_levels"]


def default_levels(num_classes: int) -> tuple[int]:
    """HPL's default hierarchy for ``num_classes`` classes: one level of ``min(8, max(2, C // 2))`` groups.

    Groups of two classes or more on average, at most 8 (the default for 16 classes and more).
    ``ValueError`` below 3 classes: a level needs at least 2 groups and fewer groups than classes.
    """
    c = int(num_classes)
    if c < 3:
        raise ValueError(f"HierarchicalProxy needs at least 3 classes for a level of groups (2 or more groups, "
                         f"fewer than the classes), got num_classes={c}")
    return (min(8, max(2, c // 2)),)


class HierarchicalProxy(ProxyLossWrapper):
    """HPL around a proxy loss: ``loss(embeddings (B, D), labels (B,))`` → scalar.

    ``HierarchicalProxy(ProxyAnchor(C, D), levels=(8,), level_weights=(1.0, 0.5))``: any
    :class:`~hyperdml.losses.base.ProxyLoss`, either space. The wrapped loss is :attr:`base`.

    Level 0 is the base loss itself (class similarity with the base's ``K`` proxies per class).
    Level ``l ≥ 1`` has ``levels[l−1]`` groups, each with one learnable proxy
    (:attr:`group_proxies` ``[l−1]``, ``(levels[l−1], D)``, made by the base's space: a
    ``geoopt.ManifoldParameter`` in the ball, like the base's proxies).

    ``L = Σ_l w_l · base.loss_from_similarity(s_l, y_l) + base.regularizer()`` where
    ``s_0 = base.class_similarity(x)``, ``s_l = space.similarity(embed(x), group points of level
    l)`` ``(B, levels[l−1])``, ``y_0 = y`` and ``y_l = assignment_l[y_{l−1}]`` (the class's group:
    the pseudo-label). A level with weight 0 is not computed.

    Our choices (the paper's abstract leaves them open):

    - Clustering: k-means (:func:`hyperdml.metrics.clustering.kmeans`, faiss, seeded, best of 10 runs) of the class proxies, one
      representative per class (the space's ``class_mean`` of its ``K`` proxies); level ``l+1``
      clusters level ``l``'s group proxies. k-means runs on the space's ``features``: in
      :class:`~hyperdml.spaces.EuclideanSpace` (cosine) the unit vectors, spherical k-means; in
      :class:`~hyperdml.spaces.PoincareSpace` the tangent vectors at the origin (``logmap0``; the
      centroids go back by ``proxies_from_features``: clipping and ``expmap0``).
    - A group proxy is (re)initialised at its centroid whenever the groups are recomputed; new
      groups are matched to the old group proxies (Hungarian assignment on the distance between
      new centroids and old proxies), so a group keeps its index across re-clusterings.
    - Group proxies are separate parameters: the class proxies get gradients from level 0 only;
      the hierarchy reaches them through the embeddings and through re-clustering.
    - Re-clustering: lazily at the first forward if never clustered, then in :meth:`set_epoch`
      when ``epoch % recluster_every == 0`` (``recluster_every=None``: only once). The
      assignments are buffers (``assignment_1``, … in ``state_dict``); the last clustering epoch
      is saved too, so a resumed run does not re-cluster the same epoch again.
    - Optimiser state: the group proxies are written in place (``copy_``), so the optimiser keeps
      its references; its moments (Adam's) for them are kept as they are (with the matching
      above a group stays the same group). :meth:`reset_optimizer_state` drops them instead.
    - Under ``torch.distributed`` the groups and group proxies computed on rank 0 are broadcast
      to all ranks after each clustering.

    Args:
        base: the proxy loss to wrap (``TypeError`` otherwise).
        levels: group counts of the higher levels, strictly decreasing, first one
            ``< num_classes``, each ``≥ 2``. Default ``()`` (or ``None``): one level of
            :func:`default_levels` groups, ``min(8, max(2, C // 2))`` for ``C ≥ 3`` classes (8 from
            16 classes on; a hierarchy needs at least 3 classes).
        level_weights: ``len(levels) + 1`` weights ``≥ 0``; the first is level 0's (the classes).
        recluster_every: re-cluster every this many epochs (``None``: cluster once).
        seed: seed of the k-means (each clustering uses ``seed + 1000·n + l``, n the number of
            clusterings so far, l the level).

    Attributes:
        epoch: the last epoch given to :meth:`set_epoch`.
        parts: after each call the weighted terms ``{"level0": …, "level1": …}`` (detached).
    """

    def __init__(
        self,
        base: ProxyLoss,
        levels=(),
        level_weights=(1.0, 0.5),
        recluster_every: int | None = 5,
        seed: int = 0,
    ):
        super().__init__(base)
        if levels is None or (isinstance(levels, (list, tuple)) and not levels):
            levels = default_levels(base.num_classes)
        levels = tuple(levels) if isinstance(levels, (list, tuple)) else (levels,)
        weights = tuple(level_weights) if isinstance(level_weights, (list, tuple)) else (level_weights,)
        for n in levels:
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
                raise ValueError(f"levels must be ints >= 2 (groups per level), got {levels!r}")
        if levels[0] >= base.num_classes or any(a <= b for a, b in zip(levels, levels[1:])):
            raise ValueError(
                f"levels must be strictly decreasing and below num_classes={base.num_classes}, got {levels!r}"
            )
        if len(weights) != len(levels) + 1:
            raise ValueError(
                f"level_weights needs len(levels) + 1 = {len(levels) + 1} weights (level 0 = the classes first), "
                f"got {len(weights)}"
            )
        for w in weights:
            if not (isinstance(w, numbers.Real) and math.isfinite(w) and w >= 0):
                raise ValueError(f"level_weights must be finite numbers >= 0, got {level_weights!r}")
        every = recluster_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1):
            raise ValueError(f"recluster_every must be a positive int or None, got {recluster_every!r}")
        self.levels = tuple(int(n) for n in levels)
        self.level_weights = tuple(float(w) for w in weights)
        self.recluster_every = None if recluster_every is None else int(recluster_every)
        self.seed = int(seed)
        self.epoch = 0
        self.clustered_epoch = -1  # -1: never clustered
        self.num_clusterings = 0
        self.parts: dict[str, torch.Tensor] = {}
        ref = base.proxies
        params = []
        for n in self.levels:
            p = base.space.init_proxies(n, base.embedding_size)
            p.data = p.data.to(device=ref.device, dtype=ref.dtype)
            params.append(p)
        self.group_proxies = nn.ParameterList(params)
        sizes = (base.num_classes, *self.levels)
        for level in range(1, len(sizes)):
            assignment = torch.zeros(sizes[level - 1], dtype=torch.long, device=ref.device)
            self.register_buffer(f"assignment_{level}", assignment)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, level_weights={self.level_weights}, "
            f"recluster_every={self.recluster_every}, seed={self.seed}"
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def clustered(self) -> bool:
        """Whether the groups have been computed (at least once)."""
        return self.clustered_epoch >= 0

    def assignments(self) -> list[torch.Tensor]:
        """``[assignment_1 (C,), assignment_2 (levels[0],), …]``: group of each node of the level below."""
        return [getattr(self, f"assignment_{level}") for level in range(1, len(self.levels) + 1)]

    def group_labels(self, labels: torch.Tensor) -> list[torch.Tensor]:
        """Class labels ``(B,)`` → pseudo-labels ``[y_1 (B,), …, y_L (B,)]`` of the higher levels."""
        out, y = [], labels.long()
        for assign in self.assignments():
            y = assign[y]
            out.append(y)
        return out

    def class_super_labels(self, level: int = 1) -> torch.Tensor:
        """Group of every class at ``level`` ≥ 1: ``(C,)`` int64."""
        if not 1 <= level <= len(self.levels):
            raise ValueError(f"level must be in [1, {len(self.levels)}], got {level}")
        return self.group_labels(torch.arange(self.num_classes, device=self.assignment_1.device))[level - 1]

    def group_points(self, level: int) -> torch.Tensor:
        """Level ``l ≥ 1``'s group proxies as points of the space ``(levels[l−1], D)``."""
        if not 1 <= level <= len(self.levels):
            raise ValueError(f"level must be in [1, {len(self.levels)}], got {level}")
        return self.base.space.proxy_points(self.group_proxies[level - 1])

    def set_epoch(self, epoch: int) -> None:
        """Tell the epoch; re-clusters when ``epoch % recluster_every == 0`` (not twice for one epoch)."""
        self.epoch = self._check_epoch(epoch)
        if (
            self.recluster_every is not None
            and self.epoch % self.recluster_every == 0
            and self.clustered_epoch != self.epoch
        ):
            self.recluster()

    def get_extra_state(self):
        """Epoch, last clustering epoch and clustering count, stored in ``state_dict`` as ``_extra_state``."""
        return {"epoch": self.epoch, "clustered_epoch": self.clustered_epoch, "num_clusterings": self.num_clusterings}

    def set_extra_state(self, state) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.epoch = int(state["epoch"])
        self.clustered_epoch = int(state["clustered_epoch"])
        self.num_clusterings = int(state["num_clusterings"])

    def reset_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop ``optimizer``'s per-parameter state (e.g. Adam moments) of the group proxies.

        Call it after a re-clustering if stale moments should not carry over; the optimiser
        re-initialises the state at its next step.
        """
        for p in self.group_proxies:
            optimizer.state.pop(p, None)

    # -- clustering ----------------------------------------------------------------------------

    def _to_features(self, points: torch.Tensor) -> torch.Tensor:
        """Points of the space ``(n, D)`` → the vectors k-means runs on (``space.features``)."""
        return self.base.space.features(points.detach().float())

    def _from_features(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """k-means centroids ``(k, D)`` → the value of a group-proxy parameter ``like``."""
        return self.base.space.proxies_from_features(v).to(device=like.device, dtype=like.dtype)

    def class_representatives(self) -> torch.Tensor:
        """One k-means input per class ``(C, D)``: the features of the space's mean of its ``K`` proxies
        (``space.class_mean``)."""
        base = self.base
        points = base.proxy_points().detach().float().view(base.num_classes, base.proxies_per_class, -1)
        return self._to_features(base.space.class_mean(points))

    @torch.no_grad()
    def recluster(self) -> None:
        """Recompute every level's groups and re-initialise the group proxies at the centroids."""
        from scipy.optimize import linear_sum_assignment

        feats = self.class_representatives()
        spherical = self.base.space.spherical_features
        for level, k in enumerate(self.levels, start=1):
            assign, cent = kmeans(
                feats.cpu().numpy(), k, seed=self.seed + 1000 * self.num_clusterings + level, spherical=spherical
            )
            param = self.group_proxies[level - 1]
            if self.clustered:  # keep group indices: match the new centroids to the old proxies
                old = self._to_features(self.group_points(level)).cpu().numpy()
                cost = ((cent[:, None, :] - old[None, :, :]) ** 2).sum(-1)
                rows, cols = linear_sum_assignment(cost)
                perm = np.empty(k, dtype=np.int64)
                perm[rows] = cols  # new cluster rows[i] becomes group cols[i]
                assign = perm[assign]
                cent_sorted = np.empty_like(cent)
                cent_sorted[perm] = cent
                cent = cent_sorted
            centroids = torch.from_numpy(cent)
            param.copy_(self._from_features(centroids, param))
            getattr(self, f"assignment_{level}").copy_(torch.from_numpy(assign))
            feats = self._to_features(self.group_points(level))
        if collectives.is_distributed():
            import torch.distributed as dist

            for t in [*self.assignments(), *self.group_proxies]:
                dist.broadcast(t.data, src=0)
        self.num_clusterings += 1
        self.clustered_epoch = self.epoch

    # -- forward -------------------------------------------------------------------------------

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``embeddings (B, D)`` head outputs, ``labels (B,)`` integer classes → scalar loss."""
        base = self.base
        labels = base.check_inputs(embeddings, labels)
        if not self.clustered:
            self.recluster()
        all_labels = [labels, *self.group_labels(labels)]
        points = None
        total, parts = None, {}
        for level, (w, y) in enumerate(zip(self.level_weights, all_labels)):
            if w == 0:
                continue
            if level == 0:
                sim = base.class_similarity(embeddings)
            else:
                points = base.embed(embeddings) if points is None else points
                sim = base.space.similarity(points, self.group_points(level))
                sim = sim.float() if sim.dtype in _HALF else sim
            term = w * base.loss_from_similarity(sim, y)
            parts[f"level{level}"] = term.detach()
            total = term if total is None else total + term
        for name, reg in (("regularizer", base.regularizer()),
                          ("embedding_regularizer", base.embedding_regularization(embeddings))):
            if reg is not None:
                parts[name] = torch.as_tensor(reg).detach()
                total = reg if total is None else total + reg
        if total is None:  # every weight 0 and no regulariser
            total = base.proxies.sum() * 0.0
        self.parts = parts
        return total
