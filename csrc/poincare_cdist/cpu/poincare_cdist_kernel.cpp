// CPU kernels of hyperdml::poincare_cdist. Forward: one GEMM for the inner products, then one
// fused pass over the (B, N) output. Backward: the (B, N) matrix in blocks of columns (~512 KiB):
// one fused pass turns a block's distances into GEMM weights, then the block's share of the two
// gradient GEMMs, so the backward needs no (B, N) buffer besides its inputs. (Blocking the
// forward's GEMM the same way was measured: no faster, at 256 x 2000 or 256 x 113180.) Rows are
// split across threads (at::parallel_for); the per-element maths uses ATen's vectorised types.
// Compiled once per instruction set (cpu_dispatch.h): AVX512 or AVX2 + Sleef, or plain loops.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <vector>

#include "common.h"
#include "cpu_lanes.h"
#include "poincare_cdist/cpu/poincare_cdist_kernel.h"
#include "poincare_cdist/poincare_cdist.h"
#include "poincare_cdist/poincare_cdist_math.h"

namespace hyperdml {
namespace CPU_CAPABILITY {
namespace {

int64_t grain_rows(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)); }

// Columns per backward block: about 128K elements (512 KiB of float32), a multiple of 64.
int64_t block_columns(int64_t B, int64_t N) {
  const int64_t cols = std::max<int64_t>(64, ((int64_t(1) << 17) / std::max<int64_t>(B, 1)) / 64 * 64);
  return std::min(cols, std::max<int64_t>(N, 1));
}

// Sleef's log1p and expm1 cost 2.5x and 3.5x its log and exp; the kernels use these instead
// (valid for the arguments they meet, >= 0).

// log1p(w), w >= 0, branch-free: v = 1 + w rounded, e = (1 + w) - v exactly (2Sum), and
// log1p(w) = log(v) + log(1 + e/v) = log(v) + e/v up to (e/v)^2 / 2 < 2^-48 (float): the
// rounding of 1 + w is given back, so small w lose nothing (w below half an ulp of 1: v = 1,
// result e = w). Error: Sleef's log (<= 1 ulp) plus about one rounding.
template <typename T>
at::vec::Vectorized<T> log1p_nonneg(const at::vec::Vectorized<T>& w) {
  using Vec = at::vec::Vectorized<T>;
  const Vec one(T(1));
  const Vec v = one + w;
  const Vec w_in_v = v - one;
  const Vec err = (one - (v - w_in_v)) + (w - w_in_v);
  return v.log() + err / v;
}

// expm1(z), z >= 0, in one branch-free pass (Sleef's expm1 costs 3.5x its exp; exp(z) - 1 loses
// the small z): z = k ln2 + r with k = round(z / ln2), |r| <= ln2 / 2, so
// expm1(z) = 2^k expm1(r) + (2^k - 1), exact scalings plus one rounding, and expm1(r) = r P(r)
// by its Taylor series, 8 terms for float (truncation < 0.03 ulp), 14 for double (< 0.01 ulp).
// Lanes are clamped at z = 88 (float) / 709 (double), where exp overflows.
template <typename T>
at::vec::Vectorized<T> expm1_nonneg(const at::vec::Vectorized<T>& z_in) {
  using Vec = at::vec::Vectorized<T>;
  constexpr bool kFloat = sizeof(T) == 4;
  constexpr int kTerms = kFloat ? 8 : 14;
  // ln 2 split in two: k * kLn2Hi is exact for the k that occur (the high part's trailing zeros).
  constexpr T kLn2Hi = kFloat ? T(0.693145751953125) : T(6.93147180369123816490e-01);
  constexpr T kLn2Lo = kFloat ? T(1.428606765330187045e-06) : T(1.90821492927058770002e-10);
  const Vec z = at::vec::minimum(z_in, Vec(kFloat ? T(88) : T(709)));
  const Vec k = (z * Vec(T(1.4426950408889634))).round();
  const Vec r = at::vec::fmadd(k, Vec(-kLn2Lo), at::vec::fmadd(k, Vec(-kLn2Hi), z));
  T coef[kTerms];  // coef[j] = 1 / (j + 1)!
  coef[0] = T(1);
  for (int j = 1; j < kTerms; ++j) coef[j] = coef[j - 1] / T(j + 1);
  Vec poly(coef[kTerms - 1]);
  for (int j = kTerms - 2; j >= 0; --j) poly = at::vec::fmadd(poly, r, Vec(coef[j]));
  const Vec pow2k = scale_pow2(Vec(T(1)), k);
  return at::vec::fmadd(pow2k, r * poly, pow2k - Vec(T(1)));
}

// Squared norms of the rows of a contiguous (rows, D) matrix, without (t * t).sum(1)'s
// (rows, D) temporary (for y of SOP's proxies at D = 512: 221 MiB, written and read again).
at::Tensor row_sqnorms(const at::Tensor& t) {
  at::Tensor out = at::zeros({t.size(0)}, t.options());
  const int64_t D = t.size(1);
  if (D == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "row_sqnorms", [&] {
    using Vec = at::vec::Vectorized<scalar_t>;
    const scalar_t* p = t.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, t.size(0), std::max<int64_t>(1, 16384 / D), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        o[i] = at::vec::map_reduce_all<scalar_t>([](Vec v) { return v * v; }, [](Vec a, Vec b) { return a + b; },
                                                 p + i * D, D);
    });
  });
  return out;
}

