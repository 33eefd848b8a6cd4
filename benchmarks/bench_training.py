"""Training benchmark: five proxy-loss methods on the synthetic hierarchy, several seeds, on the CPU.

Trains Euclidean SoftTriple, hyperbolic SoftTriple, CHEST (both heads reported), CP+Proxy-Anchor
and HPL+Proxy-Anchor with the same network (the small CNN), data (the embedded synthetic
hierarchy: 16 training classes, 16 unseen test classes), optimiser and schedule, over 3 seeds,
and reports Recall@1 and MAP@R on the test classes as mean ± std over the seeds. Then runs
``hyperdml demo`` (:func:`hyperdml.commands.demo.run_demo`, its own settings) on each demo seed and records,
per seed, R@1 of both heads and the trees decoded from both heads' class proxies: dendrogram
purity against the planted super-classes and Dasgupta's cost (super-class similarity).

    python benchmarks/bench_training.py              # the full table and the demo (~13 min on one quiet core)
    python benchmarks/bench_training.py --demo-only  # the demo's seeds only (~3 min)
    python benchmarks/bench_training.py --quick      # a smoke run: 2 epochs, 16×16 images

Appends sections to ``benchmarks/results/training_cpu.md`` and a record to
``training_cpu.jsonl`` (``--quick``: ``training_cpu-quick.*``, git-ignored), and prints the Markdown for the
training section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: method → (loss, extra loss args as a function of the epochs); heads reported per method
METHODS = {
    "SoftTriple (Euclidean)": ("soft_triple", lambda e: {"centers_per_class": 2}),
    "SoftTriple (hyperbolic)": ("hyp_soft_triple", lambda e: {"centers_per_class": 2}),
    "CHEST": ("chest", lambda e: {"centers_per_class": 2, "lambda_hc": 1.0}),
    "CP+PA": ("cp+proxy_anchor", lambda e: {"queue_size": 30, "start_epoch": max(1, e // 3)}),
    "HPL+PA": ("hpl+proxy_anchor", lambda e: {"levels": [4], "recluster_every": max(1, e // 4)}),
}

#: shared settings (the demo's optimiser and sizes: Euclidean heads 128-d, hyperbolic heads 32-d)
COMMON = {"dataset": "synthetic", "arch": "small_cnn", "embedding_size": 128, "hyperbolic_size": 32,
          "batch_size": 64, "samples_per_class": 4, "lr": 2e-3, "proxy_lr_mult": 10.0, "warmup_epochs": 1.0,
          "eval_every": 0, "device": "cpu", "quiet": True}


def run_one(method: str, seed: int, epochs: int, image_size: int, out: str) -> dict:
    """Train one (method, seed); returns ``{"heads": {head: metrics}, "seconds": float}``."""
    from hyperdml.train import train

    loss, args = METHODS[method]
    config = dict(COMMON, loss=loss, loss_args=args(epochs), epochs=epochs, seed=seed, image_size=image_size, out=out)
    t0 = time.perf_counter()
    heads = train(config)
    return {"heads": heads, "seconds": time.perf_counter() - t0}


def run_demo_seed(seed: int, out: str, threads: int, epochs: int | None = None) -> dict:
    """``hyperdml demo`` on one seed: ``{"seed", "seconds", "recall@1": {head}, "trees": {space: {purity, dasgupta}}}``."""
    from hyperdml.commands.demo import run_demo

    r = run_demo(out=out, seed=seed, quiet=True, threads=threads, epochs=epochs, overwrite=True)
    spaces = r["viz"]["metrics"]["spaces"]
    trees = {space: {"dendrogram_purity": m["dendrogram_purity"],
                     "dasgupta_cost": m["dasgupta_cost"].get("super_class")} for space, m in spaces.items()}
    return {"seed": seed, "seconds": r["seconds"], "recall@1": {h: m["recall@1"] for h, m in r["heads"].items()},
            "trees": trees}


def demo_markdown(runs: list[dict], title: str, note: str) -> str:
    """Markdown table of the demo's seeds: R@1 of both heads, purity and Dasgupta cost of both trees."""
    header = ["seed", "R@1 Euclidean (%)", "R@1 hyperbolic (%)", "purity, hyperbolic tree", "purity, Euclidean tree",
              "Dasgupta, hyperbolic tree", "Dasgupta, Euclidean tree", "s"]
    rows = []
    for r in runs:
        t = r["trees"]
        rows.append([str(r["seed"]), f"{100 * r['recall@1']['euclidean']:.2f}", f"{100 * r['recall@1']['hyperbolic']:.2f}",
                     f"{t['hyperbolic']['dendrogram_purity']:.3f}", f"{t['euclidean']['dendrogram_purity']:.3f}",
                     f"{t['hyperbolic']['dasgupta_cost']:.3f}", f"{t['euclidean']['dasgupta_cost']:.3f}",
                     f"{r['seconds']:.0f}"])
    return markdown(rows, header, title, note)


def _mean_std(values: list[float]) -> str:
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def table(results: dict) -> list[list[str]]:
    """Rows ``[method, head, R@1, MAP@R, seconds per run]`` from ``{method: [run, ...]}``."""
    rows = []
    for method, runs in results.items():
        for head in runs[0]["heads"]:
            r1 = [r["heads"][head]["recall@1"] for r in runs]
            mapr = [r["heads"][head]["map@r"] for r in runs]
            secs = statistics.mean(r["seconds"] for r in runs)
            rows.append([method, head, _mean_std(r1), _mean_std(mapr), f"{secs:.0f}"])
    return rows


