"""Bad inputs to every public op, loss, space and geometry helper raise a Python exception whose
message names the problem; none crashes the process.

(The ops' own test files already cover their most common bad inputs; this suite adds the rest:
NaN/Inf/tensor curvatures and temperatures, exotic dtypes and ranks, huge and negative indices,
the compiled kernels called directly through ``torch.ops.hyperdml`` in a subprocess, NaN/Inf
hyperparameters, diverged proxies, and the modules built on top of the ops.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import ball_points, requires_cuda
from hyperdml import geometry
from hyperdml.losses import CHEST, HypHCLoss, ProxyAnchor, ProxyNCA, SoftTriple
from hyperdml.ops import hyphc_triplet_loss, poincare_cdist
from hyperdml.spaces import EuclideanSpace, PoincareSpace

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

NAN, INF = float("nan"), float("inf")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raises(fn, error, *fragments):
    """``fn()`` raises ``error`` and its message contains every fragment (case-sensitive)."""
    with pytest.raises(error) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# -- poincare_cdist ---------------------------------------------------------------------------

X = ball_points(3, 4, 1.0, max_frac=0.5, seed=0)


@pytest.mark.parametrize(
    "args, error, fragments",
    [
        ((X, X, NAN), ValueError, ["curvature c", "nan"]),
        ((X, X, INF), ValueError, ["curvature c", "inf"]),
        ((X, X, -0.0), ValueError, ["curvature c"]),
        ((X, X, torch.tensor(1.0)), TypeError, ["curvature c must be a Python number, not a tensor"]),
        ((X, X, torch.tensor(1.0, requires_grad=True)), TypeError, ["not learnable"]),
        ((X, X, True), TypeError, ["curvature c must be a Python number, got bool"]),
        ((X, X, "one"), TypeError, ["curvature c must be a Python number, got str"]),
        ((X, X, 1e-7), ValueError, ["curvature c", "within [1e-06, 700]", "got 1e-07"]),
        ((X * 0.01, X * 0.01, 710.0), ValueError, ["curvature c", "within [1e-06, 700]", "got 710"]),
        (([[0.0] * 4], X, 1.0), TypeError, ["x must be a torch.Tensor"]),
        ((X, X.tolist(), 1.0), TypeError, ["y must be a torch.Tensor"]),
        ((X[None], X, 1.0), ValueError, ["x must have shape (rows, D)", "(1, 3, 4)"]),
        ((X, X[0], 1.0), ValueError, ["y must have shape (rows, D)", "(4,)"]),
        ((torch.tensor(0.5), X, 1.0), ValueError, ["x must have shape (rows, D)"]),
        ((X > 0, X, 1.0), TypeError, ["float32 or float64", "torch.bool"]),
        ((X.to(torch.complex128), X, 1.0), TypeError, ["float32 or float64", "complex"]),
        ((X.to(torch.int32), X, 1.0), TypeError, ["float32 or float64", "int32"]),
        ((X, X.half(), 1.0), TypeError, ["one dtype"]),  # half is computed in float32, x is float64
        ((X, X[:, :3], 1.0), ValueError, ["D=3", "D=4"]),
        ((X, torch.full((1, 4), -INF, dtype=torch.float64), 1.0), ValueError, ["y contains NaN or Inf"]),
        ((X / X.norm(dim=1, keepdim=True) * 1.5, X, 1.0), ValueError, ["outside the boundary", "max norm 1.5"]),
        ((X, X / X.norm(dim=1, keepdim=True), 1.0), ValueError, ["on or outside the boundary"]),
        ((X, X, 100.0), ValueError, ["boundary", "curvature -100"]),
    ],
    ids=lambda v: None,
)
def test_poincare_cdist_bad_input(args, error, fragments):
    raises(lambda: poincare_cdist(*args), error, *fragments)


def test_poincare_cdist_nan_in_one_float32_entry():
    x = X.float().clone()
    x[1, 2] = NAN
    raises(lambda: poincare_cdist(X.float(), x, 0.5), ValueError, "y contains NaN or Inf")


# -- hyphc_triplet_loss -----------------------------------------------------------------------

P = ball_points(5, 3, 1.0, max_frac=0.8, seed=1)
T = torch.tensor([[0, 1, 2], [3, 4, 0], [1, 1, 4], [2, 3, 3]])
S = torch.rand(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "args, error, fragments",
    [
        ((P, T, S, NAN, 0.1), ValueError, ["curvature c"]),
        ((P, T, S, 1.0, NAN), ValueError, ["temperature tau"]),
        ((P, T, S, 1.0, INF), ValueError, ["temperature tau"]),
        ((P, T, S, 1.0, "x"), TypeError, ["temperature tau must be a Python number, got str"]),
        ((P, T, S, 1.0, torch.tensor(0.1, requires_grad=True)), TypeError, ["tau must be a Python number, not a tensor"]),
        ((P, T, S, 1.0, False), TypeError, ["temperature tau must be a Python number, got bool"]),
        ((P, T, S, 1.0, 1e-31), ValueError, ["temperature tau must be a finite number >= 1e-30", "got 1e-31"]),
        ((P, T, S, 1.0, 0.0), ValueError, ["temperature tau must be a finite number >= 1e-30"]),
        ((P, T.double(), S, 1.0, 0.1), TypeError, ["triplets must be an int64 tensor", "float64"]),
        ((P, T.tolist(), S, 1.0, 0.1), TypeError, ["triplets must be an int64 tensor"]),
        ((P, T[0], S[0], 1.0, 0.1), ValueError, ["triplets must have shape (T, 3)", "(3,)"]),
        ((P, T[:, None], S, 1.0, 0.1), ValueError, ["triplets must have shape (T, 3)"]),
        ((P, T, S.long(), 1.0, 0.1), TypeError, ["one dtype"]),
        ((P, T, S.tolist(), 1.0, 0.1), ValueError, ["sims must have the shape of triplets"]),
        ((P, T, S.t(), 1.0, 0.1), ValueError, ["sims must have the shape of triplets (4, 3)", "(3, 4)"]),
        ((P, T, S * INF, 1.0, 0.1), ValueError, ["sims contains NaN or Inf"]),
        ((P, T.clone().fill_(2**62), S, 1.0, 0.1), ValueError, ["out of range [0, 5)", str(2**62)]),
        ((P, T.clone().fill_(-(2**63)), S, 1.0, 0.1), ValueError, ["out of range [0, 5)"]),
        ((P, T - 5, S, 1.0, 0.1), ValueError, ["out of range", "min -5"]),
        ((P[:0], T, S, 1.0, 0.1), ValueError, ["out of range [0, 0)"]),
        ((P.long(), T, S, 1.0, 0.1), TypeError, ["points must be float32 or float64"]),
        ((P[None], T, S, 1.0, 0.1), ValueError, ["points must have shape (rows, D)"]),
        ((P * INF, T, S, 1.0, 0.1), ValueError, ["points contains NaN or Inf"]),
        ((P * 2, T, S, 1.0, 0.1), ValueError, ["boundary"]),
        ((P, T, S, 4.0, 0.1), ValueError, ["boundary", "curvature -4"]),
    ],
    ids=lambda v: None,
)
def test_hyphc_triplet_loss_bad_input(args, error, fragments):
    raises(lambda: hyphc_triplet_loss(*args), error, *fragments)


def test_hyphc_triplet_loss_out_of_range_in_a_non_contiguous_triplet_tensor():
    """The index check reads the values, not the memory: a transposed tensor with a bad entry."""
    tri = T.t().contiguous()
    tri[2, 3] = 5
    raises(lambda: hyphc_triplet_loss(P, tri.t(), S, 1.0), ValueError, "out of range [0, 5)", "max 5")


# -- the compiled kernels called directly (no Python checks), in a subprocess ------------------

DIRECT_CASES = r"""
import sys, warnings
warnings.simplefilter("ignore")
import torch
import hyperdml.ops  # registers torch.ops.hyperdml.*
ops = torch.ops.hyperdml
g = torch.Generator().manual_seed(0)
P = torch.rand(6, 3, generator=g, dtype=torch.float64) * 0.3
T = torch.randint(0, 6, (40, 3), generator=g)
S = torch.rand(40, 3, generator=g, dtype=torch.float64)
G = torch.ones(40, dtype=torch.float64)
X = torch.rand(4, 3, generator=g, dtype=torch.float64) * 0.3
D = ops.poincare_cdist(X, X, 1.0)
big = T.clone(); big[17, 1] = 2**62
neg = T.clone(); neg[39, 2] = -1
lowest = T.clone(); lowest[0, 0] = -2**63
strided = torch.cat([T, T + 10**9], 1)[:, :3]  # in range, next to out-of-range memory
strided_bad = torch.cat([T + 10**9, T], 1)[:, :3]
cases = {
    "forward +100": lambda: ops.hyphc_triplet_loss(P, T + 100, S, 1.0, 0.1),
    "forward 2**62": lambda: ops.hyphc_triplet_loss(P, big, S, 1.0, 0.1),
    "forward -1": lambda: ops.hyphc_triplet_loss(P, neg, S, 1.0, 0.1),
    "forward -2**63": lambda: ops.hyphc_triplet_loss(P, lowest, S, 1.0, 0.1),
    "forward no points": lambda: ops.hyphc_triplet_loss(P[:0], T, S, 1.0, 0.1),
    "forward strided ok": lambda: ops.hyphc_triplet_loss(P, strided, S, 1.0, 0.1),
    "forward strided bad": lambda: ops.hyphc_triplet_loss(P, strided_bad, S, 1.0, 0.1),
    "forward int32": lambda: ops.hyphc_triplet_loss(P, T.int(), S, 1.0, 0.1),
    "forward sims rows": lambda: ops.hyphc_triplet_loss(P, T, S[:5], 1.0, 0.1),
    "forward points 1-D": lambda: ops.hyphc_triplet_loss(P[0], T, S, 1.0, 0.1),
    "forward tau nan": lambda: ops.hyphc_triplet_loss(P, T, S, 1.0, float("nan")),
    "forward c 0": lambda: ops.hyphc_triplet_loss(P, T, S, 0.0, 0.1),
    "forward outside": lambda: ops.hyphc_triplet_loss(P * 10, T, S, 1.0, 0.1),
    "backward 2**62": lambda: ops.hyphc_triplet_loss_backward(G, P, big, S, 1.0, 0.1),
    "backward -1": lambda: ops.hyphc_triplet_loss_backward(G, P, neg, S, 1.0, 0.1),
    "backward grad short": lambda: ops.hyphc_triplet_loss_backward(G[:3], P, T, S, 1.0, 0.1),
    "backward grad 2-D": lambda: ops.hyphc_triplet_loss_backward(G[:, None], P, T, S, 1.0, 0.1),
    "backward grad float32": lambda: ops.hyphc_triplet_loss_backward(G.float(), P, T, S, 1.0, 0.1),
    "cdist backward grad short": lambda: ops.poincare_cdist_backward(D[:2], X, X, D, 1.0),
    "cdist backward dist short": lambda: ops.poincare_cdist_backward(D, X, X, D[:, :1], 1.0),
    "cdist backward grad float32": lambda: ops.poincare_cdist_backward(D.float(), X, X, D, 1.0),
    "cdist backward D mismatch": lambda: ops.poincare_cdist_backward(D, X, X[:, :2], D, 1.0),
    "cdist backward x nan": lambda: ops.poincare_cdist_backward(D, X * float("nan"), X, D, 1.0),
    "cdist backward y outside": lambda: ops.poincare_cdist_backward(D, X, X * 10, D, 1.0),
    "cdist backward dist nan": lambda: ops.poincare_cdist_backward(D, X, X, D * float("nan"), 1.0),
    "cdist backward dist negative": lambda: ops.poincare_cdist_backward(D, X, X, -1 - D, 1.0),
    "cdist backward dist inf": lambda: ops.poincare_cdist_backward(D, X, X, D + float("inf"), 1.0),
    "cdist backward c 710": lambda: ops.poincare_cdist_backward(D, X * 0.01, X * 0.01, D, 710.0),
    "cdist backward ok": lambda: ops.poincare_cdist_backward(D, X, X, D, 1.0),
    "backward points nan": lambda: ops.hyphc_triplet_loss_backward(G, P * float("nan"), T, S, 1.0, 0.1),
    "backward points outside": lambda: ops.hyphc_triplet_loss_backward(G, P * 10, T, S, 1.0, 0.1),
    "backward sims inf": lambda: ops.hyphc_triplet_loss_backward(G, P, T, S + float("inf"), 1.0, 0.1),
    "backward tau tiny": lambda: ops.hyphc_triplet_loss_backward(G, P, T, S, 1.0, 1e-40),
    "cdist D mismatch": lambda: ops.poincare_cdist(X, X[:, :2], 1.0),
    "cdist nan": lambda: ops.poincare_cdist(X * float("nan"), X, 1.0),
    "cdist int": lambda: ops.poincare_cdist(X.long(), X.long(), 1.0),
    "cdist c inf": lambda: ops.poincare_cdist(X, X, float("inf")),
}
only = sys.argv[1:]
for name, fn in cases.items():
    if only and name not in only:
        continue
    print("START", name, flush=True)
    try:
        out = fn()
        print("RESULT", name, "| OK", tuple(out.shape) if isinstance(out, torch.Tensor) else "", flush=True)
    except Exception as e:  # noqa: BLE001
        print("RESULT", name, "|", type(e).__name__, str(e).splitlines()[0], flush=True)
