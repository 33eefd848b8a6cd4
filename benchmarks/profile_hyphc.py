"""Where the time of the CPU ``hyphc_triplet_loss`` forward+backward goes, as a text file.

Usage (from a source checkout, on a quiet machine)::

    python benchmarks/profile_hyphc.py [--threads 1] [--P 2000 --D 64 --T 100000] [--out benchmarks/results]

It writes ``<out>/<device>-hyphc-profile.txt``:

- the time of each stage, run on its own (best of ``--repeats`` calls): the forward alone, the
  forward that also sums the gradients, the recomputing backward (taken for an incoming gradient
  that is not one value), the whole forward+backward through autograd as ``hyperdml bench hyphc``
  times it, and the compiled closed form's, in the same process; and the summing forward again
  with the points' rows and gradient buffers small enough for the core's L2 cache (``P = 300``),
  which separates its arithmetic from its cache misses;
- with ``perf`` on the PATH, the share of CPU samples of the forward+backward loop in each stage
  (``perf record -e cpu-clock`` on this process, symbols grouped by the stage they belong to) and
  the top symbols.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"

#: Stage of a perf symbol: the first pattern that matches names it.
STAGES = [
    ("forward: rows and dot products (load_lanes, cross_dots, exact_pair, row_sqnorms)",
     r"load_lanes|cross_dots|exact_pair|row_sqnorms|prefetch_rows"),
    ("forward: depths, softmax and gradient coefficients (closed form, Sleef log/exp)",
     r"triplet_forward|triplet_loss|lca_tanh|point_coefficients|Sleef_|forward<"),
    ("gradient: adding the coefficients times the rows into the points",
     r"add_point_grads|ThreadGradients|sum_into"),
    ("kernel: page faults, zeroing and freeing memory", r"^\[k\]"),
    ("allocator (malloc, free, memset)", r"malloc|free|memset|memcpy|_int_"),
]
OTHER = "Python, autograd and the rest"


def best_ms(fn, repeats: int) -> float:
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def stage_times(shape: dict, repeats: int) -> list[tuple[str, float]]:
    from hyperdml.bench import hyphc as bench

    ops = torch.ops.hyperdml
    settings = {"c": 1.0, "tau": 0.05}
    inputs = bench.make_inputs(shape, "cpu", torch.float32)
    points, triplets, sims = inputs["points"], inputs["triplets"], inputs["sims"]
    t = triplets.shape[0]
    grad = torch.rand(t)  # a weighted sum's: not one value
    small = bench.make_inputs({**shape, "P": 300}, "cpu", torch.float32)
    rows = [
        ("forward alone (hyphc_triplet_loss)", lambda: ops.hyphc_triplet_loss(points, triplets, sims, 1.0, 0.05)),
        ("forward summing the gradients (hyphc_triplet_loss_and_sum_grads)",
         lambda: ops.hyphc_triplet_loss_and_sum_grads(points, triplets, sims, 1.0, 0.05, False)),
        ("  the same with P = 300 (rows and buffers in L2)",
         lambda: ops.hyphc_triplet_loss_and_sum_grads(small["points"], small["triplets"], small["sims"], 1.0, 0.05,
                                                      False)),
        ("recomputing backward (hyphc_triplet_loss_backward)",
         lambda: ops.hyphc_triplet_loss_backward(grad, points, triplets, sims, 1.0, 0.05)),
        ("forward+backward through autograd (as hyperdml bench times it)",
         bench.build("hyperdml", inputs, "fwdbwd", settings)),
        ("closed form under torch.compile, forward+backward", bench.build("closed_compile", inputs, "fwdbwd", settings)),
    ]
    return [(name, best_ms(fn, repeats)) for name, fn in rows]


def perf_shares(shape: dict, seconds: float) -> tuple[list[tuple[str, float]], list[str]] | None:
    """Stage shares of cpu-clock samples of this process running the op's forward+backward."""
    if shutil.which("perf") is None:
        return None
    from hyperdml.bench import hyphc as bench

    f = bench.build("hyperdml", bench.make_inputs(shape, "cpu", torch.float32), "fwdbwd", {"c": 1.0, "tau": 0.05})
    f()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-p", str(os.getpid()), "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # perf attaches
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            f()
        perf.send_signal(signal.SIGINT)
        perf.wait()
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol"],
                                capture_output=True, text=True).stdout
    shares: dict[str, float] = {}
    top = []
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\[.\])\s+(.*)", line)
        if not m:
            continue
        pct, kind, name = float(m.group(1)), m.group(2), m.group(3).strip()
        label = f"{kind} {name}"
        stage = next((s for s, pattern in STAGES if re.search(pattern, label)), OTHER)
        shares[stage] = shares.get(stage, 0.0) + pct
        if len(top) < 15:
            top.append(f"{pct:6.2f}%  {label[:150]}")
    order = [s for s, _ in STAGES] + [OTHER]
    return [(s, shares.get(s, 0.0)) for s in order], top


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--P", type=int, default=2000)
    parser.add_argument("--D", type=int, default=64)
    parser.add_argument("--T", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30, help="calls per stage; the best is kept")
    parser.add_argument("--perf-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the profile file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = {"P": args.P, "D": args.D, "T": args.T}
    from hyperdml._extension import extension_info

    info = extension_info()
    lines = [
        f"hyphc_triplet_loss CPU profile: P={args.P}, D={args.D}, T={args.T}, float32, c=1, tau=0.05, "
        f"{args.threads} thread(s), CPU kernels {info['cpu_capability']}, torch {torch.__version__}",
        f"command: python benchmarks/profile_hyphc.py --threads {args.threads} --P {args.P} --D {args.D} "
        f"--T {args.T}",
        "",
        f"Time per stage, best of {args.repeats} calls (ms):",
    ]
    lines += [f"  {ms:8.2f}  {name}" for name, ms in stage_times(shape, args.repeats)]
    shares = perf_shares(shape, args.perf_seconds)
    if shares is None:
        lines += ["", "perf is not on the PATH: no sample shares."]
    else:
        stages, top = shares
        lines += ["", f"Share of cpu-clock samples of the forward+backward loop ({args.perf_seconds:g} s, perf record):"]
        lines += [f"  {pct:6.1f}%  {name}" for name, pct in stages]
        lines += ["", "Top symbols:"] + [f"  {t}" for t in top]
    from hyperdml.bench.results import device_key

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{device_key('cpu')}-hyphc-profile.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
