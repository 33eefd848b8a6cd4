"""Loads the compiled extension ``hyperdml._C``; the package works without it, more slowly."""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings

import torch

EXTENSION_ERROR: str | None = None
if os.environ.get("HYPERDML_DISABLE_EXTENSION") == "1":  # debugging, and the fallback's tests
    EXTENSION_ERROR = "disabled by HYPERDML_DISABLE_EXTENSION=1"
elif importlib.util.find_spec("hyperdml._C") is None:
    EXTENSION_ERROR = "not built"
else:
    try:
        importlib.import_module("hyperdml._C")  # registers the hyperdml:: ops and their kernels
    except (ImportError, OSError) as error:  # built against another torch, or a missing library
        EXTENSION_ERROR = str(error)
HAS_EXTENSION = EXTENSION_ERROR is None
if not HAS_EXTENSION:
    warnings.warn(
        "hyperdml: the compiled extension hyperdml._C is not available "
        f"({EXTENSION_ERROR}); the ops fall back to their pure-PyTorch references (slower, "
        "more memory). Build it with `pip install -e . --no-build-isolation`.",
        RuntimeWarning,
        stacklevel=2,
    )


def has_kernel(qualname: str, dispatch_key: str) -> bool:
    """Whether op ``qualname`` (e.g. ``"hyperdml::poincare_cdist"``) has a kernel for ``dispatch_key``."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(qualname, dispatch_key)


def extension_info() -> dict:
    """What was compiled: ``{"extension": bool, "cuda": bool, "cpu_capability": str | None,
    "error": str | None}``; ``cpu_capability`` is the instruction set of the CPU kernels' vector
    maths (``"AVX512"``, ``"AVX2"`` or ``"DEFAULT"``)."""
    cuda = HAS_EXTENSION and bool(torch.ops.hyperdml._compiled_with_cuda())
    capability = str(torch.ops.hyperdml._cpu_capability()) if HAS_EXTENSION else None
    return {"extension": HAS_EXTENSION, "cuda": cuda, "cpu_capability": capability, "error": EXTENSION_ERROR}
