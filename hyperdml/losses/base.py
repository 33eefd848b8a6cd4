"""``ProxyLoss``: the two-stage base class of the proxy losses.

Stage 1, :meth:`ProxyLoss.class_similarity`: head outputs ``(B, D)`` → class similarity
``(B, C)``, through the loss's space (embedding map, similarity to the ``C·K`` proxies, and the
softmax-weighted combination of each class's ``K`` proxies). Stage 2,
:meth:`ProxyLoss.loss_from_similarity`: class similarity and labels → scalar. ``forward``
validates the inputs, runs both stages and adds :meth:`ProxyLoss.regularizer`
(:meth:`ProxyLoss.compute` does the same without the checks). Wrappers (Calibrate
Proxy, HPL) plug into that seam: they may add to the stage-1 similarity, or run stage 2 again on
another similarity matrix (any number of columns).

The call convention is pytorch-metric-learning's: ``loss(embeddings, labels, indices_tuple=None,
ref_emb=None, ref_labels=None)``, PML's constructor keywords where they have a meaning here
(:mod:`hyperdml.losses.pml_compat`) and :meth:`ProxyLoss.get_logits`.
"""

from __future__ import annotations

import numbers
import warnings

import torch
from torch import nn

from hyperdml.losses.collapse import CollapseMonitor
from hyperdml.losses.inputs import check_embeddings, check_inputs, check_number
from hyperdml.losses.pml_compat import PMLOptions, miner_weights
from hyperdml.losses.proxy_set import ProxySet
from hyperdml.spaces import Space

__all__ = ["ProxyLoss", "check_embeddings", "check_inputs", "check_number"]

_HALF = (torch.float16, torch.bfloat16)


