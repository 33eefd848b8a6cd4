"""Higher derivatives and torch.func transforms through both ops, against the pure-PyTorch
references (autograd of the textbook formulas, float64) and finite differences (gradgradcheck)."""

from __future__ import annotations

import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

from conftest import ball_points
from hyperdml.ops import hyphc_triplet_loss, poincare_cdist
from hyperdml.ops.reference import hyphc_triplet_loss_reference, poincare_cdist_reference

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def cdist_problem(device, b=4, n=5, d=3, c=0.7):
    x = ball_points(b, d, c, max_frac=0.9, seed=31, device=device).requires_grad_(True)
    y = ball_points(n, d, c, max_frac=0.9, seed=32, device=device).requires_grad_(True)
    return x, y, c


def hyphc_problem(device, p=6, d=3, t=25, c=0.7):
    g = torch.Generator().manual_seed(33)
    points = ball_points(p, d, c, max_frac=0.9, seed=34, device=device).requires_grad_(True)
    triplets = torch.randint(0, p, (t, 3), generator=g).to(device)
    sims = torch.rand(t, 3, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    return points, triplets, sims, c


# -- the face functions and the raw ops, second derivatives ----------------------------------

CDIST_FORMS = {
    "face": lambda a, b, c: poincare_cdist(a, b, c),
    "raw op": lambda a, b, c: torch.ops.hyperdml.poincare_cdist(a, b, c),
}
HYPHC_FORMS = {
    "face": lambda p, t, s, c, tau: hyphc_triplet_loss(p, t, s, c, tau),
    "raw op": lambda p, t, s, c, tau: torch.ops.hyperdml.hyphc_triplet_loss(p, t, s, c, tau),
}


@pytest.mark.parametrize("form", CDIST_FORMS)
def test_cdist_gradgradcheck(form, device):
    x, y, c = cdist_problem(device)
    f = CDIST_FORMS[form]
    assert torch.autograd.gradgradcheck(lambda a, b: f(a, b, c), (x, y))
    assert torch.autograd.gradgradcheck(lambda a: f(a, y.detach(), c), (x,))


@pytest.mark.parametrize("form", HYPHC_FORMS)
def test_hyphc_gradgradcheck(form, device):
    points, triplets, sims, c = hyphc_problem(device)
    f = HYPHC_FORMS[form]
    assert torch.autograd.gradgradcheck(lambda p, s: f(p, triplets, s, c, 0.3), (points, sims))


@pytest.mark.parametrize("form", CDIST_FORMS)
def test_cdist_gradient_penalty_matches_reference(form, device):
    """d/dx of Σ‖∂L/∂x‖ terms (a gradient penalty) with x and y both requiring grad."""
    x, y, c = cdist_problem(device, b=6, n=7, d=4)
    weight = torch.randn(6, 7, generator=torch.Generator().manual_seed(35), dtype=torch.float64).to(device)

    def penalty_grads(dist_fn):
        gx, gy = torch.autograd.grad((dist_fn(x, y, c) * weight).sum(), (x, y), create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum() + gx.sum() + gy.sin().sum(), (x, y))

    got = penalty_grads(CDIST_FORMS[form])
    want = penalty_grads(poincare_cdist_reference)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * b.abs().max().item())
    # the rows of the second derivative are not all equal (they were, through the fused kernel)
    assert not torch.allclose(got[0], got[0][:, :1].expand_as(got[0]))


@pytest.mark.parametrize("form", HYPHC_FORMS)
def test_hyphc_gradient_penalty_matches_reference(form, device):
    points, triplets, sims, c = hyphc_problem(device)

    def penalty_grads(loss_fn):
        gp, gs = torch.autograd.grad(loss_fn(points, triplets, sims, c, 0.2).sum(), (points, sims), create_graph=True)
        return torch.autograd.grad(gp.pow(2).sum() + (gs * gs.detach()).sum(), (points, sims))

    got = penalty_grads(HYPHC_FORMS[form])
    want = penalty_grads(hyphc_triplet_loss_reference)
    assert all(g is not None for g in got)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8 * b.abs().max().item())


def test_hessian_vector_product_matches_reference(device):
    x, y, c = cdist_problem(device)
    v = torch.randn_like(x)
    ours = torch.autograd.functional.hvp(lambda a: poincare_cdist(a, y.detach(), c).sum(), x.detach(), v)[1]
    ref = torch.autograd.functional.hvp(lambda a: poincare_cdist_reference(a, y.detach(), c).sum(), x.detach(), v)[1]
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10)


def test_backward_ops_are_differentiable(device):
    """The backward ops have derivatives of their own (called directly with inputs requiring grad)."""
    x, y, c = cdist_problem(device)
    dist = poincare_cdist(x, y, c).detach().requires_grad_(True)
    grad = torch.rand_like(dist).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda g, a, b, d: torch.ops.hyperdml.poincare_cdist_backward(g, a, b, d, c), (grad, x, y, dist)
    )
    points, triplets, sims, c = hyphc_problem(device)
    grad = torch.rand(triplets.shape[0], dtype=torch.float64, device=device).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda g, p, s: torch.ops.hyperdml.hyphc_triplet_loss_backward(g, p, triplets, s, c, 0.3), (grad, points, sims)
    )


