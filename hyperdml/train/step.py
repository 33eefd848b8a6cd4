"""One optimiser step of the trainer, and the checks that stop a run that diverged.

Per step: the model's heads on this process's batch (under autocast when ``amp`` is set), the
head outputs cast to float32 (the losses' hyperbolic maths never runs in half precision),
all-gathered over processes with gradient so that the loss sees the global batch, the loss
(one embedding argument per head, in the order of ``loss.input_spaces``, then the labels),
backward, the proxies' gradients averaged over processes, gradient clipping, the optimiser step
and the schedule step.

A run that diverged stops with a :class:`~hyperdml.errors.HyperdmlError` naming the step and the
learning rate, instead of training on to chance-level metrics: head outputs or the loss that are
NaN or Inf, a loss that refuses its inputs (proxies gone NaN), or parameters whose global norm is
no longer finite or grew :data:`MAX_NORM_GROWTH` times beyond its value when the run (or the
resumed run) started. A healthy run changes that norm by a small factor (weight decay holds
it); a learning rate many orders of magnitude too large multiplies it by about ``lr·√n`` in a
few steps while the cosine-normalised loss stays finite, the case the other checks miss. The
checks cost one reduction over the parameters per step, next to the loss value that the loop
reads anyway.
"""

from __future__ import annotations

import math

import torch

from hyperdml.distributed import all_gather_no_grad, all_gather_with_grad
from hyperdml.errors import HyperdmlError

__all__ = ["TrainStep", "TrainingDiverged", "parameter_norm", "MAX_NORM_GROWTH"]

#: the global parameter norm may grow this many times over its starting value before the run
#: counts as diverged
MAX_NORM_GROWTH = 1e6


class TrainingDiverged(HyperdmlError):
    """The loss, the head outputs or the parameters of a run became NaN, Inf or exploded."""


def parameter_norm(params: list[torch.Tensor]) -> float:
    """The global L2 norm of ``params`` (one reduction, one device→host copy)."""
    if not params:
        return 0.0
    with torch.no_grad():
        norms = torch._foreach_norm([p.detach() for p in params])
        return float(torch.linalg.vector_norm(torch.stack([n.float() for n in norms])))


class TrainStep:
    """A callable ``step(images, labels, step, epoch) -> loss value`` (``step``: the 1-based index
    of this optimiser step, ``epoch``: the 1-based epoch, both for messages).

    Args:
        net: the model (DDP-wrapped under torchrun), returns ``{head: (B, D)}``.
        loss: the loss; called ``loss(*[outputs[h] for h in heads], labels)``.
        heads: the head names that feed the loss, in its argument order.
        optimizer, schedule: stepped after every backward pass.
        device: of the batch.
        amp_dtype: autocast dtype of the network (None: float32).
        scaler: a ``GradScaler`` with fp16, else None.
        grad_clip: max global gradient norm, or None.
        world: number of processes (the proxies' gradients are averaged over them).
        lr: the configured base learning rate (named in the divergence message).
    """

    def __init__(self, net, loss, heads: tuple[str, ...], optimizer, schedule, *, device, amp_dtype=None, scaler=None,
                 grad_clip: float | None = None, world: int = 1, lr: float = 0.0):
        self.net, self.loss, self.heads = net, loss, tuple(heads)
        self.optimizer, self.schedule = optimizer, schedule
        self.device, self.amp_dtype, self.scaler = device, amp_dtype, scaler
        self.grad_clip, self.world, self.lr = grad_clip, world, lr
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.loss_params = [p for p in loss.parameters() if p.requires_grad]
        self.start_norm = parameter_norm(self.params)

    def _gather(self, t: torch.Tensor, with_grad: bool) -> torch.Tensor:
        if self.world == 1:
            return t
        return all_gather_with_grad(t) if with_grad else all_gather_no_grad(t)

    def _diverged(self, step: int, epoch: int, what: str) -> TrainingDiverged:
        return TrainingDiverged(f"training diverged at step {step} (epoch {epoch}): {what}; lower --lr "
                                f"(now {self.lr:g}), set --grad-clip, or disable --amp")

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, step: int, epoch: int) -> float:
        """One optimiser step on this process's batch; returns the (global-batch) loss value."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            out = self.net(images)
        # gathered first, so that every process takes the same decision below
        out = {k: self._gather(v.float(), True) for k, v in out.items()}
        labels = self._gather(labels, False)
        for head in self.heads:
            if not bool(torch.isfinite(out[head]).all()):
                raise self._diverged(step, epoch, f"the {head} head's outputs are NaN or Inf")
        try:
            loss = self.loss(*[out[h] for h in self.heads], labels)
        except ValueError as exc:  # e.g. proxies that went NaN, points the space cannot take
            raise self._diverged(step, epoch, f"the loss refused its inputs ({str(exc).splitlines()[0]})") from exc
        value = float(loss.detach())
        if not math.isfinite(value):
            raise self._diverged(step, epoch, f"the loss is {value}")
        self.optimizer.zero_grad(set_to_none=True)
        # With W processes each computes the same global-batch loss L. all_gather_with_grad sums
        # the gradients every process sends to this process's rows (W·dL/dz_local), and DDP
        # averages the network's gradients over processes: the network gets dL/dθ. The proxies get
        # dL/dp on every process; they are averaged all the same, to keep the replicas identical.
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.world > 1:
            self._sync_loss_grads()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.schedule.step()
        self._check_parameters(step, epoch)
        return value

    def _check_parameters(self, step: int, epoch: int) -> None:
        norm = parameter_norm(self.params)
        if not math.isfinite(norm):
            raise self._diverged(step, epoch, "the parameters are NaN or Inf")
        if self.start_norm > 0 and norm > MAX_NORM_GROWTH * self.start_norm:
            raise self._diverged(step, epoch, f"the parameters' norm grew from {self.start_norm:.3g} to {norm:.3g}")

    def _sync_loss_grads(self) -> None:
        """Average the loss's (proxies') gradients over processes (one all_reduce)."""
        import torch.distributed as dist

        grads = [p.grad for p in self.loss_params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= float(self.world)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n
