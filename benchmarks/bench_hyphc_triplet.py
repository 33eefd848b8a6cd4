"""Benchmark: hyperdml.ops.hyphc_triplet_loss vs its eager pure-PyTorch reference.

Forward+backward of the mean triplet loss for P points in D dims and T triplets. The reference
gathers (T, 3, D) point copies and keeps autograd's temporaries; the fused op keeps (T,)
values and a (P, D) gradient. Each case runs in a fresh subprocess on the CPU so that the RSS
high-water mark measures that case alone. Appends to ``benchmarks/results/hyphc_triplet_<device>.md``.

    python benchmarks/bench_hyphc_triplet.py [--device cpu|cuda] [--triplets 100000,1000000]
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
from hyperdml.ops import hyphc_triplet_loss, hyphc_triplet_loss_reference  # noqa: E402

IMPLS = {"hyperdml op": hyphc_triplet_loss, "eager reference": hyphc_triplet_loss_reference}


def one_case(impl: str, device: str, p: int, d: int, t: int, repeat: int) -> dict:
    g = torch.Generator().manual_seed(0)
    points = (torch.randn(p, d, generator=g) * 0.5 / d**0.5).to(device).requires_grad_(True)
    triplets = torch.randint(0, p, (t, 3), generator=g).to(device)
    sims = torch.rand(t, 3, generator=g).to(device)
    fn = IMPLS[impl]

    def step():
        (grad,) = torch.autograd.grad(fn(points, triplets, sims, 1.0, 0.05).mean(), points)
        return grad

    mem = peak_mib(step, device)
    ms = time_ms(step, device, repeat, warmup=1)
    return {"ms": ms, "mib": mem}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--triplets", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(v) for v in args.triplets.split(",")]
    if args.one:  # child process: one case, JSON on stdout
        print(json.dumps(one_case(args.one, args.device, args.points, args.dim, sizes[0], args.repeat)))
        return
    rows = []
    for t in sizes:
        results = {}
        for impl in IMPLS:
            results[impl] = run_isolated(__file__, [
                "--one", impl, "--device", args.device, "--points", str(args.points), "--dim", str(args.dim),
                "--triplets", str(t), "--repeat", str(args.repeat)])
        op, ref = results["hyperdml op"], results["eager reference"]
        for impl, r in results.items():
            rows.append([f"{t:,}", impl, f"{r['ms']:.1f}", f"{r['mib']:.0f}"])
        rows.append([f"{t:,}", "speed-up / memory ratio", f"{ref['ms'] / op['ms']:.1f}x",
                     f"{ref['mib'] / max(op['mib'], 1e-3):.0f}x"])
    write_results(
        "hyphc_triplet", args.device, ["T", "impl", "fwd+bwd ms", "peak MiB"], rows,
        note=f"P = {args.points}, D = {args.dim}, float32, c = 1, tau = 0.05, median of {args.repeat} runs, "
        "each case in its own process.",
    )


if __name__ == "__main__":
    main()
