"""Benchmark ``hyphc_triplet_loss`` against its competitors: a thin wrapper over ``hyperdml bench hyphc``.

Same options as the command (``--help``); results go to ``benchmarks/results/`` unless ``--out``
says otherwise. Works from a source checkout without installing the package::

    python benchmarks/bench_hyphc_triplet.py [--device cuda] [--quick] [--T 100000,1000000] ...
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from hyperdml.cli import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", os.path.join(HERE, "results")]
    sys.exit(main(["bench", "hyphc", *args]))
