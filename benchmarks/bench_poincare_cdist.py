"""Benchmark: hyperdml.ops.poincare_cdist vs the same computation in plain PyTorch.

Plain PyTorch = one matmul plus elementwise ops (autograd for the backward), which keeps a
handful of (B, N) temporaries alive; the op keeps one. Prints a table and appends it to
``benchmarks/results/poincare_cdist_<device>.md``.

    python benchmarks/bench_poincare_cdist.py [--device cpu|cuda] [--dtype float32]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import peak_mib, time_ms, write_results  # noqa: E402

warnings.simplefilter("ignore", RuntimeWarning)
from hyperdml.ops import poincare_cdist  # noqa: E402


def plain_pytorch(x, y, c):
    """One matmul plus elementwise ops: what a user would write by hand."""
    xx = (x * x).sum(1, keepdim=True)
    yy = (y * y).sum(1)
    sq = (xx + yy - 2 * x @ y.t()).clamp_min(0)
    u = 2 * c * sq / ((1 - c * xx) * (1 - c * yy))
    return torch.acosh(1 + u) / c**0.5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--shapes", default=None, help="B,N,D;B,N,D;... (default depends on device)")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    default = "256,2000,128" if args.device == "cpu" else "256,2000,128;4096,8192,128;8192,65536,256"
    shapes = [tuple(int(v) for v in s.split(",")) for s in (args.shapes or default).split(";")]
    c = 0.1
    rows = []
    for b, n, d in shapes:
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(b, d, generator=g) * 0.5 / d**0.5).to(args.device, dtype)
        y = (torch.randn(n, d, generator=g) * 0.5 / d**0.5).to(args.device, dtype)
        xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        seed = torch.randn(b, n, generator=g).to(args.device, dtype)
        for name, fn in (("hyperdml op", poincare_cdist), ("plain PyTorch", plain_pytorch)):
            fwd = time_ms(lambda: fn(x, y, c), args.device, args.repeat)
            fwd_bwd = time_ms(lambda: torch.autograd.grad(fn(xg, yg, c), (xg, yg), seed), args.device, args.repeat)
            mem = peak_mib(lambda: torch.autograd.grad(fn(xg, yg, c), (xg, yg), seed), args.device)
            rows.append([f"{b}x{n}x{d}", name, f"{fwd:.2f}", f"{fwd_bwd:.2f}", f"{mem:.1f}"])
        err = (poincare_cdist(x, y, c).double() - plain_pytorch(x.double(), y.double(), c)).abs().max().item()
        rows.append([f"{b}x{n}x{d}", "max abs diff vs float64", f"{err:.2e}", "", ""])
    write_results(
        "poincare_cdist", args.device, ["B x N x D", "impl", "fwd ms", "fwd+bwd ms", "peak MiB (fwd+bwd)"], rows,
        note=f"dtype {args.dtype}, c = {c}, median of {args.repeat} runs. CPU peak is the RSS high-water increase "
        "(0 once an earlier run reached it).",
    )


if __name__ == "__main__":
    main()
