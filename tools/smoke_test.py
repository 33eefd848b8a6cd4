"""Smoke test of an installed hyperdml: the compiled extension loads, and its CPU kernels agree
with the pure-PyTorch references (forward and backward of both ops).

    python tools/smoke_test.py [--installed] [--expect-capability AVX2] [--refused AVX512]

--installed: hyperdml must come from site-packages, not from a source tree.
--expect-capability: the instruction set the kernels must run with.
--refused: HYPERDML_CPU_CAPABILITY=<set> must be refused (a ValueError naming the CPU's lack)
before the default choice is made (the choice is retried after a refusal).
Run it from outside the source tree (``python /path/to/tools/smoke_test.py``).
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installed", action="store_true")
    parser.add_argument("--expect-capability", choices=["DEFAULT", "AVX2", "AVX512"])
    parser.add_argument("--refused", choices=["DEFAULT", "AVX2", "AVX512"])
    args = parser.parse_args()

    import torch

    import hyperdml
    from hyperdml.ops import hyphc_triplet_loss, poincare_cdist, reference

    where = os.path.dirname(os.path.abspath(hyperdml.__file__))
    print(f"hyperdml {hyperdml.__version__} from {where}")
    if args.installed and "site-packages" not in where.split(os.sep):
        raise SystemExit(f"hyperdml was imported from {where}, not from an installation")
    if not hyperdml.HAS_EXTENSION:
        raise SystemExit(f"the compiled extension did not load: {hyperdml.extension_info()['error']}")
    if args.refused:
        os.environ["HYPERDML_CPU_CAPABILITY"] = args.refused
        try:
            hyperdml.extension_info()
        except ValueError as error:
            if "does not support" not in str(error):
                raise
            print(f"HYPERDML_CPU_CAPABILITY={args.refused} refused: {error}")
        else:
            raise SystemExit(f"HYPERDML_CPU_CAPABILITY={args.refused} was not refused")
        del os.environ["HYPERDML_CPU_CAPABILITY"]
    info = hyperdml.extension_info()
    print(f"extension_info: {info}")
    if args.expect_capability and info["cpu_capability"] != args.expect_capability:
        raise SystemExit(f"CPU kernels run with {info['cpu_capability']}, expected {args.expect_capability}")

    torch.manual_seed(0)
    c = 0.7
    x = ((torch.rand(37, 19, dtype=torch.float64) - 0.5) * 0.5).requires_grad_()
    y = ((torch.rand(45, 19, dtype=torch.float64) - 0.5) * 0.5).requires_grad_()
    d = poincare_cdist(x, y, c)
    grad = torch.rand_like(d)
    gx, gy = torch.autograd.grad(d, (x, y), grad)
    d_ref = reference.poincare_cdist_reference(x, y, c)
    gx_ref, gy_ref = torch.autograd.grad(d_ref, (x, y), grad)
    torch.testing.assert_close(d, d_ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close((gx, gy), (gx_ref, gy_ref), rtol=1e-7, atol=1e-10)

    points = ((torch.rand(50, 9, dtype=torch.float64) - 0.5) * 0.6).requires_grad_()
    triplets = torch.randint(0, 50, (203, 3))
    sims = torch.rand(203, 3, dtype=torch.float64)
    loss = hyphc_triplet_loss(points, triplets, sims, c, 0.1)
    (g,) = torch.autograd.grad(loss.sum(), points)
    loss_ref = reference.hyphc_triplet_loss_reference(points, triplets, sims, c, 0.1)
    (g_ref,) = torch.autograd.grad(loss_ref.sum(), points)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-7, atol=1e-10)
    print(f"poincare_cdist and hyphc_triplet_loss ({info['cpu_capability']}) match the references")
    return 0


if __name__ == "__main__":
    sys.exit(main())
