"""``hyperdml bench cdist | hyphc``: the ops against their competitors, with results files and tables."""

from __future__ import annotations

import argparse
import os
import re

from hyperdml.commands import HelpFormatter

HELP = "benchmark poincare_cdist / hyphc_triplet_loss against plain PyTorch, torch.compile, geoopt"
DESCRIPTION = (
    "Time the compiled ops against other ways to compute the same thing, on the same inputs, each case "
    "in a fresh process (median and IQR with torch.utils.benchmark, peak memory), and write "
    "<out>/<device>.json, <out>/<device>-<op>.md (the tables) and a time-vs-size plot."
)
DEFAULT_OUT = os.path.join("benchmarks", "results")

_OP_ARGS = {
    "cdist": {
        "dims": ("B", "N", "D"),
        "sweep": "N",
        "help": "poincare_cdist(x (B,D), y (N,D), c) against bare matmuls, plain PyTorch (eager, "
                "torch.compile) and geoopt",
        "competitors": "hyperdml, hyperdml_gemm, matmul, torch, compile, geoopt",
        "params": {"c": 0.1},
    },
    "hyphc": {
        "dims": ("P", "D", "T"),
        "sweep": "T",
        "help": "hyphc_triplet_loss(points (P,D), triplets (T,3), sims (T,3), c, tau) against pure PyTorch: "
                "the gathered formulation and the closed form, eager and under torch.compile",
        "competitors": "hyperdml, eager, compile, closed, closed_compile",
        "params": {"c": 1.0, "tau": 0.05},
    },
}
_DIM_HELP = {"B": "batch rows of x", "N": "rows of y (proxies)", "D": "dimension", "P": "points",
             "T": "triplets"}


def _add_op_parser(sub, op: str) -> None:
    spec = _OP_ARGS[op]
    p = sub.add_parser(op, help=spec["help"], description=spec["help"],
                       formatter_class=HelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<index>")
    p.add_argument("--dtype", default="float32", help="float32 or float64")
    p.add_argument("--mode", default="fwd,fwdbwd",
                   help="passes to time, comma-separated: fwd (forward only), fwdbwd (forward+backward)")
    for dim in spec["dims"]:
        p.add_argument(f"--{dim}", default=None, metavar="LIST",
                       help=f"{_DIM_HELP[dim]}, comma-separated sizes (the cases are the Cartesian product); "
                            "default: the benchmark's shapes (--quick: tiny ones)")
    sweep_key = spec["sweep"]
    p.add_argument("--sweep", default=None, metavar="LIST",
                   help=f"values of {sweep_key} for the time-vs-{sweep_key} plot (other sizes: the first of each "
                        "list; pass: --sweep-mode); 'none' for no sweep; default: a log-spaced series")
    p.add_argument("--sweep-mode", default="fwdbwd", help="the pass the sweep times")
    p.add_argument("--competitors", default=None,
                   help=f"comma-separated subset of: {spec['competitors']}; or 'all' (default: all; --quick: "
                        "all but the torch.compile ones, whose first call compiles for tens of seconds on a CPU)")
    for name, value in spec["params"].items():
        p.add_argument(f"--{name}", type=float, default=value, help=f"the op's {name}")
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes, short timing, one process per competitor: a smoke test (seconds); "
                        "writes <device>-quick.json")
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for <device>.json, the Markdown and the plot")
    p.add_argument("--threads", type=int, default=None, help="intra-op CPU threads (default: torch's)")
    p.add_argument("--min-run-time", type=float, default=None,
                   help="seconds of timed samples per case at least (default 1; --quick 0.05)")
    p.add_argument("--min-repeats", type=int, default=None,
                   help="timed samples per case at least (default 5; --quick 3)")
    p.add_argument("--isolate", default=None, choices=["case", "competitor", "none"],
                   help="fresh process per case (default), per competitor (--quick's default), or none")
    p.add_argument("--memory-budget-gib", type=float, default=None,
                   help="skip a case whose estimated memory exceeds this (default: half the available RAM; "
                        "CUDA: 80%% of the free GPU memory)")
    p.add_argument("--case-timeout", type=float, default=3600.0, help="seconds before a case is abandoned")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the compile competitor")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (e.g. max-autotune)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the sweep plot")
    p.add_argument("--dry-run", action="store_true", help="list the cases and memory estimates, run nothing")
    p.set_defaults(bench_op=op)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommands ``cdist`` and ``hyphc``: run the op's benchmark."""
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="{cdist,hyphc}")
    for op in _OP_ARGS:
        _add_op_parser(sub, op)


def parse_sizes(name: str, text: str) -> list[int]:
    """``"2000,113180"`` / ``"1e6"`` / ``"100_000"`` → positive ints; ConfigError naming the option."""
    from hyperdml.errors import ConfigError

    values = []
    for part in str(text).split(","):
        part = part.strip().replace("_", "")
        try:
            value = float(part) if re.fullmatch(r"[0-9.]+[eE][0-9]+", part) else int(part)
        except ValueError:
            value = None
        if value is None or value != int(value) or int(value) < 1:
            raise ConfigError(f"--{name} expects comma-separated positive integers, got {text!r}")
        values.append(int(value))
    return values


