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
