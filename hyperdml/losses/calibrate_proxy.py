"""Calibrate Proxy (CP): a global center per class and a calibration term around any proxy loss.

After "Robust Calibrate Proxy Loss for Deep Metric Learning" (CP+PA, CP+NCA, CP+SoftTriple).
The wrapper keeps one FIFO queue of past (detached) embeddings per class, adds the mean
similarity to a class's queue, centred over the classes and weighted by ``center_weight``, to the
base loss's class similarity (the *composite* similarity), and pulls every proxy toward its
class's queued embeddings (the *calibration* term). The
choices the paper leaves open are listed in :class:`CalibrateProxy`'s docstring and in
``docs/wrappers.md``.
"""

from __future__ import annotations

import math
import numbers

import torch

from hyperdml import distributed
from hyperdml.losses.base import ProxyLoss
from hyperdml.losses.wrappers import ProxyLossWrapper

__all__ = ["CalibrateProxy"]


class CalibrateProxy(ProxyLossWrapper):
    """Calibrate Proxy around a proxy loss: ``loss(embeddings (B, D), labels (B,))`` → scalar.

    ``CalibrateProxy(ProxyAnchor(C, D))``, ``CalibrateProxy(SoftTriple(C, D, space=PoincareSpace()))``:
    any :class:`~hyperdml.losses.base.ProxyLoss` (its ``K`` proxies per class included), in either
    space. The wrapped loss is :attr:`base` (its proxies ``loss.base.proxies``).

    - **Global center.** A FIFO queue per class of past embeddings (detached, as points of the
      space: ``base.embed(x)``, so Poincaré queues hold ball points), capacity ``queue_size``
      (``M``). Every forward *in training mode* enqueues the batch under its labels after the
      loss is computed (the loss of a step sees the queues as they were before that step's batch,
      as MoCo); the oldest leave first; when a class has more than ``M`` samples in one batch its
      last ``M`` are kept. :meth:`class_queue` shows a class's queue, oldest first. Eval mode
      never enqueues.
    - **Composite similarity** (from ``start_epoch`` on): with the proxy term
      ``s_p(x, c) = base.class_similarity(x)_c`` (the base's own combination of its ``K``
      proxies, e.g. SoftTriple's softmax at temperature γ) and the global term
      ``g(x, c) = mean_{q ∈ queue_c} space.similarity(embed(x), q)``::

          s(x, c) = s_p(x, c) + w · (g(x, c) − ḡ(x)),   ḡ(x) = mean of g(x, c') over the classes c'
                                                        with a non-empty queue

      ``w = center_weight`` (default 0.5). A class with an empty queue gets the proxy term only.
      The base's stage 2 (``loss_from_similarity``) is applied to ``s`` with its own
      hyperparameters, and the base's regulariser is added. *Why centred*: embeddings of
      different classes share a common direction (a narrow cone; in our training runs the
      cosine between samples of different classes is ≈ 0.65–0.9), so ``g`` is ≈ +0.7 for every
      class, positives and negatives alike. Added as it is, that offset moves all of
      Proxy-Anchor's negatives above its threshold ``−m`` and all positives above ``+m``
      (pure repulsion, no attraction, at α = 32) and training collapses. ``g − ḡ`` keeps what
      tells the classes apart and has mean 0 over the classes, so the similarities stay where
      the base's margin and scale expect them; softmax-based bases (Proxy-NCA, SoftTriple) are
      invariant to the per-sample shift ``ḡ(x)`` anyway. In the cosine space
      ``g(x, c) − ḡ(x) = ⟨x̂, centre_c − μ⟩`` (``μ`` the mean of the non-empty class centres),
      so ``|s − s_p| ≤ w·‖centre_c − μ‖ ≤ 2w``.
    - **Calibration** (from ``start_epoch`` on): ``calibration_weight ×`` the mean, over all pairs
      (proxy of class c, embedding queued for class c), of their squared distance: in
      :class:`~hyperdml.spaces.EuclideanSpace` (cosine) the squared distance of the
      L2-normalised vectors ``‖p̂ − q̂‖² = 2 − 2cos(p, q)`` (the cosine space only sees
      directions); in :class:`~hyperdml.spaces.PoincareSpace` the squared geodesic distance
      ``d_c(p, q)²``. Each of a class's ``K`` proxies is compared with the whole queue of its
      class. Gradients reach the proxies only (the queue is detached).
    - Before ``start_epoch`` the value is exactly (bitwise) ``base(embeddings, labels)``; the
      queues still fill. :meth:`set_epoch` tells the epoch (the trainer calls it).
    - **Distributed.** Under ``torch.distributed`` the embeddings and labels to enqueue are first
      gathered from all ranks (``hyperdml.distributed.all_gather_no_grad``), so every rank holds
      the same queues; every rank must therefore run the same number of training forwards.
      Per-rank batch sizes may differ. A caller that already passes the all-gathered global
      batch calls ``set_gathered_inputs(True)`` (or sets ``gather_queue=False``).

    Memory: the queues are buffers ``queue (C, M, D)``, ``queue_ptr (C,)``, ``queue_count (C,)``
    allocated once (in the base's proxy dtype/device); they live in ``state_dict`` and move with
    ``.to()``. Enqueueing is vectorised and synchronisation-free. In the cosine space both terms
    are linear in the queued unit vectors (``mean_m cos(x, q_m) = ⟨x̂, centre_c⟩``,
    ``mean_m ‖p̂ − q̂_m‖² = 2 − 2⟨p̂, centre_c⟩``, ``centre_c`` the mean of class c's unit
    vectors), so they cost a ``(B, C)`` and a ``(C, K)`` product; in the ball the queue term forms
    the ``(B, C·M)`` distances (:func:`hyperdml.ops.poincare_cdist`) and a masked mean, the
    calibration a batched ``(C, K, M)`` one, and the queue is copied once per step (autograd
    keeps it for the backward while the next enqueue overwrites the buffer).

    Args:
        base: the proxy loss to wrap (``TypeError`` otherwise).
        queue_size: ``M`` ≥ 1, embeddings kept per class (paper: 30; 3000 for CUB).
        start_epoch: first epoch (0-based) with the composite similarity and calibration (paper: 12).
        calibration_weight: ``λ`` ≥ 0 of the calibration term (paper: 1).
        center_weight: ``w`` ≥ 0 of the centred global term in the composite similarity (0: the
            proxy term only, i.e. calibration alone).
        gather_queue: under ``torch.distributed``, all-gather what is enqueued (default True).
            Set it to False when the inputs already are the all-gathered global batch (a
            trainer that gathers the embeddings before the loss, as ``hyperdml.train`` does);
            the queues are then identical on every rank without a second gather.

    Attributes:
        epoch: the epoch last given to :meth:`set_epoch` (0 at first; saved in ``state_dict``).
        parts: after each call, ``{"base": …, "calibration": …}`` (detached) for logging; before
            ``start_epoch`` only ``"base"``.
    """

    def __init__(
        self,
        base: ProxyLoss,
        queue_size: int = 30,
        start_epoch: int = 12,
        calibration_weight: float = 1.0,
        center_weight: float = 0.5,
        *,
        gather_queue: bool = True,
    ):
        super().__init__(base)
        if isinstance(queue_size, bool) or not isinstance(queue_size, numbers.Integral) or queue_size < 1:
            raise ValueError(f"queue_size must be a positive int (embeddings kept per class), got {queue_size!r}")
        weight = calibration_weight
        if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"calibration_weight must be a finite number >= 0, got {calibration_weight!r}")
        if isinstance(center_weight, bool) or not (
            isinstance(center_weight, numbers.Real) and math.isfinite(center_weight) and center_weight >= 0
        ):
            raise ValueError(f"center_weight must be a finite number >= 0, got {center_weight!r}")
        self.queue_size, self.start_epoch = int(queue_size), self._check_epoch(start_epoch, "start_epoch")
        self.calibration_weight = float(calibration_weight)
        self.center_weight = float(center_weight)
        self.gather_queue = bool(gather_queue)
        self.epoch = 0
        self.parts: dict[str, torch.Tensor] = {}
        self._summary = None  # the queues' summary, set during one forward only
        p = base.proxies
        c, d, m = base.num_classes, base.embedding_size, self.queue_size
        self.register_buffer("queue", torch.zeros(c, m, d, dtype=p.dtype, device=p.device))
        self.register_buffer("queue_ptr", torch.zeros(c, dtype=torch.long, device=p.device))
        self.register_buffer("queue_count", torch.zeros(c, dtype=torch.long, device=p.device))

    def extra_repr(self) -> str:
        return (
            f"queue_size={self.queue_size}, start_epoch={self.start_epoch}, "
            f"calibration_weight={self.calibration_weight}, center_weight={self.center_weight}, "
            f"gather_queue={self.gather_queue}, epoch={self.epoch}"
        )

    # -- epoch ---------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the composite similarity and the calibration are on (``epoch >= start_epoch``)."""
        return self.epoch >= self.start_epoch

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the (0-based) epoch; the composite similarity starts at ``start_epoch``."""
        self.epoch = self._check_epoch(epoch)

    def set_gathered_inputs(self, gathered: bool) -> None:
        """Inputs that already are the all-gathered global batch are enqueued as they are
        (``gather_queue = not gathered``); inputs local to this process are gathered first."""
        self.gather_queue = not bool(gathered)
        super().set_gathered_inputs(gathered)

    def get_extra_state(self):
        """The epoch, stored in ``state_dict`` as ``_extra_state``."""
        return {"epoch": self.epoch}

    def set_extra_state(self, state) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.epoch = int(state["epoch"])

    # -- queues --------------------------------------------------------------------------------

    def _valid_mask(self) -> torch.Tensor:
        """``(C, M)`` bool: slot m of class c holds an embedding (slots fill from 0 until full)."""
        slots = torch.arange(self.queue_size, device=self.queue.device)
        return slots[None, :] < self.queue_count[:, None]

    def class_queue(self, c: int) -> torch.Tensor:
        """Class ``c``'s queued embeddings (points of the space), oldest first: ``(n_c, D)``, ``n_c ≤ M``."""
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < self.num_classes:
            raise ValueError(f"class index must be an int in [0, {self.num_classes}), got {c!r}")
        n, m = int(self.queue_count[c]), self.queue_size
        start = (int(self.queue_ptr[c]) - n) % m
        idx = (start + torch.arange(n, device=self.queue.device)) % m
        return self.queue[c, idx].clone()

    @torch.no_grad()
    def enqueue(self, points: torch.Tensor, labels: torch.Tensor) -> None:
        """Push ``points (B, D)`` (already in the space) into their classes' queues, ``labels (B,)``.

        Local to this process (``forward`` gathers across ranks first). Vectorised: each sample's
        rank within its class in the batch (stable sort + cumulative counts) gives its slot
        ``(ptr_c + rank) mod M``; when a class has more than ``M`` samples, every write to a slot
        carries the value of the last sample that lands there, so the last ``M`` are kept and the
        writes are deterministic without a host synchronisation.
        """
        c, m = self.num_classes, self.queue_size
        labels = labels.to(self.queue.device).long()
        points = points.detach().to(device=self.queue.device, dtype=self.queue.dtype)
        if points.dim() != 2 or points.shape != (labels.shape[0], self.embedding_size):
            raise ValueError(
                f"enqueue needs points (B, {self.embedding_size}) and labels (B,), got "
                f"{tuple(points.shape)} and {tuple(labels.shape)}"
            )
        if labels.numel() == 0:
            return
        counts = torch.bincount(labels, minlength=c)[:c]  # (C,)
        order = torch.argsort(labels, stable=True)
        cls = labels[order]
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(labels.shape[0], device=labels.device) - starts[cls]
        winner = rank + m * torch.div(counts[cls] - 1 - rank, m, rounding_mode="floor")
        values = points[order][starts[cls] + winner]
        slot = (self.queue_ptr[cls] + rank) % m
        self.queue.index_put_((cls, slot), values)
        self.queue_ptr.copy_((self.queue_ptr + counts) % m)
        self.queue_count.copy_((self.queue_count + counts).clamp_max(m))

    def reset_queues(self) -> None:
        """Empty every queue (the buffers are kept, zeroed)."""
        self.queue.zero_()
        self.queue_ptr.zero_()
        self.queue_count.zero_()

    # -- the two terms -------------------------------------------------------------------------

    def queue_summary(self):
        """What the space needs of the queues for both terms (:meth:`~hyperdml.spaces.Space.summarize_sets`):
        in the cosine space each class's mean unit vector, in the ball a copy of the queues."""
        if self._summary is not None:
            return self._summary
        return self.base.space.summarize_sets(self.queue, self.queue_count)

    def global_similarity(self, points: torch.Tensor) -> torch.Tensor:
        """``points (B, D)`` in the space → ``(B, C)``: mean similarity to each class's queue (0 if empty)."""
        return self.base.space.mean_similarity(points, self.queue_summary())

    def centred_global_similarity(self, points: torch.Tensor) -> torch.Tensor:
        """``points (B, D)`` in the space → ``(B, C)``: ``g(x, c) − ḡ(x)`` (0 for an empty queue).

        ``g`` is :meth:`global_similarity`, ``ḡ(x)`` its mean over the classes with a non-empty
        queue, so each row has mean 0 over those classes (all 0 when every queue is empty).
        """
        g = self.global_similarity(points)
        filled = self.queue_count > 0  # (C,)
        mean = g.sum(dim=1, keepdim=True) / filled.sum().clamp_min(1).to(g.dtype)  # empty queues add 0
        return torch.where(filled, g - mean, torch.zeros((), dtype=g.dtype, device=g.device))

    def composite_similarity(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Head outputs ``(B, D)`` → ``(B, C)``: ``base.class_similarity + center_weight ·`` the
        centred global similarity (see the class docstring; always computed, whatever the epoch)."""
        sim = self.base.class_similarity(embeddings)
        if self.center_weight == 0:
            return sim
        return sim + self.center_weight * self.centred_global_similarity(self.base.embed(embeddings))

    def calibration(self) -> torch.Tensor:
        """``calibration_weight ×`` mean squared distance, proxies to their class's queue → scalar.

        0 (with a graph to the proxies) when every queue is empty; not computed when
        ``calibration_weight == 0``.
        """
        base = self.base
        c, k, d = base.num_classes, base.proxies_per_class, base.embedding_size
        proxies = base.proxy_points().view(c, k, d)
        if self.calibration_weight == 0:
            return proxies.sum() * 0.0
        msd = base.space.mean_sq_distance(proxies, self.queue_summary())  # (C, K)
        total = (self.queue_count.to(msd.dtype)[:, None] * msd).sum()
        pairs = (self.queue_count.sum() * k).clamp_min(1).to(total.dtype)
        return self.calibration_weight * (total / pairs)

    # -- forward -------------------------------------------------------------------------------

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``embeddings (B, D)`` head outputs, ``labels (B,)`` integer classes → scalar loss."""
        base = self.base
        labels = base.check_inputs(embeddings, labels)
        if not self.active:
            loss = base.compute(embeddings, labels)
            self.parts = {"base": loss.detach()}
        else:
            self._summary = self.queue_summary()  # both terms read the queues: summarise them once
            try:
                sim = self.composite_similarity(embeddings)
                main = base.loss_from_similarity(sim, labels)
                for reg in (base.regularizer(), base.embedding_regularization(embeddings)):
                    main = main if reg is None else main + reg
                cal = self.calibration()
            finally:
                self._summary = None
            loss = main + cal
            self.parts = {"base": main.detach(), "calibration": cal.detach()}
        if self.training:
            with torch.no_grad():
                points = base.embed(embeddings.detach())
            if self.gather_queue:
                points, labels = distributed.all_gather_no_grad(points), distributed.all_gather_no_grad(labels)
            self.enqueue(points, labels)
        return loss
