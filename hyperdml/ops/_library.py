"""Registration helpers: one place that defines a ``hyperdml::`` op when the extension did not,
fills in reference kernels for devices without a compiled one, and adds autocast and vmap rules;
and the vector-Jacobian product that differentiates the backward ops through their references."""

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


def define_op(name: str, schema: str, kernel: Callable, devices: tuple[str, ...]) -> str:
    """Define ``hyperdml::name`` from Python with ``kernel`` on ``devices`` (``"cuda"``, ``"cpu"``)
    only. Returns the qualified name."""
    _FRAGMENT.define(f"{name}{schema}")
    for device in devices:
        _FRAGMENT.impl(name, kernel, device.upper())
    return f"hyperdml::{name}"


def register_op_rules(op: str, backward_op: str, backward: Callable, setup_context: Callable,
                      double_backward: Callable, backward_setup_context: Callable) -> None:
    """Everything an op registers besides its kernels: its autograd (``backward`` calls
    ``backward_op``, itself differentiable through ``double_backward``), float32 under autocast,
    and ``torch.vmap`` by a loop for both ops."""
    torch.library.register_autograd(op, backward, setup_context=setup_context)
    torch.library.register_autograd(backward_op, double_backward, setup_context=backward_setup_context)
    float32_under_autocast(op)
    vmap_by_loop(op)
    vmap_by_loop(backward_op)


def float32_under_autocast(qualname: str) -> None:
    """Under autocast (CPU and CUDA) the op's floating inputs are cast to float32."""
    for device in ("cpu", "cuda"):
        torch.library.register_autocast(qualname, device, torch.float32)


def vmap_by_loop(qualname: str) -> None:
    """Register a ``torch.vmap`` rule for the op: one call per batch entry, results stacked.

    (The fused kernels take one problem at a time; under ``vmap`` they run once per entry.)
    """
    namespace, name = qualname.split("::")
    op = getattr(getattr(torch.ops, namespace), name).default

    def rule(info, in_dims, *args):
        def entry(i):
            return [a if d is None else a.select(d, i) for a, d in zip(args, in_dims)]

        outs = [op(*entry(i)) for i in range(info.batch_size)]
        if isinstance(outs[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*outs)), (0,) * len(outs[0])
        return torch.stack(outs), 0

    torch.library.register_vmap(qualname, rule, lib=_FRAGMENT)


def reference_vjp(fn: Callable, tensors, needs, cotangents, *args) -> list:
    """Vector-Jacobian product of ``fn(*tensors, *args)`` (a tuple of tensors) by autograd.

    ``needs[i]``: whether the gradient for ``tensors[i]`` is wanted; ``cotangents``: one per
    output, ``None`` for zero. With grad mode on, the result is itself differentiable (a graph of
    it is built through the tensors that require grad). Returns one entry per tensor (``None``
    where not wanted).
    """
    graph = torch.is_grad_enabled()
    with torch.enable_grad():
        inputs = [
            t if graph and t.requires_grad else t.detach().requires_grad_(bool(n)) for t, n in zip(tensors, needs)
        ]
        outputs = fn(*inputs, *args)
        pairs = [(o, g) for o, g in zip(outputs, cotangents) if g is not None and o.requires_grad]
        wanted = [i for i, n in enumerate(needs) if n]
        result = [None] * len(tensors)
        if not pairs or not wanted:
            return [torch.zeros_like(tensors[i]) if i in wanted else None for i in range(len(tensors))]
        outs, cots = zip(*pairs)
        grads = torch.autograd.grad(outs, [inputs[i] for i in wanted], cots, create_graph=graph, allow_unused=True)
    for i, g in zip(wanted, grads):
        result[i] = torch.zeros_like(tensors[i]) if g is None else g
    return result
