"""Without the compiled extension the package imports, warns once, and the ops fall back to the
pure-PyTorch references (run in a subprocess with HYPERDML_DISABLE_EXTENSION=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import hyperdml
    from hyperdml.ops import poincare_cdist, hyphc_triplet_loss
import torch
ours = [w for w in caught if "hyperdml" in str(w.message)]
assert len(ours) == 1 and issubclass(ours[0].category, RuntimeWarning), [str(w.message) for w in ours]
assert not hyperdml.extension_info()["extension"]
from hyperdml.ops import reference as R
g = torch.Generator().manual_seed(0)
x = (torch.randn(5, 4, generator=g, dtype=torch.float64) * 0.2).requires_grad_()
y = (torch.randn(3, 4, generator=g, dtype=torch.float64) * 0.2).requires_grad_()
assert torch.autograd.gradcheck(lambda a, b: poincare_cdist(a, b, 0.5), (x, y))
torch.testing.assert_close(poincare_cdist(x, y, 0.5), R.poincare_cdist_reference(x, y, 0.5))
t = torch.randint(0, 5, (20, 3), generator=g)
s = torch.rand(20, 3, generator=g, dtype=torch.float64)
assert torch.autograd.gradcheck(lambda p: hyphc_triplet_loss(p, t, s, 1.0, 0.5), (x,))
for bad in (lambda: poincare_cdist(x * 10, y, 1.0), lambda: hyphc_triplet_loss(x, t + 10, s, 1.0)):
    try:
        bad()
    except ValueError:
        pass
    else:
        raise AssertionError("bad input did not raise")
torch.library.opcheck(torch.ops.hyperdml.poincare_cdist.default, (x.detach(), y.detach(), 0.5))
torch.library.opcheck(torch.ops.hyperdml.hyphc_triplet_loss.default, (x.detach(), t, s, 1.0, 0.5))
d = poincare_cdist(x, y, 0.5).detach()
torch.library.opcheck(torch.ops.hyperdml.poincare_cdist_backward.default, (torch.ones_like(d), x, y, d, 0.5))
torch.library.opcheck(torch.ops.hyperdml.hyphc_triplet_loss_backward.default, (torch.ones(20, dtype=torch.float64), x, t, s, 1.0, 0.5))
# the backward ops check their inputs as the kernels do
for bad, fragment in (
    (lambda: torch.ops.hyperdml.poincare_cdist_backward(torch.ones_like(d), x * float("nan"), y, d, 0.5), "x contains NaN"),
    (lambda: torch.ops.hyperdml.poincare_cdist_backward(torch.ones_like(d), x, y, -d - 1, 0.5), "dist contains NaN, Inf or a negative"),
    (lambda: torch.ops.hyperdml.poincare_cdist_backward(torch.ones_like(d)[:2], x, y, d, 0.5), "must have shape (5, 3)"),
    (lambda: torch.ops.hyperdml.hyphc_triplet_loss_backward(torch.ones(20, dtype=torch.float64), x * 9, t, s, 1.0, 0.5), "boundary"),
    (lambda: torch.ops.hyperdml.hyphc_triplet_loss_backward(torch.ones(3, dtype=torch.float64), x, t, s, 1.0, 0.5), "grad must have shape (20,)"),
    (lambda: torch.ops.hyperdml.hyphc_triplet_loss(x, t, s, 1000.0, 0.5), "within [1e-06, 700]"),
):
    try:
        bad()
    except ValueError as error:
        assert fragment in str(error), (fragment, str(error))
    else:
        raise AssertionError(f"no error: {fragment}")
# second derivatives and a tiny temperature
gx, gy = torch.autograd.grad(poincare_cdist(x, y, 0.5).sum(), (x, y), create_graph=True)
rx, ry = torch.autograd.grad(R.poincare_cdist_reference(x, y, 0.5).sum(), (x, y), create_graph=True)
for a, b in zip(torch.autograd.grad(gx.pow(2).sum() + gy.sum(), (x, y)), torch.autograd.grad(rx.pow(2).sum() + ry.sum(), (x, y))):
    torch.testing.assert_close(a, b)
assert torch.autograd.gradgradcheck(lambda p: hyphc_triplet_loss(p, t, s, 1.0, 0.5), (x,))
assert torch.isfinite(hyphc_triplet_loss(x.float(), t, s.float(), 1.0, 1e-30)).all()
print("fallback ok")
"""


def test_package_works_without_the_extension():
    env = {**os.environ, "HYPERDML_DISABLE_EXTENSION": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fallback ok" in result.stdout