print("DONE", flush=True)
"""

#: expected (exception type, message fragment) of each direct call; "OK" where the call is legal.
DIRECT_EXPECTED = {
    "forward +100": ("ValueError", "out of range [0, 6)"),
    "forward 2**62": ("ValueError", "out of range [0, 6)"),
    "forward -1": ("ValueError", "out of range [0, 6)"),
    "forward -2**63": ("ValueError", "out of range [0, 6)"),
    "forward no points": ("ValueError", "out of range [0, 0)"),
    "forward strided ok": ("OK", "(40,)"),
    "forward strided bad": ("ValueError", "out of range"),
    "forward int32": ("TypeError", "int64"),
    "forward sims rows": ("ValueError", "sims must have the shape of triplets"),
    "forward points 1-D": ("ValueError", "points must have shape (rows, D)"),
    "forward tau nan": ("ValueError", "tau"),
    "forward c 0": ("ValueError", "curvature"),
    "forward outside": ("ValueError", "boundary"),
    "backward 2**62": ("ValueError", "out of range"),
    "backward -1": ("ValueError", "out of range"),
    "backward grad short": ("ValueError", "grad must have shape (40,)"),
    "backward grad 2-D": ("ValueError", "grad must have shape (40,)"),
    "backward grad float32": ("TypeError", "one dtype"),
    "cdist backward grad short": ("ValueError", "must have shape (4, 4)"),
    "cdist backward dist short": ("ValueError", "must have shape (4, 4)"),
    "cdist backward grad float32": ("TypeError", "one dtype"),
    "cdist backward D mismatch": ("ValueError", "D="),
    "cdist backward x nan": ("ValueError", "x contains NaN or Inf"),
    "cdist backward y outside": ("ValueError", "y has a point on or outside the boundary"),
    "cdist backward dist nan": ("ValueError", "dist contains NaN, Inf or a negative value"),
    "cdist backward dist negative": ("ValueError", "dist contains NaN, Inf or a negative value"),
    "cdist backward dist inf": ("ValueError", "dist contains NaN, Inf or a negative value"),
    "cdist backward c 710": ("ValueError", "within [1e-06, 700]"),
    "cdist backward ok": ("OK", ""),
    "backward points nan": ("ValueError", "points contains NaN or Inf"),
    "backward points outside": ("ValueError", "boundary"),
    "backward sims inf": ("ValueError", "sims contains NaN or Inf"),
    "backward tau tiny": ("ValueError", "temperature tau must be a finite number >= 1e-30"),
    "cdist D mismatch": ("ValueError", "D="),
    "cdist nan": ("ValueError", "NaN"),
    "cdist int": ("TypeError", "float32 or float64"),
    "cdist c inf": ("ValueError", "curvature"),
}


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with this checkout on the path (the environment, and so
    any sanitizer settings, is inherited)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def test_compiled_ops_called_directly_raise_instead_of_crashing():
    """torch.ops.hyperdml.* bypass the Python checks: the kernels must check for themselves. Run
    in a subprocess so that a crash shows up as a signal, not as a dead test runner."""
    proc = run_python(textwrap.dedent(DIRECT_CASES))
    started = [line.split(" ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("START ")]
    assert proc.returncode >= 0, (
        f"the subprocess was killed by signal {-proc.returncode} during case {started[-1] if started else '?'}\n"
        f"{proc.stderr[-3000:]}"
    )
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-3000:]
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            name, outcome = line[len("RESULT "):].split(" | ", 1)
            results[name] = outcome
    assert set(results) == set(DIRECT_EXPECTED)
    for name, (kind, fragment) in DIRECT_EXPECTED.items():
        outcome = results[name]
        assert outcome.startswith(kind) and fragment in outcome, f"{name}: got {outcome!r}, want {kind} {fragment!r}"


# -- losses -----------------------------------------------------------------------------------

LOSSES = [ProxyAnchor, ProxyNCA, SoftTriple]
SPACE_MAKERS = [EuclideanSpace, lambda: PoincareSpace(c=0.1), lambda: PoincareSpace(c=1.0, proxy_param="tangent")]


@pytest.mark.parametrize("make_space", SPACE_MAKERS, ids=["euclidean", "poincare", "poincare-tangent"])
@pytest.mark.parametrize("cls", LOSSES)
def test_loss_bad_batches(cls, make_space):
    loss = cls(3, 4, space=make_space())
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    raises(lambda: loss(x[0], y[:1]), ValueError, "shape (batch, 4)", "(4,)")
    raises(lambda: loss(x, y.tolist()), TypeError, "labels must be a torch.Tensor")
    raises(lambda: loss(x, torch.tensor([0, 1, 2, 3, 0])), ValueError, "labels must lie in [0, 3)", "max 3")
    raises(lambda: loss(x, torch.tensor([0, 1, 2, -(2**40), 0])), ValueError, "labels must lie in [0, 3)")
    raises(lambda: loss(x, y.to(torch.complex64)), TypeError, "integer")
    raises(lambda: loss(x.to(torch.complex64), y), TypeError, "floating")
    raises(lambda: loss(x[:0], y[:0]), ValueError, "empty batch")
    raises(lambda: loss(x[:, :0], y), ValueError, "dimension 0", "embedding_size=4")
    x_bad = x.clone()
    x_bad[4, 3] = -INF
    raises(lambda: loss(x_bad, y), ValueError, "NaN or Inf")
    # half precision is not an error: the loss computes in float32
    assert torch.isfinite(loss(x.half(), y)) and loss(x.bfloat16(), y).dtype == torch.float32


@pytest.mark.parametrize("make_space", SPACE_MAKERS, ids=["euclidean", "poincare", "poincare-tangent"])
@pytest.mark.parametrize("cls", LOSSES)
def test_loss_with_diverged_proxies_is_named(cls, make_space):
    """A NaN proxy (e.g. after a diverged optimiser step) is an error, not a silent NaN loss."""
    loss = cls(3, 4, space=make_space())
    with torch.no_grad():
        loss.proxies[1, 2] = NAN
    raises(lambda: loss(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])), ValueError, "proxies contains NaN or Inf")


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: ProxyAnchor(3, 4, alpha=NAN), "alpha must be a finite number > 0"),
        (lambda: ProxyAnchor(3, 4, alpha=0), "alpha must be a finite number > 0"),
        (lambda: ProxyAnchor(3, 4, margin=INF), "margin must be a finite number"),
        (lambda: ProxyAnchor(3, 4, margin="big"), "margin must be a number"),
        (lambda: ProxyNCA(3, 4, softmax_scale=NAN), "softmax_scale must be a finite number > 0"),
        (lambda: ProxyNCA(3, 4, softmax_scale=-1), "softmax_scale must be a finite number > 0"),
        (lambda: SoftTriple(3, 4, la=INF), "la must be a finite number > 0"),
        (lambda: SoftTriple(3, 4, gamma=NAN), "gamma must be a finite number > 0"),
        (lambda: SoftTriple(3, 4, gamma=0), "gamma must be a finite number > 0"),
        (lambda: SoftTriple(3, 4, margin=NAN), "margin must be a finite number"),
        (lambda: SoftTriple(3, 4, tau=NAN), "tau must be a finite number >= 0"),
        (lambda: SoftTriple(3, 4, tau=-1), "tau must be a finite number >= 0"),
        (lambda: SoftTriple(3, 4, centers_per_class=0), "proxies_per_class must be a positive int"),
        (lambda: ProxyAnchor(True, 4), "num_classes must be a positive int"),
        (lambda: ProxyAnchor(3, 4.0), "embedding_size must be a positive int"),
        (lambda: PoincareSpace(c=NAN), "curvature c must be a finite number > 0"),
        (lambda: PoincareSpace(c=-0.1), "curvature c must be a finite number > 0"),
        (lambda: PoincareSpace(c=INF), "curvature c must be a finite number > 0"),
        (lambda: PoincareSpace(clip_r=0), "clip_r must be a finite number > 0 or None"),
        (lambda: PoincareSpace(clip_r=INF), "clip_r must be a finite number > 0 or None"),
        (lambda: PoincareSpace(sim_scale=NAN), "sim_scale must be a finite number > 0"),
        (lambda: PoincareSpace(sim_offset=INF), "sim_offset must be a finite number"),
        (lambda: HypHCLoss(c=0), "curvature c must be a finite number > 0"),
        (lambda: HypHCLoss(c=INF), "curvature c must be a finite number > 0"),
        (lambda: HypHCLoss(tau=INF), "temperature tau must be a finite number"),
        (lambda: HypHCLoss(tau=0), "temperature tau must be a finite number"),
        (lambda: HypHCLoss(num_triplets=0), "num_triplets"),
        (lambda: HypHCLoss(anneal_factor=0), "anneal_factor"),
        (lambda: CHEST(3, 4, 5, lambda_hc=NAN), "lambda_hc must be a finite number >= 0"),
        (lambda: CHEST(3, 4, 5, w_e=-1), "w_e must be a finite number >= 0"),
        (lambda: CHEST(3, 4, 5, c=0), "curvature c"),
        (lambda: CHEST(3, 4, 5, hc_tau=NAN), "temperature tau"),
        (lambda: CHEST(1, 4, 5, centers_per_class=2), "at least 3 proxies"),
    ],
    ids=lambda v: None,
)
def test_bad_constructor_arguments(make, fragment):
    raises(make, (ValueError, TypeError), fragment)


def test_chest_bad_batches():
    loss = CHEST(3, 4, 5, centers_per_class=2)
    ze, zh, y = torch.randn(6, 4), torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    raises(lambda: loss(ze, zh[:5], y), ValueError, "z_e has 6 rows but z_h has 5")
    raises(lambda: loss(ze, zh, y[:5]), ValueError, "6 rows but labels has 5")
    raises(lambda: loss(ze.tolist(), zh, y), TypeError, "z_e and z_h must be torch.Tensors")
    raises(lambda: loss(ze, zh[:, :4], y), ValueError, "z_h has dimension 4")
    raises(lambda: loss(ze, zh, y - 1), ValueError, "labels must lie in [0, 3)")
    raises(lambda: loss(ze, zh.int(), y), TypeError, "z_h must be a floating tensor")
    zh_bad = zh.clone()
    zh_bad[0, 0] = INF
    raises(lambda: loss(ze, zh_bad, y), ValueError, "z_h contains NaN or Inf")
    with torch.no_grad():
        loss.hyperbolic.proxies[0, 0] = NAN
    raises(lambda: loss(ze, zh, y), ValueError, "proxies contains NaN or Inf")


def test_hyphc_loss_bad_inputs():
    loss = HypHCLoss(c=1.0)
    points = ball_points(5, 3, 1.0, max_frac=0.8, seed=2)
    sims = torch.rand(5, 5, dtype=torch.float64)
    sims = (sims + sims.t()) / 2
    raises(lambda: loss(points, sims[:4, :4]), ValueError, "sims must be a (5, 5) tensor")
    raises(lambda: loss(points[:2], sims[:2, :2]), ValueError, "at least 3 points")
    raises(lambda: loss(points[:0], sims[:0, :0]), ValueError, "at least 3 points")
    raises(lambda: loss(points.tolist(), sims), ValueError, "points must be a (P, D) tensor")
    raises(lambda: loss(points * 2, sims), ValueError, "boundary")
    raises(lambda: loss(points.long(), sims), TypeError, "float32 or float64")
    raises(lambda: loss(points, sims * NAN), ValueError, "sims contains NaN or Inf")
    raises(lambda: loss(points, sims + torch.triu(torch.ones(5, 5), 1)), ValueError, "symmetric")
    raises(lambda: loss.sample_triplets(2), ValueError, "at least 3 points")


def test_spaces_and_geometry_bad_inputs():
    space = PoincareSpace(c=1.0)
    inside = ball_points(4, 3, 1.0, max_frac=0.5, seed=3)
    raises(lambda: space.distance(inside, inside * 3), ValueError, "y has a point on or outside the boundary")
    raises(lambda: space.similarity(inside, inside[:, :2]), ValueError, "D=2")
    raises(lambda: geometry.ball(NAN), ValueError, "curvature c must be a finite number > 0")
    raises(lambda: geometry.project(inside, -1.0), ValueError, "curvature c")
    raises(lambda: geometry.project(inside, 0.0), ValueError, "curvature c")
    raises(lambda: geometry.expmap0(inside, INF), ValueError, "curvature c")
    raises(lambda: geometry.clip_features(inside, 0.0), ValueError, "clip_r must be a finite number > 0")
    raises(lambda: geometry.to_ball(inside, 1.0, -2.3), ValueError, "clip_r")
    raises(lambda: geometry.to_lorentz(inside, 0.0), ValueError, "curvature c")
    raises(lambda: geometry.to_lorentz(inside * 3, 1.0), ValueError, "outside the boundary")
    raises(lambda: geometry.to_lorentz(inside * NAN, 1.0), ValueError, "NaN")
    # to_space maps any finite head output inside the ball: huge values are not an error
    far = space.to_space(torch.full((2, 3), 1e30))
    assert torch.isfinite(far).all() and bool((far.norm(dim=1) < 1).all())


# -- devices (CUDA only) ----------------------------------------------------------------------


@requires_cuda
def test_device_mix_is_named():
    raises(lambda: hyphc_triplet_loss(P.cuda(), T, S.cuda(), 1.0), ValueError, "triplets is on cpu")
    raises(lambda: hyphc_triplet_loss(P.cuda(), T.cuda(), S, 1.0), ValueError, "cuda", "cpu")
    loss = ProxyAnchor(3, 4)
    with pytest.raises((ValueError, RuntimeError), match="cuda|device"):
        loss(torch.randn(5, 4, device="cuda"), torch.tensor([0, 1, 2, 0, 1]))
    direct = "import torch, hyperdml.ops; torch.ops.hyperdml.hyphc_triplet_loss(" \
             "torch.zeros(3, 2, device='cuda', dtype=torch.float64), torch.tensor([[0, 1, 2**40]], device='cuda'), " \
             "torch.zeros(1, 3, device='cuda', dtype=torch.float64), 1.0, 0.1)"
    proc = run_python(direct)
    assert proc.returncode > 0 and "out of range" in proc.stderr, proc.stderr[-2000:]


# -- the modules built on the ops: metrics, data, loss wrappers -------------------------------


def test_evaluate_retrieval_bad_inputs():
    from hyperdml.metrics import evaluate_retrieval

    emb, labels = torch.randn(20, 4), torch.arange(20) % 4
    raises(lambda: evaluate_retrieval(emb[0], labels), ValueError, "2-D (N, D)", "(4,)")
    raises(lambda: evaluate_retrieval(emb[:0], labels[:0]), ValueError, "non-empty")
    raises(lambda: evaluate_retrieval(emb, labels[:5]), ValueError, "labels must have shape (20,)")
    raises(lambda: evaluate_retrieval(emb, labels.float() + 0.5), ValueError, "labels must be integers")
    bad = emb.clone()
    bad[3, 1] = NAN
    raises(lambda: evaluate_retrieval(bad, labels), ValueError, "NaN or inf", "row 3")
    raises(lambda: evaluate_retrieval(emb, labels, metric="manhattan"), ValueError, "metric must be one of")
    raises(lambda: evaluate_retrieval(emb, labels, metric="poincare", c=1.0), ValueError, "outside the Poincaré ball")
    raises(lambda: evaluate_retrieval(emb * 0.01, labels, metric="poincare", c=NAN), ValueError, "curvature c")
    raises(lambda: evaluate_retrieval(emb * 0.01, labels, metric="poincare", c=-1.0), ValueError, "curvature c")
    raises(lambda: evaluate_retrieval(emb, labels, ks=(0,)), ValueError, "ks must be positive")
    raises(lambda: evaluate_retrieval(emb, labels, query=emb[:, :3], query_labels=labels), ValueError, "dimension 3")
    raises(lambda: evaluate_retrieval(emb, labels, query=emb), ValueError, "query_labels")
    raises(lambda: evaluate_retrieval(emb[:1], labels[:1]), ValueError, "no query has another item of its class")


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(name="imagenet"), "DatasetError", "unknown data set 'imagenet'"),
        (dict(name="cub"), "DatasetError", "needs a data root"),
        (dict(name="cars", root="does/not/exist"), "DatasetError", "does/not/exist"),
        (dict(name="synthetic", label_noise=NAN), "ValueError", "label noise rate"),
        (dict(name="synthetic", label_noise=1.5), "ValueError", "label noise rate"),
        (dict(name="synthetic", image_size=-1), "ValueError", "image_size"),
        (dict(name="digits", image_size=0), "ValueError", "image_size"),
    ],
    ids=lambda v: None,
)
def test_build_datasets_bad_inputs(kwargs, error, fragment):
    from hyperdml.data import build_datasets
    from hyperdml.errors import DatasetError

    kwargs = dict(kwargs)
    name = kwargs.pop("name")
    raises(lambda: build_datasets(name, **kwargs), {"DatasetError": DatasetError, "ValueError": ValueError}[error],
           fragment)


@pytest.mark.parametrize("wrapper", ["cp", "hpl"])
def test_loss_wrappers_bad_inputs(wrapper):
    from hyperdml.losses import CalibrateProxy, HierarchicalProxy

    if wrapper == "cp":
        raises(lambda: CalibrateProxy("proxy_anchor"), TypeError, "wraps a proxy loss")
        raises(lambda: CalibrateProxy(ProxyAnchor(4, 6), queue_size=0), ValueError, "queue_size")
        raises(lambda: CalibrateProxy(ProxyAnchor(4, 6), calibration_weight=NAN), ValueError, "calibration_weight")
        loss = CalibrateProxy(SoftTriple(4, 6, centers_per_class=2, space=PoincareSpace()), start_epoch=0)
        loss.set_epoch(1)
    else:
        raises(lambda: HierarchicalProxy(3), TypeError, "wraps a proxy loss")
        raises(lambda: HierarchicalProxy(ProxyAnchor(4, 6), levels=(10,)), ValueError, "levels")
        raises(lambda: HierarchicalProxy(ProxyAnchor(4, 6), levels=(2,), level_weights=(1.0, NAN)), ValueError,
               "level_weights")
        loss = HierarchicalProxy(SoftTriple(4, 6, centers_per_class=2, space=PoincareSpace()), levels=(2,),
                                 level_weights=(1.0, 0.5))
    x, y = torch.randn(8, 6), torch.arange(8) % 4
    assert torch.isfinite(loss(x, y))
    raises(lambda: loss(x, y + 4), ValueError, "labels must lie in [0, 4)")
    raises(lambda: loss(x * INF, y), ValueError, "NaN or Inf")
    raises(lambda: loss(x[:0], y[:0]), ValueError, "empty batch")
    raises(lambda: loss(x[:, :5], y), ValueError, "dimension 5")
    with torch.no_grad():
        loss.base.proxies[0, 0] = NAN
    raises(lambda: loss(x, y), ValueError, "proxies contains NaN or Inf")


# -- the CLI: one line on stderr, exit status 2, no traceback ---------------------------------

#: torch's own import-time log line on machines without a CUDA runtime (not hyperdml's output)
TORCH_NOISE = "No CUDA runtime is found"

CLI_CASES = [
    ("train --lr nan --max-steps 1", "--lr"),
    ("train --c -1 --max-steps 1", "--c (curvature)"),
    ("train --batch-size 0 --max-steps 1", "--batch-size"),
    ("train --loss nope", "unknown loss 'nope'"),
    ("train --loss-arg margin=abc --max-steps 1", "margin"),
    ("train --dataset cub", "--data-root"),
    ("train --label-noise 2", "--label-noise"),
    ("train --resume {tmp}/none.pt", "no checkpoint"),
    ("eval --checkpoint {tmp}/none.pt", "no checkpoint"),
    ("viz --checkpoint {tmp}/none.pt --out {tmp}/viz", "no checkpoint"),
    ("bench cdist --B 0 --dry-run --out {tmp}/bench", "--B"),
    ("bench hyphc --dtype float16 --dry-run --out {tmp}/bench", "--dtype"),
]


@pytest.mark.parametrize("argv, fragment", CLI_CASES, ids=[c[0].split(" --out")[0] for c in CLI_CASES])
def test_cli_bad_arguments_are_one_line(tmp_path, argv, fragment):
    args = argv.format(tmp=tmp_path).split()
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", HYPERDML_DEBUG="")
    proc = subprocess.run([sys.executable, "-m", "hyperdml", *args], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path), env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and TORCH_NOISE not in line]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"hyperdml {args[0]}: error:"), proc.stderr
    assert fragment in lines[0], lines[0]
    assert not (tmp_path / "run" / "last.pt").exists()