// Every c * sqnorm < 1 (false on NaN): the ball test of check_in_ball without dispatched ops,
// which would cost small calls more than their backward.
bool sqnorms_inside(const at::Tensor& sqnorms, double c) {
  bool ok = true;
  AT_DISPATCH_FLOATING_TYPES(sqnorms.scalar_type(), "sqnorms_inside", [&] {
    const scalar_t* p = sqnorms.data_ptr<scalar_t>();
    const scalar_t cc = static_cast<scalar_t>(c);
    for (int64_t i = 0; i < sqnorms.numel(); ++i) ok &= p[i] * cc < scalar_t(1);
  });
  return ok;
}

}  // namespace

at::Tensor poincare_cdist_cpu(const at::Tensor& x_in, const at::Tensor& y_in, double c) {
  check_cdist_inputs(x_in, y_in, c, at::kCPU);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_in.contiguous();
  const at::Tensor xx = row_sqnorms(x);
  const at::Tensor yy = row_sqnorms(y);
  check_in_ball(x, xx, c, "x");
  check_in_ball(y, yy, c, "y");
  at::Tensor out = at::mm(x, y.t()).contiguous();  // <x_i, y_j>, overwritten with d(x_i, y_j)
  const int64_t B = x.size(0), N = y.size(0), D = x.size(1);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "poincare_cdist_cpu", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* yp = y.data_ptr<T>();
    const T* xxp = xx.data_ptr<T>();
    const T* yyp = yy.data_ptr<T>();
    T* op = out.data_ptr<T>();
    const T cc = static_cast<T>(c), inv_sqrt_c = static_cast<T>(1.0 / std::sqrt(c));
    const T near = static_cast<T>(cdist::kNearRatio);
    std::vector<T> inv_beta(N);
    for (int64_t j = 0; j < N; ++j) inv_beta[j] = T(1) / (T(1) - cc * yyp[j]);
    using Vec = at::vec::Vectorized<T>;
    const int64_t W = Vec::size();
    at::parallel_for(0, B, grain_rows(N), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T* row = op + i * N;
        const T xi = xxp[i];
        const Vec vxi(xi), vtwo(T(2)), vfactor(T(2) * cc / (T(1) - cc * xi)), vinv(inv_sqrt_c), vnear(near);
        for (int64_t j0 = 0; j0 < N; j0 += W) {
          const int64_t n = std::min(W, N - j0);
          // ||x - y||^2 from the GEMM, then an exact recompute of the (rare) cancelled lanes.
          const Vec yy = Vec::loadu(yyp + j0, n);
          Vec sq = vxi + yy - vtwo * Vec::loadu(row + j0, n);
          if (any_lane(sq < vnear * (vxi + yy))) {  // a lane cancelled?
            sq.store(row + j0, n);
            for (int64_t j = j0; j < j0 + n; ++j)
              if (row[j] < near * (xi + yyp[j])) row[j] = cdist::exact_sqdist(xp + i * D, yp + j * D, D);
            sq = Vec::loadu(row + j0, n);
          }
          // d = log1p(u + sqrt(u (u + 2))) / sqrt(c), u = 2c sq / (alpha beta)
          const Vec u = vfactor * sq * Vec::loadu(inv_beta.data() + j0, n);
          (log1p_nonneg(u + (u * (u + vtwo)).sqrt()) * vinv).store(row + j0, n);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> poincare_cdist_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                               const at::Tensor& y_in, const at::Tensor& dist_in,
                                                               double c) {
  // The values are checked in the kernel's own passes: x and y from their squared norms, dist
  // (finite, >= 0) in the pass that reads it, before any GEMM uses it.
  check_cdist_backward_args(grad_in, x_in, y_in, dist_in, c, at::kCPU);
  const int64_t B = x_in.size(0), N = y_in.size(0);
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  const at::Tensor grad = grad_in.contiguous(), dist = dist_in.contiguous();
  const at::Tensor xx = row_sqnorms(x), yy = row_sqnorms(y);
  if (!sqnorms_inside(xx, c)) check_in_ball(x, xx, c, "x");  // raises, naming the problem
  if (!sqnorms_inside(yy, c)) check_in_ball(y, yy, c, "y");
  if (B == 0 || N == 0) return {at::zeros_like(x), at::zeros_like(y)};
  const at::Tensor alpha = 1 - c * xx;
  const at::Tensor beta = 1 - c * yy;
  const at::Tensor inv_beta = beta.reciprocal();
  at::Tensor grad_x = at::zeros_like(x);  // accumulates over the blocks
  at::Tensor grad_y = at::empty_like(y);  // written block by block
  const int64_t cols = block_columns(B, N);
  const int threads = at::get_num_threads();
  at::Tensor weights_buf = at::empty({B * cols}, x.options());                 // A_ij of one block
  at::Tensor near_buf = at::zeros({B * cols}, x.options().dtype(at::kBool));  // its pairs left out of A
  at::Tensor col_parts = at::empty({threads, cols}, x.options());
  at::Tensor row_coef = at::zeros({B}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "poincare_cdist_backward_cpu", [&] {
    using T = scalar_t;
    const T* gp = grad.data_ptr<T>();
    const T* dp = dist.data_ptr<T>();
    const T* ap = alpha.data_ptr<T>();
    const T* bp = beta.data_ptr<T>();
    const T* ibp = inv_beta.data_ptr<T>();
    T* wp = weights_buf.data_ptr<T>();
    T* rp = row_coef.data_ptr<T>();
    T* cp = col_parts.data_ptr<T>();
    bool* np = near_buf.data_ptr<bool>();
    const T sqrt_c = static_cast<T>(std::sqrt(c));
    using Vec = at::vec::Vectorized<T>;
    const int64_t W = Vec::size();
    const Vec zero(T(0)), one(T(1)), two(T(2)), half(T(0.5)), v_sqrt_c(sqrt_c);
    const Vec vnear(static_cast<T>(cdist::kNearRatio)), vinf(std::numeric_limits<T>::infinity());
    for (int64_t b0 = 0; b0 < N; b0 += cols) {
      const int64_t nb = std::min(cols, N - b0);
      std::atomic<bool> any_near{false}, bad_dist{false};
      col_parts.zero_();
      at::parallel_for(0, B, grain_rows(nb), [&](int64_t begin, int64_t end) {
        T* col = cp + at::get_thread_num() * cols;
        for (int64_t i = begin; i < end; ++i) {
          const T* g_row = gp + i * N;
          const T* d_row = dp + i * N;
          const Vec k_i(T(4) * sqrt_c / ap[i]), half_alpha(ap[i] / T(2)), quarter_alpha(ap[i] / T(4));
          const Vec two_minus_alpha(T(2) - ap[i]);
          Vec row_sum(T(0));
          Vec dist_ok = zero == zero;  // all lanes true while every d is finite and >= 0
          T* wrow = wp + i * nb;  // the block's weights, (B, nb) contiguous
          // The block's next row of g and d, a cache line per 64 bytes of this row: the rows are
          // short strided runs, which the hardware prefetchers meet too late (loading g stalled
          // this pass more than all its maths).
          const bool prefetch_next = i + 1 < end;
          for (int64_t j0 = b0; j0 < b0 + nb; j0 += W) {
            const int64_t n = std::min(W, b0 + nb - j0), jb = j0 - b0;
            if (prefetch_next)
              for (int64_t k = 0; k < W; k += 64 / int64_t(sizeof(T))) {
                __builtin_prefetch(g_row + N + j0 + k);
                __builtin_prefetch(d_row + N + j0 + k);
              }
            // Same maths as cdist::backward_weights, from M = expm1(t), t = sqrt(c) d (Sleef's sinh
            // is ~10x slower than expm1_nonneg), with one division per lane: with w = e^t = M + 1,
            // u = cosh(t) - 1 = M^2 / (2 w) and sinh(t) = M (M + 2) / (2 w), both free of
            // cancellation. With q = G / (M (M + 2)), G = g 4 sqrt(c) / (alpha beta):
            // A = G / sinh(t) = 2 w q and A u = M^2 q; A = 0 at d = 0.
            const Vec beta = Vec::loadu(bp + j0, n);
            const Vec d = Vec::loadu(d_row + j0, n);  // lanes past n read as 0
            dist_ok = dist_ok & (d >= zero) & (d < vinf);  // false on NaN
            const Vec M = expm1_nonneg(v_sqrt_c * d);
            const Vec w = M + one;
            const Vec M2 = M * M;
            const Vec q = Vec::loadu(g_row + j0, n) * k_i * Vec::loadu(ibp + j0, n) / at::vec::fmadd(M, two, M2);
            const Vec apart = M > zero;
            Vec a = Vec::blendv(zero, two * w * q, apart);
            Vec au = Vec::blendv(zero, M2 * q, apart);
            // Nearly equal pairs (cdist::is_near: u alpha beta / 2 < near (2 - alpha - beta)) leave
            // the GEMM form; add_near_pairs adds them exactly.
            Vec near_lanes = M2 * beta * quarter_alpha < vnear * (two_minus_alpha - beta) * w;
            if (n < W) {  // lanes past the block end must add nothing (and are no near pairs)
              a = Vec::set(zero, a, n);
              au = Vec::set(zero, au, n);
              near_lanes = Vec::set(zero, near_lanes, n);
            }
            if (any_lane(near_lanes)) {
              T lanes_a[Vec::size()], lanes_au[Vec::size()], lanes_near[Vec::size()];
              a.store(lanes_a);
              au.store(lanes_au);
              near_lanes.store(lanes_near);
              for (int64_t k = 0; k < n; ++k)
                if (lanes_near[k] != T(0)) {
                  np[i * nb + jb + k] = true;
                  lanes_a[k] = lanes_au[k] = T(0);
                  any_near.store(true, std::memory_order_relaxed);
                }
              a = Vec::loadu(lanes_a);
              au = Vec::loadu(lanes_au);
            }
            a.store(wrow + jb, n);
            row_sum = row_sum + a + au * beta * half;
            (Vec::loadu(col + jb, n) + a + au * half_alpha).store(col + jb, n);
          }
          if (dist_ok.zero_mask() != 0) bad_dist.store(true, std::memory_order_relaxed);
          T lanes[Vec::size()];
          row_sum.store(lanes);
          T total = 0;
          for (int64_t k = 0; k < W; ++k) total += lanes[k];
          rp[i] += total;
        }
      });
      TORCH_CHECK_VALUE(!bad_dist.load(), kCdistBadDistMessage);
      // The block's share of grad_x = diag(row) x - A y and grad_y = diag(col) y - A^T x.
      const at::Tensor a_block = weights_buf.narrow(0, 0, B * nb).view({B, nb});
      const at::Tensor y_block = y.narrow(0, b0, nb);
      at::Tensor gy_block = grad_y.narrow(0, b0, nb);
      grad_x.addmm_(a_block, y_block, 1, -1);
      at::mul_out(gy_block, col_parts.narrow(1, 0, nb).sum(0).unsqueeze(1), y_block);
      gy_block.addmm_(a_block.t(), x, 1, -1);
      if (any_near.load()) {
        at::Tensor near_block = near_buf.narrow(0, 0, B * nb).view({B, nb});
        add_near_pairs(grad_x, gy_block, near_block, grad.narrow(1, b0, nb), dist.narrow(1, b0, nb), x, y_block,
                       alpha, beta.narrow(0, b0, nb), c);
        near_block.zero_();
      }
    }
  });
  grad_x.add_(row_coef.unsqueeze(1) * x);
  return {grad_x, grad_y};
}

}  // namespace CPU_CAPABILITY
}  // namespace hyperdml
