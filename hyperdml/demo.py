"""``hyperdml demo``: the two hot ops against their oracles on random points, with timings.

Until the trainer lands this is the package's main job: it shows that ``poincare_cdist`` agrees
with geoopt's ``PoincareBall.dist`` and that ``hyphc_triplet_loss`` agrees with its eager
reference, and how much faster and leaner the compiled ops are.
"""

from __future__ import annotations

import time


def _timed(fn, repeat=5):
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - start) / repeat * 1e3


def main() -> int:
    """Run the demo; returns a process exit code (non-zero if an op disagrees with its oracle)."""
    import torch

    import hyperdml
    from hyperdml.ops import hyphc_triplet_loss, hyphc_triplet_loss_reference, poincare_cdist

    info = hyperdml.extension_info()
    print(f"hyperdml {hyperdml.__version__}, torch {torch.__version__}; compiled extension: "
          f"{'yes' if info['extension'] else 'no (' + str(info['error']) + ')'}, CUDA kernels: "
          f"{'yes' if info['cuda'] else 'no'}")
    g = torch.Generator().manual_seed(0)
    ok = True
    print("\npoincare_cdist(x, y, c) vs geoopt.PoincareBall(c).dist, float64, points up to 0.9/sqrt(c)")
    print(f"{'c':>5} {'B x N x D':>14} {'max |diff|':>11} {'op ms':>8} {'geoopt ms':>10}")
    for c in (0.1, 1.0, 2.5):
        b, n, d = 256, 1000, 64
        x = torch.randn(b, d, generator=g, dtype=torch.float64)
        y = torch.randn(n, d, generator=g, dtype=torch.float64)
        x = x / x.norm(dim=1, keepdim=True) * torch.rand(b, 1, generator=g, dtype=torch.float64) * 0.9 / c**0.5
        y = y / y.norm(dim=1, keepdim=True) * torch.rand(n, 1, generator=g, dtype=torch.float64) * 0.9 / c**0.5
        ours, t_ours = _timed(lambda: poincare_cdist(x, y, c))
        ball = hyperdml.geometry.ball(c)
        theirs, t_theirs = _timed(lambda: ball.dist(x[:, None, :], y[None, :, :]))
        err = (ours - theirs).abs().max().item()
        ok &= err < 1e-6
        print(f"{c:>5} {f'{b}x{n}x{d}':>14} {err:>11.2e} {t_ours:>8.2f} {t_theirs:>10.2f}")

    print("\nhyphc_triplet_loss vs its eager reference, float32, P = 2000, D = 64 (forward + backward)")
    print(f"{'T':>9} {'max |diff|':>11} {'op ms':>8} {'eager ms':>9}")
    points = torch.randn(2000, 64, generator=g) * 0.05
    for t in (10_000, 100_000):
        triplets = torch.randint(0, 2000, (t, 3), generator=g)
        sims = torch.rand(t, 3, generator=g)

        def step(fn):
            p = points.clone().requires_grad_(True)
            loss = fn(p, triplets, sims, 1.0, 0.05)
            loss.mean().backward()
            return loss.detach()

        ours, t_ours = _timed(lambda: step(hyphc_triplet_loss), repeat=3)
        ref, t_ref = _timed(lambda: step(hyphc_triplet_loss_reference), repeat=3)
        err = (ours - ref).abs().max().item()
        ok &= err < 1e-4
        print(f"{t:>9,} {err:>11.2e} {t_ours:>8.1f} {t_ref:>9.1f}")
    print("\nall ops agree with their oracles" if ok else "\nMISMATCH: an op disagrees with its oracle")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
