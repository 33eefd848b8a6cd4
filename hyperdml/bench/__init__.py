"""Benchmarks of the two compiled ops against other ways to compute the same thing.

- :mod:`hyperdml.bench.timing`: median/IQR timing (``torch.utils.benchmark``) and peak memory.
- :mod:`hyperdml.bench.competitors`: the competitors (bare matmuls, plain PyTorch eager and
  compiled, geoopt; HypHC's eager formulation) with the op's signature.
- :mod:`hyperdml.bench.cdist`, :mod:`hyperdml.bench.hyphc`: inputs, shapes and passes per op.
- :mod:`hyperdml.bench.runner`: runs cases in fresh processes; :mod:`hyperdml.bench.suite`: one
  op's whole run; :mod:`hyperdml.bench.results`: JSON, ratios, targets, Markdown, plot.

Command line: ``hyperdml bench cdist|hyphc|report`` (:mod:`hyperdml.commands.bench`).
"""
