"""Shared fixtures: devices to test on, points spread through the Poincaré ball, and Recall@1."""

from __future__ import annotations

import warnings

import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import hyperdml  # noqa: F401  (registers the ops; warns once if the extension is missing)

from hyperdml.ops import poincare_cdist  # noqa: E402
from hyperdml.spaces import PoincareSpace  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device"))]
requires_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")


def recall_at_1(emb: torch.Tensor, labels: torch.Tensor, space) -> float:
    """Leave-one-out Recall@1 by exact kNN: cosine (Euclidean) or geodesic distance (Poincaré)."""
    with torch.no_grad():
        if isinstance(space, PoincareSpace):
            dist = poincare_cdist(emb, emb, space.c)
        else:
            unit = torch.nn.functional.normalize(emb, dim=1)
            dist = -unit @ unit.t()
        dist.fill_diagonal_(float("inf"))
        return (labels[dist.argmin(dim=1)] == labels).float().mean().item()


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def one_thread():
    """One intra-op thread: on tiny tensors a second thread only contends for the 2 CPU cores
    (measured 4-5x slower); tests that train small models use it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ball_points(n, d, c=1.0, max_frac=0.95, dtype=torch.float64, seed=0, device="cpu"):
    """``(n, d)`` points with norms spread uniformly in ``[0, max_frac/√c)`` (random directions)."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, d, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    radius = torch.rand(n, 1, generator=g, dtype=torch.float64) * max_frac / c**0.5
    return (direction * radius).to(dtype=dtype, device=device)


# Hypothesis profiles for the property tests (tests/test_property_*.py): "default" keeps a quick
# run fast; "ci" runs >= 1000 examples per op test (the @pytest.mark.slow ones pin that profile).
# HYPERDML_HYPOTHESIS_PROFILE picks the profile of the other property tests.
try:
    import os as _os

    from hypothesis import HealthCheck as _HealthCheck
    from hypothesis import settings as _settings

    _common = dict(deadline=None, suppress_health_check=[_HealthCheck.too_slow, _HealthCheck.data_too_large],
                   derandomize=False, print_blob=True, database=None)
    _settings.register_profile("default", max_examples=25, **_common)
    _settings.register_profile("ci", max_examples=1000, **_common)
    _settings.load_profile(_os.environ.get("HYPERDML_HYPOTHESIS_PROFILE", "default"))
except ImportError:  # hypothesis is a test requirement; the property tests skip without it
    pass
