"""Benchmark: hyperdml.ops.poincare_cdist vs the same computation in plain PyTorch.

Plain PyTorch = one matmul plus elementwise ops (autograd for the backward), which keeps a
handful of (B, N) temporaries alive; the op keeps one. Prints a table and appends it to
``benchmarks/results/poincare_cdist_<device>.md``.

    python benchmarks/bench_poincare_cdist.py [--device cpu|cuda] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import peak_mib, run_isolated, time_ms, write_results  # noqa: E402

warnings.simplefilter("ignore", RuntimeWarning)
from hyperdml.ops import poincare_cdist  # noqa: E402


def plain_pytorch(x, y, c):
    """One matmul plus elementwise ops: what a user would write by hand."""
    xx = (x * x).sum(1, keepdim=True)
    yy = (y * y).sum(1)
    sq = (xx + yy - 2 * x @ y.t()).clamp_min(0)
    u = 2 * c * sq / ((1 - c * xx) * (1 - c * yy))
    return torch.acosh(1 + u) / c**0.5


IMPLS = {"hyperdml op": poincare_cdist, "plain PyTorch": plain_pytorch}
C = 0.1


def inputs(b, n, d, device, dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(b, d, generator=g) * 0.5 / d**0.5).to(device, dtype)
    y = (torch.randn(n, d, generator=g) * 0.5 / d**0.5).to(device, dtype)
    return x, y, torch.randn(b, n, generator=g).to(device, dtype)


def one_case(impl, device, dtype, b, n, d, repeat):
    """Forward and forward+backward time and the peak memory of forward+backward, one impl."""
    fn = IMPLS[impl]
    x, y, seed = inputs(b, n, d, device, dtype)
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)

    def fwd_bwd():
        return torch.autograd.grad(fn(xg, yg, C), (xg, yg), seed)

    if device.startswith("cuda"):
        fwd_bwd()  # cuBLAS workspaces are allocated on first use: not the op's memory
    mem = peak_mib(fwd_bwd, device)
    return {"fwd": time_ms(lambda: fn(x, y, C), device, repeat), "fwd_bwd": time_ms(fwd_bwd, device, repeat), "mib": mem}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--shapes", default=None, help="B,N,D;B,N,D;... (default depends on device)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    default = "256,2000,128" if args.device == "cpu" else "256,2000,128;4096,8192,128;8192,65536,256"
    shapes = [tuple(int(v) for v in s.split(",")) for s in (args.shapes or default).split(";")]
    if args.one:  # child process: one case, JSON on stdout
        print(json.dumps(one_case(args.one, args.device, dtype, *shapes[0], args.repeat)))
        return
    rows = []
    for b, n, d in shapes:
        for impl in IMPLS:
            r = run_isolated(__file__, ["--one", impl, "--device", args.device, "--dtype", args.dtype,
                                        "--shapes", f"{b},{n},{d}", "--repeat", str(args.repeat)])
            rows.append([f"{b}x{n}x{d}", impl, f"{r['fwd']:.2f}", f"{r['fwd_bwd']:.2f}", f"{r['mib']:.1f}"])
        x, y, _ = inputs(b, n, d, args.device, dtype)
        err = (poincare_cdist(x, y, C).double() - plain_pytorch(x.double(), y.double(), C)).abs().max().item()
        rows.append([f"{b}x{n}x{d}", "max abs diff vs float64", f"{err:.2e}", "", ""])
    write_results(
        "poincare_cdist", args.device, ["B x N x D", "impl", "fwd ms", "fwd+bwd ms", "peak MiB (fwd+bwd)"], rows,
        note=f"dtype {args.dtype}, c = {C}, median of {args.repeat} runs, each impl in its own process "
        "(CPU peak: RSS high-water increase; CUDA: allocator peak).",
    )


if __name__ == "__main__":
    main()
