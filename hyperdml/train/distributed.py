"""Process-group setup for ``torchrun --nproc_per_node N -m hyperdml train ...``.

:func:`setup_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and initialises the default process group:
gloo on the CPU, nccl on CUDA, with a timeout so that a rank that fails does not leave the others
waiting forever. Outside torchrun it does nothing and returns ``(0, 1, device)``.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

__all__ = ["setup_distributed", "cleanup_distributed", "resolve_device", "env_world_size"]


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` → ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``"cuda"`` →
    ``cuda:<local_rank>``; ``"cpu"`` and ``"cuda:N"`` as given. Anything else, or a CUDA device this
    machine lacks, raises :class:`~hyperdml.errors.ConfigError`."""
    from hyperdml.errors import ConfigError

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        elif dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(dev)
    return dev


def setup_distributed(timeout_s: float = 600.0, device: str = "auto") -> tuple[int, int, torch.device]:
    """Initialise the process group when launched by torchrun; returns ``(rank, world_size, device)``.

    Backend: nccl when the device is CUDA, gloo otherwise; ``timeout_s`` bounds every collective
    (a rank that died makes the others fail after it rather than hang). With ``WORLD_SIZE`` unset
    or 1, or when the group is already initialised, no group is created.
    """
    world = env_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return 0, 1, dev
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=float(timeout_s)), **kwargs)
    return dist.get_rank(), dist.get_world_size(), dev


def cleanup_distributed() -> None:
    """Destroy the default process group if this process created one (no-op otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
