"""Fused Triton kernels of ``poincare_cdist`` for float32 (CUDA; the CPU under ``TRITON_INTERPRET=1``).

Forward: a tiled GEMM kernel for the inner products whose epilogue turns each ``(B, N)`` tile
into distances in registers, so the ``(B, N)`` result is written once and never read back.
The inner products use three TF32 tensor-core products per pair of operands (Triton's
``tf32x3``: each float32 split into a TF32 high and low part, the low × low product dropped),
whose error per product is a few units of 2⁻²² against 2⁻²⁴ for a float32 FMA; with the exact
recomputation of nearly equal pairs below, distances keep float32 accuracy. Where the GEMM form
``‖x‖² + ‖y‖² − 2⟨x, y⟩`` of a pair has cancelled (below ``NEAR_RATIO`` times the norms, as in
the C++ kernels), the kernel marks its tile, and a second kernel, one program per tile that
returns at once for the unmarked ones, rewrites the marked tiles from the differences of the rows.
(Inside the first kernel that rewrite would double its registers and make the GEMM spill.)

Backward: one kernel reads the incoming gradient and the distances once and writes the pair
weights ``A`` (zero for the nearly equal pairs, which it marks), with each tile's row and column
sums; two cuBLAS GEMMs apply them, and the marked pairs add their exact terms.

The maths is :mod:`csrc/poincare_cdist/poincare_cdist_math.h`'s, written with Triton's core
functions only (``log``, ``exp``, ``sqrt``), which the interpreter runs too.
"""

from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl

from hyperdml.ops.reference import add_cdist_pair_terms, cdist_pair_weights

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
NEAR_RATIO = 1.0 / 64  # cdist::kNearRatio
# Inner-product precision of the forward's GEMM on GPUs with TF32 tensor cores (compute
# capability >= 8.0); older GPUs use float32 FMAs ("ieee"). TF32 alone is never used.
TENSOR_CORE_PRECISION = "tf32x3"


@triton.jit
def _log1p(v):
    """log(1 + v) for v >= 0 from an accurate log: log(w) · v / (w − 1), w = 1 + v (Kahan)."""
    w = 1.0 + v
    return tl.where(w == 1.0, v, tl.log(w) * (v / tl.where(w == 1.0, 1.0, w - 1.0)))


@triton.jit
def _sinh(h):
    """sinh(h) for h >= 0: its Taylor series below 0.5 (relative error < 3e-11), else from exp."""
    h2 = h * h
    series = h * (1.0 + h2 / 6.0 * (1.0 + h2 / 20.0 * (1.0 + h2 / 42.0 * (1.0 + h2 / 72.0))))
    e = tl.exp(tl.minimum(h, 80.0))
    return tl.where(h < 0.5, series, 0.5 * (e - 1.0 / e))


@triton.jit
def _distance_epilogue(sq, xi, yj, c, inv_sqrt_c):
    """Distances of a tile from its squared differences and the rows' squared norms."""
    alpha = 1.0 - c * xi
    beta = 1.0 - c * yj
    u = 2.0 * c * sq / (alpha[:, None] * beta[None, :])
    return _log1p(u + tl.sqrt_rn(u * (u + 2.0))) * inv_sqrt_c


