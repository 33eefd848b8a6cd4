"""``CollapseMonitor``: notices when a hyperbolic loss's inputs have collapsed to one point.

A head whose outputs all grow past the clipping radius *and* point the same way feeds the loss
(nearly) one point of the ball: the clip passes only tiny tangential gradients and training
stalls. Lying on the clipping sphere alone is no symptom (well-trained normalised heads keep most
of a batch there, spread over directions), so the monitor asks for both, batch after batch.
"""

from __future__ import annotations

import torch

from hyperdml.spaces import Space

__all__ = ["CollapseMonitor"]


class CollapseMonitor:
    """Counts consecutive batches whose head outputs ``h (B, D)`` have collapsed.

    A batch has collapsed when, by :meth:`~hyperdml.spaces.Space.collapse_stats`, at least
    :attr:`fraction` of it lies on the clipping sphere and its mean resultant length
    ``‖mean_i h_i/‖h_i‖‖`` is at least :attr:`alignment`. The count stays on the batch's device
    and is read (one host sync) every :attr:`check_every` calls; :meth:`update` reports once,
    at the first read that finds :attr:`calls` collapsed batches in a row.
    """

    #: least fraction of a batch on the clipping sphere
    fraction: float = 0.9
    #: least mean resultant length of the directions (1: one direction)
    alignment: float = 0.999
    #: consecutive collapsed batches before :meth:`update` reports
    calls: int = 50
    #: calls between two reads of the count
    check_every: int = 10

    def __init__(self):
        self.reported = False
        self._run: torch.Tensor | None = None  # consecutive collapsed batches, on the batch's device
        self._seen = 0

    def update(self, space: Space, h: torch.Tensor) -> tuple[float, float] | None:
        """Record one batch of head outputs ``h (B, D)`` of ``space``; returns its ``(fraction,
        resultant length)`` when this call finds :attr:`calls` collapsed batches in a row for the
        first time (then :attr:`reported` is True and later calls return None), else None."""
        if self.reported:
            return None
        stats = space.collapse_stats(h)
        if stats is None:
            return None
        collapsed = ((stats[0] >= self.fraction) & (stats[1] >= self.alignment)).long()
        same_device = self._run is not None and self._run.device == collapsed.device
        self._run = (self._run + 1) * collapsed if same_device else collapsed
        self._seen += 1
        if self._seen % self.check_every or int(self._run) < self.calls:
            return None
        self.reported = True
        frac, resultant = stats.tolist()
        return frac, resultant