def _names(name: str, text: str) -> list[str]:
    from hyperdml.errors import ConfigError

    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"--{name} is empty")
    return items


def _summary(run: dict) -> list[str]:
    """One line per main shape and pass: the op's time and each competitor's time over it."""
    from hyperdml.bench.markdown import format_ms, shape_text
    from hyperdml.bench.results import MODE_LABEL, case_key, index_cases, ok

    table = index_cases(run["cases"])
    lines = []
    for shape in run["shapes"]:
        for mode in ("fwd", "fwdbwd"):
            by_comp = table.get(case_key(shape, mode), {})
            op = by_comp.get("hyperdml")
            if not ok(op):
                continue
            parts = [f"{name} {c['median_ms'] / op['median_ms']:.2f}×" for name, c in by_comp.items()
                     if name != "hyperdml" and ok(c)]
            lines.append(f"  {shape_text(shape, run['shape_keys'])} {MODE_LABEL[mode]}: hyperdml "
                         f"{format_ms(op['median_ms'])}" + (f"; time ÷ op: {', '.join(parts)}" if parts else ""))
    return lines


def run(args) -> int:
    """Run ``hyperdml bench cdist|hyphc``."""
    from hyperdml.bench import suite
    from hyperdml.bench.competitors import COMPETITORS
    from hyperdml.bench.runner import OPS
    from hyperdml.errors import ConfigError

    mod = OPS[args.bench_op]
    base = mod.QUICK if args.quick else mod.FULL
    if args.dtype not in ("float32", "float64"):
        raise ConfigError(f"--dtype must be float32 or float64, got {args.dtype!r}")
    lists = {k: parse_sizes(k, getattr(args, k)) if getattr(args, k) is not None else base[k]
             for k in mod.SHAPE_KEYS}
    shapes = suite.shapes_from_lists(mod.SHAPE_KEYS, lists)
    modes = _names("mode", args.mode)
    sweep = None
    if args.sweep is None or args.sweep.strip().lower() != "none":
        values = parse_sizes("sweep", args.sweep) if args.sweep is not None else base["sweep"]
        fixed = {k: lists[k][0] for k in mod.SHAPE_KEYS if k != mod.SWEEP_KEY}
        if args.sweep_mode not in ("fwd", "fwdbwd"):
            raise ConfigError(f"--sweep-mode must be fwd or fwdbwd, got {args.sweep_mode!r}")
        sweep = {"key": mod.SWEEP_KEY, "values": values, "mode": args.sweep_mode, "fixed": fixed}
    if args.competitors is None or args.competitors == "all":
        device_type = args.device.split(":")[0]
        competitors = [name for name, comp in COMPETITORS[args.bench_op].items()
                       if not (args.quick and args.competitors is None and comp.compiled)
                       and device_type in comp.devices]
    else:
        competitors = _names("competitors", args.competitors)
    for name in ("threads", "min_repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.min_run_time is not None and args.min_run_time < 0:
        raise ConfigError(f"--min-run-time must be >= 0, got {args.min_run_time}")
    if args.memory_budget_gib is not None and args.memory_budget_gib <= 0:
        raise ConfigError(f"--memory-budget-gib must be > 0, got {args.memory_budget_gib}")
    params = {k: getattr(args, k) for k in _OP_ARGS[args.bench_op]["params"]}
    for name, value in params.items():
        if not value > 0:
            raise ConfigError(f"--{name} must be > 0, got {value}")
    settings = {
        "device": args.device, "dtype": args.dtype, "threads": args.threads,
        "min_run_time": args.min_run_time if args.min_run_time is not None else (0.05 if args.quick else 1.0),
        "min_repeats": args.min_repeats or (3 if args.quick else 5),
        "memory_budget_bytes": int(args.memory_budget_gib * 2**30) if args.memory_budget_gib else None,
        "compile_backend": args.compile_backend, "compile_mode": args.compile_mode, **params,
    }
    isolate = args.isolate or ("competitor" if args.quick else "case")
    run_dict, path = suite.run_benchmark(
        args.bench_op, shapes=shapes, sweep=sweep, modes=modes, competitors=competitors, settings=settings,
        out_dir=args.out, quick=args.quick, isolate=isolate, case_timeout_s=args.case_timeout,
        plot=not args.no_plot, dry_run=args.dry_run,
        options=_recorded_options(args),
    )
    if run_dict is None:
        return 0
    print(f"wrote {path}")
    print("\n".join(_summary(run_dict)))
    failed = [c for c in run_dict["cases"] if c["status"] == "error"]
    if failed:
        print(f"{len(failed)} case(s) failed (see the results file)")
    return 1 if failed else 0


def _recorded_options(args: argparse.Namespace) -> dict:
    """The command's options as the results file records them: ``--out`` relative to the working
    folder, so that a results file names no absolute path of the machine that wrote it."""
    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    options["out"] = os.path.relpath(args.out)
    return options