class ProxyLoss(nn.Module):
    """Base of the proxy losses: owns the proxies and the space, and runs the two stages.

    Args:
        num_classes: ``C``, number of classes.
        embedding_size: ``D``, dimension of the head output.
        proxies_per_class: ``K``; proxies are ``(C·K, D)``, class-major (rows ``c·K … c·K+K−1``
            belong to class c). ``K > 1`` combines a class's proxies by softmax-weighted
            similarity ``Σ_k softmax_k(s_k / T)·s_k`` (temperature ``T`` = :attr:`proxy_temperature`).
        space: :class:`~hyperdml.spaces.EuclideanSpace` (default) or
            :class:`~hyperdml.spaces.PoincareSpace`.

    pytorch-metric-learning's keywords (keyword-only; each with PML's meaning, anything else is a
    one-line ``ValueError`` saying it has no meaning here):
        distance: PML's default distance of the loss of the same name (``CosineSimilarity()``;
            ``LpDistance(power=2)`` for ProxyNCA) stands for ``space=EuclideanSpace()``; any
            other distance is refused (the geometry is ``space=``).
        reducer: PML's default reducer of the loss (``DivisorReducer()`` for ProxyAnchor,
            ``MeanReducer()`` otherwise); ProxyAnchor also takes ``MeanReducer()`` (both terms
            divided by ``C``, as PML). Other reducers are refused.
        weight_init_func: PML's proxy initialiser (e.g. ``c_f.TorchInitWrapper(torch.nn.init.normal_)``),
            applied to the proxy tensor as PML does (to SoftTriple's ``(D, C·K)`` ``fc``);
            ``EuclideanSpace`` only (other spaces initialise points of their own).
        weight_regularizer, weight_reg_weight: ``weight_reg_weight · weight_regularizer(proxies)``
            is added (the proxy parameter ``(C·K, D)``, PML's ``proxies`` / ``fc.t()``).
        embedding_regularizer, embedding_reg_weight: ``embedding_reg_weight ·
            embedding_regularizer(embeddings)`` is added on every call.
        collect_stats: ``False``/``None`` only (no PML statistics are recorded).

    Attributes:
        proxies: the proxy parameter ``(C·K, D)`` (a ``geoopt.ManifoldParameter`` in the ball for
            ``PoincareSpace``; for ``proxy_param="tangent"`` the tangent vectors, see
            :meth:`proxy_points`).
        check_values: when True (default) ``forward`` also makes the data-dependent checks
            (NaN/Inf embeddings, label range), which synchronise with the device, and watches
            training batches for a collapse (:attr:`collapse_monitor`); set it to False in a
            tuned training loop.
        collapse_monitor: a :class:`~hyperdml.losses.collapse.CollapseMonitor`; in training
            (``loss.training`` and grad enabled) ``forward`` warns once when the batches have
            lain on the clipping sphere, pointing one way, for ``collapse_monitor.calls`` calls
            in a row (training has stalled).
    """

    proxy_temperature: float = 1.0
    #: PML's default distance of the loss of the same name (``"cosine"`` or ``"squared_l2"``).
    pml_distance: str = "cosine"
    #: the PML reducers the loss reproduces, its default first.
    pml_reducers: tuple[str, ...] = ("MeanReducer",)
    #: whether a miner's ``indices_tuple`` weights samples by their anchor appearances only (PML's ProxyNCA).
    miner_anchors_only: bool = False
    #: whether PML initialises the proxies as a ``(D, C·K)`` tensor (SoftTriple's ``fc``).
    pml_transposed_weights: bool = False

    def __init__(self, num_classes: int, embedding_size: int, proxies_per_class: int = 1, space: Space | None = None,
                 *, reducer=None, distance=None, weight_init_func=None, weight_regularizer=None,
                 weight_reg_weight: float = 1.0, embedding_regularizer=None, embedding_reg_weight: float = 1.0,
                 collect_stats: bool | None = None):
        super().__init__()
        sizes = {"num_classes": num_classes, "embedding_size": embedding_size, "proxies_per_class": proxies_per_class}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        num_classes, embedding_size, proxies_per_class = int(num_classes), int(embedding_size), int(proxies_per_class)
        if space is not None and not isinstance(space, Space):
            raise TypeError(
                f"space must be a hyperdml.spaces.Space (EuclideanSpace, PoincareSpace), got {type(space).__name__}"
            )
        pml = PMLOptions.parse(
            type(self).__name__, space, pml_distance=self.pml_distance, pml_reducers=self.pml_reducers,
            reducer=reducer, distance=distance, weight_init_func=weight_init_func,
            weight_regularizer=weight_regularizer, weight_reg_weight=weight_reg_weight,
            embedding_regularizer=embedding_regularizer, embedding_reg_weight=embedding_reg_weight,
            collect_stats=collect_stats,
        )
        space = pml.space
        self.num_classes, self.embedding_size, self.proxies_per_class = num_classes, embedding_size, proxies_per_class
        self.space = space
        num_proxies = num_classes * proxies_per_class
        if pml.weight_init_func is None:
            self.proxies = space.init_proxies(num_proxies, embedding_size)
        else:  # as PML: the initialiser on a fresh tensor (SoftTriple's fc is (D, C·K))
            shape = (embedding_size, num_proxies) if self.pml_transposed_weights else (num_proxies, embedding_size)
            weight = torch.empty(shape)
            with torch.no_grad():
                pml.weight_init_func(weight)
            self.proxies = nn.Parameter((weight.t() if self.pml_transposed_weights else weight).contiguous())
        #: name of the PML reduction this loss reproduces (see ``pml_reducers``)
        self.reducer_name = pml.reducer
        self.weight_regularizer, self.weight_reg_weight = pml.weight_regularizer, pml.weight_reg_weight
        self.embedding_regularizer, self.embedding_reg_weight = pml.embedding_regularizer, pml.embedding_reg_weight
        self.check_values = True
        #: named terms of the last call, detached, for logging (empty: the loss has one term)
        self.parts: dict[str, torch.Tensor] = {}
        self.collapse_monitor = CollapseMonitor()

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, "
            f"proxies_per_class={self.proxies_per_class}, space={self.space!r}"
        )

    # -- the loss protocol (shared with CHEST and the wrappers) ---------------------------------

    @property
    def input_spaces(self) -> tuple[Space, ...]:
        """The space of each embedding argument of ``forward``, in call order: ``(space,)``."""
        return (self.space,)

    def proxy_sets(self) -> dict[str, ProxySet]:
        """The class proxies this loss holds: ``{space.label: ProxySet}``."""
        return {self.space.label: ProxySet.of(self.space, self.proxy_points(), self.num_classes, self.proxies_per_class)}

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the (0-based) epoch; a no-op unless a subclass depends on the epoch."""

    def set_gathered_inputs(self, gathered: bool) -> None:
        """Tell the loss whether each call's embeddings are already the global batch, all-gathered
        over the processes (a DDP trainer that gathers them); a no-op unless the loss gathers
        something itself (:class:`~hyperdml.losses.CalibrateProxy`'s queue)."""

    # -- stage 1 -------------------------------------------------------------------------------

    def proxy_points(self) -> torch.Tensor:
        """The proxies as points of the space, ``(C·K, D)`` (differentiable in :attr:`proxies`)."""
        return self.space.proxy_points(self.proxies)

    def embed(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Head outputs ``(B, D)`` → embeddings in the space ``(B, D)`` (``space.to_space``, unchecked:
        :meth:`check_inputs` checks)."""
        return self.space.to_space(embeddings, check=False)

    def combine_proxies(self, sim: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Per-proxy similarity ``(B, C·K)`` → class similarity ``(B, C)``.

        ``Σ_k softmax_k(s_k / T)·s_k`` over each class's ``K`` proxies (identity for ``K = 1``).
        """
        k = self.proxies_per_class
        if k == 1:
            return sim
        t = self.proxy_temperature if temperature is None else temperature
        s = sim.view(sim.shape[0], -1, k)
        weights = torch.softmax(s * (1.0 / t), dim=2)
        return (weights * s).sum(dim=2)

    def class_similarity(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Stage 1: head outputs ``(B, D)`` → class similarity ``(B, C)`` (float32 at least)."""
        sim = self.space.similarity(self.embed(embeddings), self.proxy_points())
        sim = self.combine_proxies(sim)
        return sim.float() if sim.dtype in _HALF else sim

    # -- stage 2 -------------------------------------------------------------------------------

    def loss_from_similarity(self, sim: torch.Tensor, labels: torch.Tensor,
                             weights: torch.Tensor | None = None) -> torch.Tensor:
        """Stage 2: class similarity ``(B, N)`` and int64 labels ``(B,)`` in ``[0, N)`` → scalar.

        ``N`` is the number of columns of ``sim`` (``num_classes`` here; a wrapper may pass another
        level's similarity). ``weights (B,)``: per-sample miner weights in ``[0, 1]``
        (:meth:`miner_weights`; ``None``: every sample weighs 1), used as PML's loss of the same
        name uses them.
        """
        raise NotImplementedError

    def regularizer(self) -> torch.Tensor | None:
        """A term on the proxies alone, added by ``forward``; ``None`` when there is none.

        Here: PML's ``weight_reg_weight · weight_regularizer(proxies)`` when one was given.
        """
        if self.weight_regularizer is None:
            return None
        return self.weight_reg_weight * self.weight_regularizer(self.proxies)

    def embedding_regularization(self, embeddings: torch.Tensor) -> torch.Tensor | None:
        """PML's ``embedding_reg_weight · embedding_regularizer(embeddings)`` (``None`` without one);
        ``forward`` and the wrappers add it."""
        if self.embedding_regularizer is None:
            return None
        return self.embedding_reg_weight * self.embedding_regularizer(embeddings)

    def miner_weights(self, indices_tuple, batch_size: int, dtype: torch.dtype,
                      device: torch.device) -> torch.Tensor | None:
        """Per-sample weights ``(B,)`` from a miner's ``indices_tuple`` (PML's ``convert_to_weights``;
        anchors only for ProxyNCA), or ``None`` without one (see
        :func:`hyperdml.losses.pml_compat.miner_weights`)."""
        return miner_weights(indices_tuple, batch_size, dtype, device, anchors_only=self.miner_anchors_only)

    # -- forward -------------------------------------------------------------------------------

    def check_inputs(self, embeddings: torch.Tensor, labels: torch.Tensor, name: str = "embeddings") -> torch.Tensor:
        """Validate the inputs (see :func:`check_inputs`) and, with ``check_values``, that the
        proxies are finite (a diverged optimiser step is named, not turned into a NaN loss) and
        records the batch for the collapse warning (:meth:`warn_if_collapsed`); returns the labels
        as int64."""
        labels = check_inputs(embeddings, labels, self.embedding_size, self.num_classes, self.check_values, name,
                              self.space)
        if self.check_values:
            self.check_proxies()
            self.warn_if_collapsed(embeddings, name)
        return labels

    def warn_if_collapsed(self, embeddings: torch.Tensor, name: str = "embeddings") -> bool:
        """Record a training batch of head outputs ``embeddings (B, D)`` in :attr:`collapse_monitor`
        and warn (a ``UserWarning``, once per loss) when it reports a collapse; returns whether it
        warned. Batches outside training (``loss.eval()`` or no grad) are not recorded."""
        if not (self.training and torch.is_grad_enabled()):
            return False
        found = self.collapse_monitor.update(self.space, embeddings)
        if found is None:
            return False
        frac, resultant = found
        warnings.warn(
            f"{type(self).__name__}: for {self.collapse_monitor.calls} training batches in a row, "
            f"{frac:.0%} of the {name} lie on the clipping sphere of {self.space!r}, all pointing one way "
            f"(mean resultant length {resultant:.4f}): the embeddings have collapsed to about one point, "
            "the clip passes only tiny gradients and training has stalled. Feed the loss from a normalised "
            "head: hyperdml.models.HyperbolicHead with space=head.space (hyperdml train --hyperbolic-head "
            "batch or layer); or lower the learning rate, or normalise the backbone's features.",
            stacklevel=3,
        )
        return True

    def check_proxies(self) -> None:
        """Raise ``ValueError`` if the proxy parameter holds NaN or Inf (one host sync)."""
        if not bool(torch.isfinite(self.proxies.detach()).all()):
            raise ValueError(
                f"{type(self).__name__}.proxies contains NaN or Inf (the optimiser diverged? "
                "lower the proxy learning rate or restore a checkpoint)"
            )

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """``forward`` without the input checks (``labels`` int64 on the embeddings' device,
        ``weights`` the miner weights or None)."""
        sim = self.class_similarity(embeddings)
        loss = self.loss_from_similarity(sim, labels, weights)
        terms = {"loss": loss}
        for name, term in (("regularizer", self.regularizer()),
                           ("embedding_regularizer", self.embedding_regularization(embeddings))):
            if term is not None:
                terms[name] = term
                loss = loss + term
        if self.weight_regularizer is not None or self.embedding_regularizer is not None:
            self.parts = {k: torch.as_tensor(v).detach() for k, v in terms.items()}
        return loss

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None,
                ref_emb=None, ref_labels=None) -> torch.Tensor:
        """``embeddings (B, D)`` head outputs, ``labels (B,)`` integer classes → scalar loss.

        PML's call: ``indices_tuple`` (a miner's output, 3 or 4 index tensors) weights the
        samples as PML's loss of the same name does (:meth:`miner_weights`). ``ref_emb`` /
        ``ref_labels`` have no meaning for a proxy loss (the reference set is the proxies; PML's
        proxy losses refuse them too): ``ValueError``.
        """
        if ref_emb is not None or ref_labels is not None:
            raise ValueError(f"{type(self).__name__}: ref_emb/ref_labels have no meaning for a proxy loss "
                             "(embeddings are compared with the proxies)")
        labels = self.check_inputs(embeddings, labels)
        weights = self.miner_weights(indices_tuple, embeddings.shape[0], self._weight_dtype(embeddings),
                                     embeddings.device)
        return self.compute(embeddings, labels, weights)

    @staticmethod
    def _weight_dtype(embeddings: torch.Tensor) -> torch.dtype:
        return torch.float32 if embeddings.dtype in _HALF else embeddings.dtype

    def get_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """PML's ``get_logits``: head outputs ``(B, D)`` → ``(B, C)``, the class similarity (stage 1:
        PML's cosine to the proxies in ``EuclideanSpace``); ProxyNCA returns PML's distances instead."""
        check_embeddings(embeddings, self.embedding_size, self.check_values, "embeddings", self.space)
        return self.class_similarity(embeddings)
