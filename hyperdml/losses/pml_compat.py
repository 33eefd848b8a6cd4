"""pytorch-metric-learning's call convention for the proxy losses: its keywords and miner output.

:class:`PMLOptions` checks the keyword arguments that PML's ``ProxyAnchorLoss``, ``ProxyNCALoss``
and ``SoftTripleLoss`` take (``reducer``, ``distance``, ``weight_init_func``,
``weight_regularizer``/``weight_reg_weight``, ``embedding_regularizer``/``embedding_reg_weight``,
``collect_stats``): each is either supported with PML's meaning or refused with a one-line error
saying why it has no meaning here. :func:`miner_weights` turns a miner's ``indices_tuple`` into
the per-sample weights PML's proxy losses derive from it (``convert_to_weights``).

PML itself is imported only to recognise the distance and reducer objects a user passes (which
means PML is installed then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from hyperdml.spaces import EuclideanSpace, Space

__all__ = ["PMLOptions", "miner_weights", "check_indices_tuple"]

#: PML's default distance of each loss: (class name, normalize_embeddings, p, power)
_DEFAULT_DISTANCES = {
    "cosine": ("CosineSimilarity", True, 2, 1),
    "squared_l2": ("LpDistance", True, 2, 2),
}
_DISTANCE_TEXT = {"cosine": "CosineSimilarity()", "squared_l2": "LpDistance(power=2)"}


def _describe(obj) -> str:
    return type(obj).__name__ + "(...)"


def _is_default_distance(distance, kind: str) -> bool:
    """Whether ``distance`` is PML's default distance ``kind`` of the loss (exact class, settings)."""
    from pytorch_metric_learning import distances

    name, normalize, p, power = _DEFAULT_DISTANCES[kind]
    return (type(distance) is getattr(distances, name) and bool(distance.normalize_embeddings) == normalize
            and distance.p == p and distance.power == power)


def _reducer_name(reducer, allowed: tuple[str, ...]) -> str | None:
    """The name of PML reducer ``reducer`` if it is one of ``allowed`` (exact class), else None."""
    from pytorch_metric_learning import reducers

    for name in allowed:
        if type(reducer) is getattr(reducers, name):
            return name
    return None


