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
    """What was compiled and what runs.

    Returns ``{"extension": bool, "cuda": bool, "cpu_capability": str | None,
    "cpu_capabilities": list[str], "error": str | None}``: whether ``hyperdml._C`` loaded (else
    ``error`` says why), whether it has the CUDA kernels, the instruction set of the CPU kernels
    in use (``"AVX512"``, ``"AVX2"`` or ``"DEFAULT"``; ``None`` without the extension) and the
    sets this build compiled them for. The set in use is the CPU's best one that torch also uses
    (``ATEN_CPU_CAPABILITY`` lowers it), or ``HYPERDML_CPU_CAPABILITY`` when that is set.

    Raises:
        ValueError: ``HYPERDML_CPU_CAPABILITY`` names no set, or one this CPU or build lacks.
    """
    if not HAS_EXTENSION:
        return {"extension": False, "cuda": False, "cpu_capability": None, "cpu_capabilities": [],
                "error": EXTENSION_ERROR}
    return {
        "extension": True,
        "cuda": bool(torch.ops.hyperdml._compiled_with_cuda()),
        "cpu_capability": str(torch.ops.hyperdml._cpu_capability()),
        "cpu_capabilities": list(torch.ops.hyperdml._cpu_capabilities()),
        "error": None,
    }
