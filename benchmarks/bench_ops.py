"""Benchmark an op and refresh ``benchmarks/README.md``: ``hyperdml bench OP ...`` then ``report.py``.

``python benchmarks/bench_ops.py {cdist,hyphc} [options of hyperdml bench]``: results go to
``benchmarks/results/`` unless ``--out`` says otherwise; after a full run (not ``--quick``, not
``--dry-run``) into that folder the README's tables and targets are regenerated. Works from a
source checkout without installing the package.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from hyperdml.cli import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    default_out = not any(a == "--out" or a.startswith("--out=") for a in args)
    if default_out:
        args += ["--out", os.path.join(HERE, "results")]
    status = main(["bench", *args])
    if status == 0 and default_out and not {"--quick", "--dry-run", "-h", "--help"} & set(args):
        import report

        report.main([])
    sys.exit(status)