@dataclass
class PMLOptions:
    """PML's keyword arguments of a proxy loss, checked (see :meth:`parse`).

    Attributes:
        space: the loss's space (``distance=`` PML's default distance of the loss gives
            :class:`~hyperdml.spaces.EuclideanSpace`, the geometry in which the losses equal PML's).
        reducer: name of the PML reduction (the loss's ``pml_reducers[0]`` by default).
        weight_init_func: PML's proxy initialiser, or None (the space's initialisation).
        weight_regularizer, weight_reg_weight: a term on the proxy parameter.
        embedding_regularizer, embedding_reg_weight: a term on the embeddings of each call.
    """

    space: Space
    reducer: str
    weight_init_func: Callable | None = None
    weight_regularizer: Callable | None = None
    weight_reg_weight: float = 1.0
    embedding_regularizer: Callable | None = None
    embedding_reg_weight: float = 1.0

    @classmethod
    def parse(cls, loss_name: str, space: Space | None, *, pml_distance: str, pml_reducers: tuple[str, ...],
              reducer: Any = None, distance: Any = None, weight_init_func: Callable | None = None,
              weight_regularizer: Callable | None = None, weight_reg_weight: float = 1.0,
              embedding_regularizer: Callable | None = None, embedding_reg_weight: float = 1.0,
              collect_stats: bool | None = None) -> "PMLOptions":
        """Check PML's keywords for loss ``loss_name`` and resolve the space.

        ``pml_distance`` is the kind of PML's default distance for that loss (``"cosine"``,
        ``"squared_l2"``), ``pml_reducers`` the PML reducers it supports (the default first).
        Raises ``ValueError`` (a keyword with a value that has no meaning here) or ``TypeError``
        (a value of the wrong kind), each a one-line message naming the keyword.
        """
        if distance is not None:
            if not _is_default_distance(distance, pml_distance):
                raise ValueError(
                    f"{loss_name}: distance={_describe(distance)} has no meaning here: the geometry is the loss's "
                    f"space= (EuclideanSpace() is PML's default {_DISTANCE_TEXT[pml_distance]}; "
                    "PoincareSpace(c) is the Poincaré ball)")
            if space is not None and space != EuclideanSpace():
                raise ValueError(f"{loss_name}: distance={_DISTANCE_TEXT[pml_distance]} contradicts space={space!r}; "
                                 "give one of them")
            space = EuclideanSpace()
        name = pml_reducers[0]
        if reducer is not None:
            name = _reducer_name(reducer, pml_reducers)
            if name is None:
                raise ValueError(f"{loss_name}: reducer={_describe(reducer)} has no meaning here: the loss reduces as "
                                 f"PML's {' or '.join(pml_reducers)}")
        if collect_stats:
            raise ValueError(f"{loss_name}: collect_stats=True has no meaning here: hyperdml losses record no PML "
                             "statistics (loss.parts holds the named terms of the last call)")
        for key, fn in (("weight_init_func", weight_init_func), ("weight_regularizer", weight_regularizer),
                        ("embedding_regularizer", embedding_regularizer)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{loss_name}: {key} must be callable, got {type(fn).__name__}")
        from hyperdml.losses.base import check_number  # base imports this module

        space = EuclideanSpace() if space is None else space
        if weight_init_func is not None and space != EuclideanSpace():
            raise ValueError(f"{loss_name}: weight_init_func has no meaning in {space!r}: its proxies are initialised "
                             "as points of that space")
        return cls(space, name, weight_init_func, weight_regularizer,
                   check_number("weight_reg_weight", weight_reg_weight), embedding_regularizer,
                   check_number("embedding_reg_weight", embedding_reg_weight))


def check_indices_tuple(indices_tuple, batch_size: int) -> tuple[torch.Tensor, ...]:
    """Validate a miner's output: a tuple of 3 (triplets) or 4 (pairs) 1-D integer tensors of
    indices in ``[0, batch_size)``; the triplet parts and each pair part have equal lengths."""
    if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (3, 4):
        raise ValueError("indices_tuple must be a miner's output: a tuple of 3 tensors (anchors, positives, negatives) "
                         "or 4 (anchors, positives, anchors, negatives), got "
                         f"{type(indices_tuple).__name__}{'' if not hasattr(indices_tuple, '__len__') else f' of length {len(indices_tuple)}'}")
    for i, t in enumerate(indices_tuple):
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.is_floating_point() or t.is_complex() \
                or t.dtype == torch.bool:
            raise ValueError(f"indices_tuple[{i}] must be a 1-D integer tensor of batch indices, got "
                             f"{type(t).__name__ if not isinstance(t, torch.Tensor) else f'{t.dtype} {tuple(t.shape)}'}")
    lengths = [len(t) for t in indices_tuple]
    if (len(lengths) == 3 and len(set(lengths)) != 1) or (len(lengths) == 4 and (lengths[0] != lengths[1]
                                                                                  or lengths[2] != lengths[3])):
        raise ValueError(f"indices_tuple parts have mismatched lengths {lengths}")
    for i, t in enumerate(indices_tuple):
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= batch_size):
            raise ValueError(f"indices_tuple[{i}] holds indices outside [0, {batch_size}) of the batch")
    return tuple(indices_tuple)


def miner_weights(indices_tuple, batch_size: int, dtype: torch.dtype, device: torch.device,
                  anchors_only: bool = False) -> torch.Tensor | None:
    """Per-sample weights ``(B,)`` from a miner's ``indices_tuple``, as PML's ``convert_to_weights``.

    A sample's weight is the number of times it appears in the tuple (only as an anchor with
    ``anchors_only``, as PML's ``ProxyNCALoss``) divided by the largest count; samples that do not
    appear weigh 0. Returns ``None`` (every weight 1, the loss without a miner) when
    ``indices_tuple`` is None or all its tensors are empty, as PML.
    """
    if indices_tuple is None:
        return None
    indices_tuple = check_indices_tuple(indices_tuple, batch_size)
    if all(len(t) == 0 for t in indices_tuple):
        return None
    if anchors_only:
        parts = [indices_tuple[0]] if len(indices_tuple) == 3 else [indices_tuple[0], indices_tuple[2]]
    else:
        parts = list(indices_tuple)
    indices = torch.cat([t.to(device=device, dtype=torch.long) for t in parts])
    weights = torch.zeros(batch_size, dtype=dtype, device=device)
    if len(indices) == 0:
        return weights
    unique, counts = torch.unique(indices, return_counts=True)
    weights[unique] = counts.to(dtype) / counts.max().to(dtype)
    return weights
