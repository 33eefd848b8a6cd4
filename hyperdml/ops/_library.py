"""Registration helpers: one place that defines a ``hyperdml::`` op when the extension did not,
fills in reference kernels for devices without a compiled one, and adds autocast rules."""

from __future__ import annotations

from typing import Callable

import torch

from hyperdml._extension import HAS_EXTENSION, has_kernel

# Keeps the Python-side registrations alive for the life of the process.
_FRAGMENT = torch.library.Library("hyperdml", "FRAGMENT")


def ensure_op(name: str, schema: str, fallback: Callable) -> str:
    """Make ``hyperdml::name`` exist with a kernel on CPU and CUDA.

    With the extension, C++ defined the op and registered its compiled kernels; devices it did not
    compile for (CUDA in a CPU-only build) get ``fallback``. Without the extension, the op is
    defined here from ``schema`` and ``fallback`` serves every device. Returns the qualified name.
    """
    qualname = f"hyperdml::{name}"
    if not HAS_EXTENSION:
        _FRAGMENT.define(f"{name}{schema}")
    for key in ("CPU", "CUDA"):
        if not has_kernel(qualname, key):
            _FRAGMENT.impl(name, fallback, key)
    return qualname


def float32_under_autocast(qualname: str) -> None:
    """Under autocast (CPU and CUDA) the op's floating inputs are cast to float32."""
    for device in ("cpu", "cuda"):
        torch.library.register_autocast(qualname, device, torch.float32)
