"""Shared fixtures: devices to test on and points spread through the Poincaré ball."""

from __future__ import annotations

import warnings

import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import hyperdml  # noqa: F401  (registers the ops; warns once if the extension is missing)

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device"))]
requires_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")


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