def test_backward_opcheck_with_inputs_requiring_grad(device):
    x, y, c = cdist_problem(device)
    dist = poincare_cdist(x, y, c).detach()
    grad = torch.rand_like(dist)
    torch.library.opcheck(torch.ops.hyperdml.poincare_cdist_backward.default, (grad, x, y, dist, c))
    points, triplets, sims, c = hyphc_problem(device)
    grad = torch.rand(triplets.shape[0], dtype=torch.float64, device=device)
    torch.library.opcheck(
        torch.ops.hyperdml.hyphc_triplet_loss_backward.default, (grad, points, triplets, sims, c, 0.3)
    )


# -- the fused kernel stays in first-order backward passes -----------------------------------


def op_targets(gm):
    return {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}


def test_compiled_backward_uses_the_fused_backward_ops(device):
    """The differentiable formulas replace the kernels only when a graph of the gradient is built."""
    graphs = []
    def keep_backward_graph(gm, _):
        graphs.append(op_targets(gm))
        return make_boxed_func(gm)

    backend = aot_autograd(fw_compiler=lambda gm, _: make_boxed_func(gm), bw_compiler=keep_backward_graph)
    x, y, c = cdist_problem(device)
    torch.compile(lambda a, b: poincare_cdist(a, b, c).sum(), fullgraph=True, backend=backend)(x, y).backward()
    points, triplets, sims, c = hyphc_problem(device)
    f = torch.compile(lambda p, s: hyphc_triplet_loss(p, triplets, s, c, 0.3).sum(), fullgraph=True, backend=backend)
    f(points, sims).backward()
    assert "hyperdml.poincare_cdist_backward.default" in graphs[0]
    # Compiled, the backward is the recomputing kernel (whether the incoming gradient is one value
    # depends on the data, which a compiled graph cannot branch on).
    assert "hyperdml.hyphc_triplet_loss_backward.default" in graphs[1]
    assert not any("sinh" in t or "atanh" in t for g in graphs for t in g)


# -- torch.func ------------------------------------------------------------------------------


def test_torch_func_grad_and_jacrev_match_reference(device):
    x, y, c = cdist_problem(device)
    x, y = x.detach(), y.detach()
    for transform in (torch.func.grad, torch.func.jacrev):
        got = transform(lambda a, b: poincare_cdist(a, b, c).sin().sum(), argnums=(0, 1))(x, y)
        want = transform(lambda a, b: poincare_cdist_reference(a, b, c).sin().sum(), argnums=(0, 1))(x, y)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    jac = torch.func.jacrev(lambda a: poincare_cdist(a, y, c))(x)
    jac_ref = torch.func.jacrev(lambda a: poincare_cdist_reference(a, y, c))(x)
    torch.testing.assert_close(jac, jac_ref, rtol=1e-10, atol=1e-12)
    hess = torch.func.jacrev(torch.func.jacrev(lambda a: poincare_cdist(a, y, c).sum()))(x)
    hess_ref = torch.func.jacrev(torch.func.jacrev(lambda a: poincare_cdist_reference(a, y, c).sum()))(x)
    torch.testing.assert_close(hess, hess_ref, rtol=1e-9, atol=1e-10)

    points, triplets, sims, c = hyphc_problem(device)
    points, sims = points.detach(), sims.detach()
    got = torch.func.grad(lambda p, s: hyphc_triplet_loss(p, triplets, s, c, 0.3).sum(), argnums=(0, 1))(points, sims)
    want = torch.func.grad(lambda p, s: hyphc_triplet_loss_reference(p, triplets, s, c, 0.3).sum(), argnums=(0, 1))(
        points, sims
    )
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_vmap_matches_a_loop(device):
    x, y, c = cdist_problem(device)
    xs = torch.stack([x.detach(), x.detach().flip(0)])  # (2, B, D)
    ys = torch.stack([y.detach(), y.detach() * 0.5])
    torch.testing.assert_close(torch.vmap(lambda a: poincare_cdist(a, ys[0], c))(xs),
                               torch.stack([poincare_cdist_reference(a, ys[0], c) for a in xs]))
    torch.testing.assert_close(torch.vmap(lambda a, b: poincare_cdist(a, b, c))(xs, ys),
                               torch.stack([poincare_cdist_reference(a, b, c) for a, b in zip(xs, ys)]))
    # per-sample gradients: vmap over grad
    per_sample = torch.vmap(torch.func.grad(lambda a: poincare_cdist(a[None], ys[0], c).sum()))(xs[0])
    want = torch.func.grad(lambda a: poincare_cdist_reference(a, ys[0], c).sum())(xs[0])
    torch.testing.assert_close(per_sample, want)

    points, triplets, sims, c = hyphc_problem(device)
    batch = torch.stack([points.detach(), points.detach() * 0.5])
    torch.testing.assert_close(
        torch.vmap(lambda p: hyphc_triplet_loss(p, triplets, sims.detach(), c, 0.3))(batch),
        torch.stack([hyphc_triplet_loss_reference(p, triplets, sims.detach(), c, 0.3) for p in batch]),
    )