def markdown(rows, header, title, note) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + ["", note, ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Full run: 5 methods × 3 seeds × 20 epochs and the demo on 3 seeds, about 13 min on one quiet "
                                            "CPU core. --quick: under a minute.")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 16×16 images (a smoke run)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20, quick 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="METHOD")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: fastest for these small tensors on a shared machine)")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="results folder")
    parser.add_argument("--keep-runs", default=None, metavar="DIR", help="keep each run's folder under DIR")
    parser.add_argument("--demo-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="seeds of the `hyperdml demo` runs (none: skip the demo)")
    parser.add_argument("--demo-only", action="store_true", help="run only the demo's seeds")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    epochs = args.epochs or (2 if args.quick else 20)
    image_size = 16 if args.quick else 32
    runs_dir = args.keep_runs or tempfile.mkdtemp(prefix="hyperdml-bench-training-")
    results: dict[str, list[dict]] = {}
    t_all = time.perf_counter()
    for method in ([] if args.demo_only else args.methods):
        for seed in args.seeds:
            out = os.path.join(runs_dir, f"{METHODS[method][0].replace('+', '_')}_seed{seed}")
            r = run_one(method, seed, epochs, image_size, out)
            results.setdefault(method, []).append(r)
            r1 = ", ".join(f"{h} {100 * m['recall@1']:.2f}" for h, m in r["heads"].items())
            print(f"{method:<24} seed {seed}: R@1 {r1}  ({r['seconds']:.0f} s)", flush=True)
    total = time.perf_counter() - t_all
    demo_runs = []
    t_demo = time.perf_counter()
    for seed in args.demo_seeds:
        r = run_demo_seed(seed, os.path.join(runs_dir, f"demo_seed{seed}"), args.threads, 2 if args.quick else None)
        demo_runs.append(r)
        t = r["trees"]
        print(f"demo seed {seed}: R@1 euclidean {100 * r['recall@1']['euclidean']:.2f}, hyperbolic "
              f"{100 * r['recall@1']['hyperbolic']:.2f}; purity hyperbolic {t['hyperbolic']['dendrogram_purity']:.3f}, "
              f"euclidean {t['euclidean']['dendrogram_purity']:.3f}; Dasgupta hyperbolic "
              f"{t['hyperbolic']['dasgupta_cost']:.3f}, euclidean {t['euclidean']['dasgupta_cost']:.3f}  "
              f"({r['seconds']:.0f} s)", flush=True)
    demo_total = time.perf_counter() - t_demo

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    device = f"{platform.machine()} CPU, {args.threads} thread{'s' if args.threads > 1 else ''}"
    header = ["method", "head", "R@1 (%)", "MAP@R (%)", "s / run"]
    rows = table(results)
    title = f"Training on the synthetic hierarchy, {device} ({date}, torch {torch.__version__})"
    note = (f"Small CNN, {epochs} epochs, batch {COMMON['batch_size']} ({COMMON['samples_per_class']} per class), "
            f"{image_size}×{image_size} images, Euclidean heads {COMMON['embedding_size']}-d, hyperbolic heads "
            f"{COMMON['hyperbolic_size']}-d (c = 0.1, clip 2.3), RiemannianAdam lr "
            f"{COMMON['lr']:g} (proxies ×{COMMON['proxy_lr_mult']:g}), warm-up + cosine; mean ± std over seeds "
            f"{', '.join(map(str, args.seeds))}; test: 16 classes unseen in training (1280 images). Euclidean heads "
            f"ranked by cosine, hyperbolic heads by Poincaré distance. Total {total / 60:.1f} min. "
            f"Command: `python benchmarks/bench_training.py{' --quick' if args.quick else ''}`.")
    text = markdown(rows, header, title, note) if results else ""
    if demo_runs:
        from hyperdml.commands.demo import DEMO_CONFIG

        cfg = DEMO_CONFIG
        demo_title = f"`hyperdml demo` on seeds {', '.join(map(str, args.demo_seeds))}, {device} ({date}, torch {torch.__version__})"
        demo_note = (f"CHEST ({', '.join(f'{k}={v}' for k, v in cfg['loss_args'].items())}, the other options at "
                     f"CHEST's defaults), small CNN, {2 if args.quick else cfg['epochs']} epochs, batch {cfg['batch_size']}, "
                     f"Euclidean head {cfg['embedding_size']}-d, hyperbolic head {cfg['hyperbolic_size']}-d "
                     f"(`--hyperbolic-head {cfg.get('hyperbolic_head', 'linear')}`); R@1 on the 16 "
                     "unseen test classes. Trees of the 16 training classes' proxies: hyperbolic by HypHC decoding, "
                     "Euclidean by single linkage on cosine; dendrogram purity against the 4 planted super-classes "
                     "(higher is better) and Dasgupta's cost for the super-class similarity (normalised, lower is "
                     f"better). Total {demo_total / 60:.1f} min. Command: `python benchmarks/bench_training.py"
                     f"{' --quick' if args.quick else ''}{' --demo-only' if args.demo_only else ''}`.")
        text += ("\n" if text else "") + demo_markdown(demo_runs, demo_title, demo_note)
    stem = "training_cpu-quick" if args.quick else "training_cpu"
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / f"{stem}.md", "a", encoding="utf-8") as f:
        f.write(text + "\n")
    record = {"date": date, "device": device, "torch": torch.__version__, "epochs": epochs, "image_size": image_size,
              "seeds": args.seeds, "common": COMMON, "header": header, "rows": rows,
              "runs": {m: [{"seconds": r["seconds"], "heads": r["heads"]} for r in rs] for m, rs in results.items()},
              "demo": demo_runs}
    with open(results_dir / f"{stem}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    print("\n--- for benchmarks/README.md (training section) ---\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
