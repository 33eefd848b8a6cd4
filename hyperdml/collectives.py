"""Small ``torch.distributed`` helpers: who am I, and gather a tensor from every rank.

Outside an initialised process group (or with a world of one) every helper is the identity:
``world_size() == 1``, ``rank() == 0``, the gathers return their input. The losses (Calibrate
Proxy's queues) and the trainer use them.

Per-rank batch sizes: the gathers concatenate along dim 0 in rank order. Each gather is two
collectives: a small ``all_gather`` of every rank's ``t.shape[0]``, then the rows, padded to the
largest size and trimmed, so unequal sizes are handled (equal ones, as
``DistributedClassBalancedSampler`` yields, need no padding).
The other dimensions, the dtype and the device type must agree across ranks. Every rank must call
a gather the same number of times, in the same order (it is a collective).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "world_size", "rank", "all_gather_no_grad", "all_gather_with_grad"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _sizes(t: torch.Tensor) -> list[int]:
    """``t.shape[0]`` of every rank, in rank order (one small ``all_gather``)."""
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=t.device)
    out = [torch.empty_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(out, n)
    return [int(v) for v in out]


def _gather(t: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Concatenation over ranks of ``t (n_r, ...)`` → ``(Σ n_r, ...)``, and the sizes ``n_r``."""
    if t.dim() == 0:
        raise ValueError("all_gather needs a tensor with at least one dimension (rows are concatenated)")
    t = t.contiguous()
    sizes = _sizes(t)
    largest = max(sizes)
    padded = t
    if t.shape[0] < largest:
        padded = torch.cat([t, t.new_zeros((largest - t.shape[0], *t.shape[1:]))], dim=0)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0), sizes


def all_gather_no_grad(t: torch.Tensor) -> torch.Tensor:
    """Rows of ``t (n, ...)`` from every rank, concatenated in rank order → ``(Σ n_r, ...)``, detached.

    The identity (``t`` itself) when not distributed. Any dtype the backend supports (float, int64
    labels, ...); on NCCL ``t`` must be on this rank's GPU.
    """
    if not is_distributed():
        return t
    with torch.no_grad():
        return _gather(t.detach())[0]


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the incoming gradients over ranks, then keeps the local rows."""

    @staticmethod
    def forward(ctx, t):
        out, sizes = _gather(t)
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)  # all_reduce writes in place
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def all_gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Like :func:`all_gather_no_grad` (``(n, ...)`` → ``(Σ n_r, ...)``), but differentiable.

    The gradient that reaches ``t`` is the sum over ranks of the gradients each rank's graph sends
    to this rank's rows (an ``all_reduce`` in the backward). So when every rank computes a loss on
    the gathered tensor and DDP averages the parameter gradients, the result is the gradient of the
    mean of the per-rank losses, cross-rank terms included. Every rank must call ``backward``
    through it (a collective). The identity when not distributed.
    """
    if not is_distributed():
        return t
    return _AllGatherWithGrad.apply(t)
