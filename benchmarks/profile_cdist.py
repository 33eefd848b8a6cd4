"""Where the CPU time of ``poincare_cdist`` forward+backward goes, next to its three bare matmuls.

``python benchmarks/profile_cdist.py [--B 256 --N 2000 --D 128] [--dtype float32] [--out benchmarks/results]``
(Linux, needs ``perf``) writes ``<out>/<device>-cdist-profile.txt`` with

- the CPU time per call (the thread's CPU time, so time-slicing by other processes on a shared
  machine is not counted; 1 thread, garbage collector off as in ``hyperdml bench``; best of 9
  samples) of the forward, the backward op, forward+backward through autograd, and the three bare
  matmuls ``x @ y.T``, ``g @ y``, ``g.T @ x`` of the same shapes;
- the share of forward+backward's samples (``perf record``, software clock, the timed loop only)
  per stage: the GEMMs (MKL / oneDNN kernels, their packing and scaling), the fused per-element
  passes (the op's kernels and the Sleef functions they call), row norms and input checks, other
  ATen calls and allocation, Python and autograd; and the hottest symbols.

The inputs are those of ``hyperdml bench cdist`` (same seed). The samples come from perf's
software clock, which works where hardware counters do not (many virtual machines); the file
says whether the machine has them.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]

#: Stages, first match wins: (name, pattern over "dso symbol").
STAGES = [
    ("GEMM (MKL/oneDNN: kernels, packing, scaling)", r"gemm|mkl_blas|dnnl|libmkl"),
    ("per-element passes (the op's fused kernels, Sleef)", r"poincare_cdist_(backward_)?cpu|Sleef_"),
    ("row norms and input checks", r"row_sqnorms|sqnorms_inside|check_|rows_inside|all_finite"),
    ("Python and autograd", r"libpython|libtorch_python|\bpython3"),
    ("other ATen ops, allocation, kernel (page faults)", r"."),
]


def _inputs(B: int, N: int, D: int, dtype: str):
    import torch

    from hyperdml.bench import cdist

    inp = cdist.make_inputs({"B": B, "N": N, "D": D}, "cpu", getattr(torch, dtype))
    return inp["x"], inp["y"], inp["g"]


def _cases(B: int, N: int, D: int, dtype: str) -> dict:
    import torch

    from hyperdml.ops import poincare_cdist

    x, y, g = _inputs(B, N, D, dtype)
    c = 0.1
    dist = torch.ops.hyperdml.poincare_cdist(x, y, c)
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    return {
        "three bare matmuls": lambda: (x @ y.T, g @ y, g.T @ x),
        "forward (op)": lambda: torch.ops.hyperdml.poincare_cdist(x, y, c),
        "backward (op)": lambda: torch.ops.hyperdml.poincare_cdist_backward(g, x, y, dist, c),
        "forward+backward (autograd)": lambda: torch.autograd.grad(poincare_cdist(xg, yg, c), (xg, yg), g),
    }


def _setup() -> None:
    import torch

    from hyperdml.bench.timing import fix_malloc_thresholds

    fix_malloc_thresholds()
    torch.set_num_threads(1)
    gc.disable()


def time_cases(B: int, N: int, D: int, dtype: str, samples: int = 9) -> dict[str, float]:
    """Best per-call thread CPU time (ms) of each case over ``samples`` samples of >= 20 ms."""
    _setup()
    cases = _cases(B, N, D, dtype)
    best = {}
    for name, fn in cases.items():
        for _ in range(3):
            fn()
        t0 = time.thread_time()
        fn()
        calls = max(1, int(0.02 / max(time.thread_time() - t0, 1e-6)))
        best[name] = min(_sample(fn, calls) for _ in range(samples)) * 1e3
    return best


def _sample(fn, calls: int) -> float:
    t0 = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - t0) / calls


def profiled_loop(B: int, N: int, D: int, dtype: str, calls: int, ctl: str, ack: str) -> None:
    """Forward+backward ``calls`` times with perf's events enabled only around the loop."""
    _setup()
    fn = _cases(B, N, D, dtype)["forward+backward (autograd)"]
    for _ in range(5):
        fn()
    with open(ctl, "w") as c, open(ack) as a:
        c.write("enable\n")
        c.flush()
        a.readline()
        for _ in range(calls):
            fn()
        c.write("disable\n")
        c.flush()
        a.readline()


