"""Learning-rate schedule per optimiser step: linear warm-up, then cosine, step or constant."""

from __future__ import annotations

import math

__all__ = ["WarmupSchedule", "SCHEDULES"]

#: what follows the warm-up: cosine decay, ×0.5 steps, or a constant rate
SCHEDULES = ("cosine", "step", "constant")


class WarmupSchedule:
    """Sets every parameter group's ``lr`` to ``base_lr · factor(step)``.

    ``factor`` rises linearly from ``1/warmup_steps`` to 1 over the first ``warmup_steps`` steps,
    then follows ``kind``:

    - ``"cosine"``: ``min_mult + (1 − min_mult)·½(1 + cos(π·t))``, ``t`` from 0 to 1 over the
      remaining steps;
    - ``"step"``: ×``gamma`` every ``step_size`` steps;
    - ``"constant"``: 1.

    ``base_lr`` is each group's ``initial_lr`` (set to its ``lr`` when the first schedule is made,
    as torch's schedulers do): the per-group learning rates of
    :func:`hyperdml.optim.make_optimizer`. :meth:`step` is called after each optimiser step.
    :meth:`state_dict` / :meth:`load_state_dict` hold plain numbers (checkpoint-safe).
    """

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, kind: str = "cosine",
                 min_mult: float = 0.0, step_size: int = 1, gamma: float = 0.5):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; expected one of {', '.join(SCHEDULES)}")
        self.optimizer = optimizer
        self.total_steps, self.warmup_steps = max(int(total_steps), 1), max(int(warmup_steps), 0)
        self.kind, self.min_mult = kind, float(min_mult)
        self.step_size, self.gamma = max(int(step_size), 1), float(gamma)
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def factor(self, step: int) -> float:
        """The learning-rate multiplier at optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        s = step - self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** (s // self.step_size)
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min(s / span, 1.0)
        return self.min_mult + (1.0 - self.min_mult) * 0.5 * (1.0 + math.cos(math.pi * t))

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance one optimiser step and set the groups' learning rates."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The groups' current learning rates."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Plain-number state: step, base rates and the schedule's parameters."""
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs), "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "kind": self.kind, "min_mult": self.min_mult,
                "step_size": self.step_size, "gamma": self.gamma}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s values and set the learning rates of that step."""
        self.last_step = int(state["last_step"])
        self.base_lrs = [float(b) for b in state["base_lrs"]]
        for key in ("total_steps", "warmup_steps", "step_size"):
            setattr(self, key, int(state.get(key, getattr(self, key))))
        self.kind = state.get("kind", self.kind)
        self.min_mult = float(state.get("min_mult", self.min_mult))
        self.gamma = float(state.get("gamma", self.gamma))
        self._apply()