@triton.jit
def _distance_kernel(x_ptr, y_ptr, xx_ptr, yy_ptr, out_ptr, near_tiles_ptr, B, N, D, c, inv_sqrt_c, near_ratio,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     GROUP_M: tl.constexpr, PRECISION: tl.constexpr):
    # Tiles in groups of GROUP_M rows, so that consecutive programs share y's tiles in L2.
    pid = tl.program_id(0)
    grid_m = tl.cdiv(B, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    width = GROUP_M * grid_n
    first_m = (pid // width) * GROUP_M
    size_m = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m

    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    row_ok = rm < B
    col_ok = rn < N
    x_rows = x_ptr + rm.to(tl.int64) * D  # 64-bit offsets: B·D and N·D may pass 2³¹
    y_rows = y_ptr + rn.to(tl.int64) * D

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        k = k0 + rk
        a = tl.load(x_rows[:, None] + k[None, :], mask=row_ok[:, None] & (k[None, :] < D), other=0.0)
        b = tl.load(y_rows[None, :] + k[:, None], mask=col_ok[None, :] & (k[:, None] < D), other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)

    xi = tl.load(xx_ptr + rm, mask=row_ok, other=0.0)
    yj = tl.load(yy_ptr + rn, mask=col_ok, other=0.0)
    norms = xi[:, None] + yj[None, :]
    sq = norms - 2.0 * acc
    # A tile holding a nearly equal pair is marked; _exact_tiles_kernel rewrites it.
    tl.store(near_tiles_ptr + pid_m * grid_n + pid_n, tl.max((sq < near_ratio * norms).to(tl.int32)))
    dist = _distance_epilogue(tl.maximum(sq, 0.0), xi, yj, c, inv_sqrt_c)
    tl.store(out_ptr + rm.to(tl.int64)[:, None] * N + rn[None, :], dist, mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def _exact_tiles_kernel(x_ptr, y_ptr, xx_ptr, yy_ptr, out_ptr, near_tiles_ptr, B, N, D, c, inv_sqrt_c,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SUB_M: tl.constexpr):
    """The marked tiles again, every pair from the differences of its rows (exact where the GEMM
    form cancels); a program per tile of the forward, most of which find no mark and return."""
    pid = tl.program_id(0)  # one grid axis: a second one would cap N at 65 535 tiles
    grid_n = tl.cdiv(N, BLOCK_N)
    pid_m = pid // grid_n
    pid_n = pid % grid_n
    if tl.load(near_tiles_ptr + pid) != 0:
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_ok = rn < N
        y_rows = y_ptr + rn.to(tl.int64) * D
        yj = tl.load(yy_ptr + rn, mask=col_ok, other=0.0)
        for m0 in range(0, BLOCK_M, SUB_M):  # SUB_M rows at a time: fewer registers
            rm = pid_m * BLOCK_M + m0 + tl.arange(0, SUB_M)
            row_ok = rm < B
            x_rows = x_ptr + rm.to(tl.int64) * D
            sq = tl.zeros((SUB_M, BLOCK_N), dtype=tl.float32)
            for k in range(0, D):
                diff = (tl.load(x_rows + k, mask=row_ok, other=0.0)[:, None]
                        - tl.load(y_rows + k, mask=col_ok, other=0.0)[None, :])
                sq += diff * diff
            xi = tl.load(xx_ptr + rm, mask=row_ok, other=0.0)
            dist = _distance_epilogue(sq, xi, yj, c, inv_sqrt_c)
            tl.store(out_ptr + rm.to(tl.int64)[:, None] * N + rn[None, :], dist,
                     mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def _weights_kernel(grad_ptr, dist_ptr, alpha_ptr, beta_ptr, w_ptr, near_ptr, row_part_ptr, col_part_ptr,
                    B, N, sqrt_c, near_ratio, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)  # one grid axis: a second one would cap N at 65 535 tiles
    grid_n = tl.cdiv(N, BLOCK_N)
    pid_m = pid // grid_n
    pid_n = pid % grid_n
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rm < B
    col_ok = rn < N
    inside = row_ok[:, None] & col_ok[None, :]
    offsets = rm.to(tl.int64)[:, None] * N + rn[None, :]
    g = tl.load(grad_ptr + offsets, mask=inside, other=0.0)
    d = tl.load(dist_ptr + offsets, mask=inside, other=0.0)
    a_i = tl.load(alpha_ptr + rm, mask=row_ok, other=1.0)
    b_j = tl.load(beta_ptr + rn, mask=col_ok, other=1.0)
    ab = a_i[:, None] * b_j[None, :]
    # cdist::backward_weights: s = sinh(√c d / 2), u = 2 s², sinh(√c d) = 2 s √(1 + s²),
    # A = g 4√c / (αβ sinh(√c d)), 0 where d = 0.
    s = _sinh(sqrt_c * d * 0.5)
    u = 2.0 * s * s
    sinh_t = 2.0 * s * tl.sqrt_rn(1.0 + s * s)
    a = tl.where(sinh_t > 0.0, g * 4.0 * sqrt_c / (ab * tl.where(sinh_t > 0.0, sinh_t, 1.0)), 0.0)
    # cdist::is_near
    near = (u * ab * 0.5 < near_ratio * (2.0 - a_i[:, None] - b_j[None, :])) & inside
    w = tl.where(near, 0.0, a)
    wu = w * u
    tl.store(w_ptr + offsets, w, mask=inside)
    tl.store(near_ptr + offsets, near.to(tl.int8), mask=inside)
    # row_i = Σ_j A_ij (1 + u_ij β_j / 2), col_j = Σ_i A_ij (1 + u_ij α_i / 2): this tile's share
    row = tl.sum(w, axis=1) + 0.5 * tl.sum(wu * b_j[None, :], axis=1)
    col = tl.sum(w, axis=0) + 0.5 * tl.sum(wu * a_i[:, None], axis=0)
    tl.store(row_part_ptr + rm.to(tl.int64) * grid_n + pid_n, row, mask=row_ok)
    tl.store(col_part_ptr + pid_m.to(tl.int64) * N + rn, col, mask=col_ok)


def forward_config(B: int, N: int, D: int, device: torch.device) -> dict:
    """Tile sizes and inner-product precision of the forward kernel for one problem."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0):
        precision = TENSOR_CORE_PRECISION
    else:
        precision = "ieee"
    if INTERPRETING:  # small tiles, so that tests on small shapes cross tile edges
        return {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 2, "PRECISION": precision,
                "num_warps": 4, "num_stages": 1}
    block_m = 128 if B > 64 else 64
    return {"BLOCK_M": block_m, "BLOCK_N": 128, "BLOCK_K": 16, "GROUP_M": 8, "PRECISION": precision,
            "num_warps": 8 if block_m == 128 else 4, "num_stages": 4}


def weights_config() -> dict:
    """Tile sizes of the backward's weights kernel (elementwise, memory-bound)."""
    if INTERPRETING:
        return {"BLOCK_M": 16, "BLOCK_N": 32, "num_warps": 4}
    return {"BLOCK_M": 32, "BLOCK_N": 128, "num_warps": 4}


def distances(x: torch.Tensor, y: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, c: float) -> torch.Tensor:
    """``(B, N)`` Poincaré distances of contiguous float32 ``x (B, D)``, ``y (N, D)`` whose squared
    norms are ``xx (B,)``, ``yy (N,)``; inputs are not checked here."""
    B, D = x.shape
    N = y.shape[0]
    out = torch.empty((B, N), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    if D == 0:
        return out.zero_()
    config = forward_config(B, N, D, x.device)
    grid_m, grid_n = triton.cdiv(B, config["BLOCK_M"]), triton.cdiv(N, config["BLOCK_N"])
    near_tiles = torch.empty(grid_m * grid_n, dtype=torch.int32, device=x.device)
    with _on(x.device):
        _distance_kernel[(grid_m * grid_n,)](x, y, xx, yy, out, near_tiles, B, N, D, c, 1.0 / c**0.5, NEAR_RATIO,
                                             **config)
        _exact_tiles_kernel[(grid_m * grid_n,)](x, y, xx, yy, out, near_tiles, B, N, D, c, 1.0 / c**0.5,
                                              BLOCK_M=config["BLOCK_M"], BLOCK_N=config["BLOCK_N"],
                                              SUB_M=min(32, config["BLOCK_M"]), num_warps=4)
    return out


def weights(grad: torch.Tensor, dist: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, c: float):
    """Pair weights of the backward from contiguous float32 ``grad``, ``dist (B, N)``,
    ``alpha (B,)``, ``beta (N,)``: ``(A (B, N) with 0 at nearly equal pairs, near (B, N) int8,
    row (B,), col (N,))``."""
    B, N = dist.shape
    config = weights_config()
    grid_m, grid_n = triton.cdiv(B, config["BLOCK_M"]), triton.cdiv(N, config["BLOCK_N"])
    w = torch.empty_like(dist)
    near = torch.empty((B, N), dtype=torch.int8, device=dist.device)
    row_part = torch.empty((B, grid_n), dtype=dist.dtype, device=dist.device)
    col_part = torch.empty((grid_m, N), dtype=dist.dtype, device=dist.device)
    with _on(dist.device):
        _weights_kernel[(grid_m * grid_n,)](grad, dist, alpha, beta, w, near, row_part, col_part, B, N, c**0.5, NEAR_RATIO,
                              **config)
    return w, near, row_part.sum(1), col_part.sum(0)


def gradients(grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, dist: torch.Tensor, xx: torch.Tensor,
              yy: torch.Tensor, c: float, chunk_elements: int = 1 << 22):
    """``(grad_x (B, D), grad_y (N, D))`` of ``Σ grad ⊙ dist`` for contiguous float32 inputs of the
    shapes the forward took and gave, with the rows' squared norms ``xx (B,)``, ``yy (N,)``;
    inputs are not checked here."""
    if grad.numel() == 0:
        return torch.zeros_like(x), torch.zeros_like(y)
    alpha, beta = 1 - c * xx, 1 - c * yy
    w, near, row, col = weights(grad, dist, alpha, beta, c)
    # grad_x = diag(row) x − W y, grad_y = diag(col) y − Wᵀ x: each one GEMM accumulating in place.
    grad_x = (row[:, None] * x).addmm_(w, y, beta=1, alpha=-1)
    grad_y = (col[:, None] * y).addmm_(w.t(), x, beta=1, alpha=-1)
    # The pairs left out of W take their exact terms, in chunks (never a (K, D) block of them all).
    pairs = near.nonzero()
    for part in pairs.split(max(1, chunk_elements // max(x.shape[1], 1))):
        i, j = part.unbind(1)
        a, u = cdist_pair_weights(grad[i, j], dist[i, j], alpha[i], beta[j], c)
        grad_x, grad_y = add_cdist_pair_terms(grad_x, grad_y, i, j, a, u, x, y, alpha, beta)
    return grad_x, grad_y


def _on(device: torch.device):
    """Launch on ``device``'s GPU (Triton launches on the current one)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