def perf_profile(args, calls: int) -> list[tuple[float, str, str]]:
    """``[(percent, dso, symbol)]`` of the forward+backward loop's samples."""
    tmp = tempfile.mkdtemp(prefix="profile_cdist_")
    try:
        ctl, ack, data = (os.path.join(tmp, n) for n in ("ctl", "ack", "perf.data"))
        os.mkfifo(ctl)
        os.mkfifo(ack)
        child = [sys.executable, os.path.abspath(__file__), "--loop", str(calls), "--B", str(args.B), "--N",
                 str(args.N), "--D", str(args.D), "--dtype", args.dtype, "--ctl", ctl, "--ack", ack]
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-D", "-1",
                        f"--control=fifo:{ctl},{ack}", "-o", data, "--", *child], check=True,
                       stdout=subprocess.DEVNULL)
        report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio",
                                 "-g", "none", "--percent-limit", "0.05"], check=True, capture_output=True,
                                text=True).stdout
        rows = []
        for line in report.splitlines():
            m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
            if m:
                rows.append((float(m.group(1)), m.group(2), m.group(3).strip()))
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage_of(dso: str, sym: str) -> str:
    for name, pattern in STAGES:
        if re.search(pattern, f"{dso} {sym}"):
            return name
    return STAGES[-1][0]


def _short(sym: str, width: int = 90) -> str:
    sym = re.sub(r"\(at::Tensor const&.*", "(...)", sym)
    return sym if len(sym) <= width else sym[: width - 3] + "..."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--B", type=int, default=256)
    parser.add_argument("--N", type=int, default=2000)
    parser.add_argument("--D", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--calls", type=int, default=600, help="forward+backward calls profiled")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--loop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ctl", help=argparse.SUPPRESS)
    parser.add_argument("--ack", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop is not None:
        profiled_loop(args.B, args.N, args.D, args.dtype, args.loop, args.ctl, args.ack)
        return 0
    if shutil.which("perf") is None:
        print("profile_cdist: needs the perf tool (linux-perf)", file=sys.stderr)
        return 2

    import torch

    import hyperdml
    from hyperdml.bench.results import device_key, machine_info, now_utc

    times = time_cases(args.B, args.N, args.D, args.dtype)
    rows = perf_profile(args, args.calls)
    counters = subprocess.run(["perf", "stat", "-x", ",", "-e", "instructions,cycles", "--", "true"],
                              capture_output=True, text=True).stderr
    has_counters = "<not" not in counters and "instructions" in counters
    total = sum(p for p, _, _ in rows) or 1.0
    per_call = times["forward+backward (autograd)"]
    shares: dict[str, float] = {name: 0.0 for name, _ in STAGES}
    for p, dso, sym in rows:
        shares[stage_of(dso, sym)] += p / total

    info = machine_info("cpu")
    load = os.getloadavg()[0]
    shape = f"B={args.B}, N={args.N}, D={args.D}, {args.dtype}"
    lines = [
        f"poincare_cdist CPU profile, {shape}, c = 0.1, 1 thread; {now_utc()}",
        f"{info['device_name']}, {info['cores']} cores; torch {torch.__version__}; "
        f"CPU kernels: {hyperdml.extension_info().get('cpu_capability')}; load average {load:.1f}",
        f"command: python benchmarks/profile_cdist.py --B {args.B} --N {args.N} --D {args.D} --dtype {args.dtype}",
        "",
        "CPU time per call (thread CPU time, best of 9 samples):",
    ]
    matmuls = times["three bare matmuls"]
    for name, ms in times.items():
        ratio = "" if name == "three bare matmuls" else f"   {ms / matmuls:.2f}x the three matmuls"
        lines.append(f"  {name:30s} {ms:7.3f} ms{ratio}")
    lines += ["", f"forward+backward by stage (perf record, {args.calls} calls; ms = share x {per_call:.3f} ms):"]
    for name, share in shares.items():
        lines.append(f"  {name:52s} {100 * share:5.1f} %  {share * per_call:6.3f} ms")
    lines += ["", "hottest symbols (% of forward+backward's samples):"]
    for p, dso, sym in rows[:15]:
        lines.append(f"  {100 * p / total:5.1f} %  {dso:24.24s} {_short(sym)}")
    lines += ["", "hardware counters (instructions, cycles): " + (
        "available (perf stat -e instructions,cycles)" if has_counters
        else "not available on this machine; the shares above are from the software clock")]
    text = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{device_key('cpu')}-cdist-profile.txt")
    with open(path, "w") as f:
        f.write(text)
    print(text + f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
