// CPU kernels of hyperdml::poincare_cdist: one GEMM for the inner products, everything else
// fused in one pass over the (B, N) output, rows split across threads (at::parallel_for), the
// per-element maths in ATen's vectorised types (AVX2 + Sleef when the build enables it, see
// setup.py; plain loops otherwise).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <atomic>
#include <vector>

#include "common.h"
#include "poincare_cdist/poincare_cdist.h"
#include "poincare_cdist/poincare_cdist_math.h"

namespace hyperdml {
namespace {

int64_t grain_rows(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)); }

at::Tensor poincare_cdist_cpu(const at::Tensor& x_in, const at::Tensor& y_in, double c) {
  check_cdist_inputs(x_in, y_in, c, at::kCPU);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_in.contiguous();
  const at::Tensor xx = (x * x).sum(1);
  const at::Tensor yy = (y * y).sum(1);
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
    const int all_lanes = (1 << W) - 1;  // zero_mask() when no lane of a comparison holds
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
          if ((sq < vnear * (vxi + yy)).zero_mask() != all_lanes) {  // any lane cancelled?
            sq.store(row + j0, n);
            for (int64_t j = j0; j < j0 + n; ++j)
              if (row[j] < near * (xi + yyp[j])) row[j] = cdist::exact_sqdist(xp + i * D, yp + j * D, D);
            sq = Vec::loadu(row + j0, n);
          }
          // d = log1p(u + sqrt(u (u + 2))) / sqrt(c), u = 2c sq / (alpha beta)
          const Vec u = vfactor * sq * Vec::loadu(inv_beta.data() + j0, n);
          ((u + (u * (u + vtwo)).sqrt()).log1p() * vinv).store(row + j0, n);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> poincare_cdist_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                               const at::Tensor& y_in, const at::Tensor& dist_in,
                                                               double c) {
  check_cdist_backward_inputs(grad_in, x_in, y_in, dist_in, c, at::kCPU);
  const int64_t B = x_in.size(0), N = y_in.size(0);
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  const at::Tensor grad = grad_in.contiguous(), dist = dist_in.contiguous();
  const at::Tensor alpha = 1 - c * (x * x).sum(1);
  const at::Tensor beta = 1 - c * (y * y).sum(1);
  const at::Tensor inv_beta = beta.reciprocal();
  at::Tensor weights = at::empty({B, N}, x.options());  // A_ij
  at::Tensor near = at::zeros({B, N}, x.options().dtype(at::kBool));  // pairs left to cdist_gradients
  std::atomic<bool> any_near{false};
  at::Tensor row_coef = at::empty({B}, x.options());
  const int threads = at::get_num_threads();
  at::Tensor col_parts = at::zeros({threads, N}, x.options());
  if (B > 0 && N > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "poincare_cdist_backward_cpu", [&] {
      using T = scalar_t;
      const T* gp = grad.data_ptr<T>();
      const T* dp = dist.data_ptr<T>();
      const T* ap = alpha.data_ptr<T>();
      const T* bp = beta.data_ptr<T>();
      const T* ibp = inv_beta.data_ptr<T>();
      T* wp = weights.data_ptr<T>();
      T* rp = row_coef.data_ptr<T>();
      T* cp = col_parts.data_ptr<T>();
      bool* np = near.data_ptr<bool>();
      const T sqrt_c = static_cast<T>(std::sqrt(c));
      using Vec = at::vec::Vectorized<T>;
      const int64_t W = Vec::size();
      const int all_lanes = (1 << W) - 1;  // zero_mask() when no lane of a comparison holds
      const Vec zero(T(0)), one(T(1)), two(T(2)), half(T(0.5)), half_sqrt_c(sqrt_c / T(2));
      const Vec vnear(static_cast<T>(cdist::kNearRatio));
      at::parallel_for(0, B, grain_rows(N), [&](int64_t begin, int64_t end) {
        T* col = cp + at::get_thread_num() * N;
        for (int64_t i = begin; i < end; ++i) {
          const Vec k_i(T(4) * sqrt_c / ap[i]), half_alpha(ap[i] / T(2)), two_minus_alpha(T(2) - ap[i]);
          Vec row_sum(T(0));
          for (int64_t j0 = 0; j0 < N; j0 += W) {
            const int64_t n = std::min(W, N - j0);
            // Same maths as cdist::backward_weights, with z = sqrt(c) d / 2, m = expm1(z) and
            // r = 1 / (m + 1) (Sleef's sinh is ~10x slower than its expm1; two divisions per
            // lane): s = sinh(z) = m (m + 2) r / 2, u = 2 s^2, sinh(2z) = s (e^z + e^-z),
            // A = g 4 sqrt(c) / (alpha beta sinh(2z)), 0 at d = 0.
            const Vec beta = Vec::loadu(bp + j0, n);
            const Vec m = (half_sqrt_c * Vec::loadu(dp + i * N + j0, n)).expm1();
            const Vec e = m + one;
            const Vec r = one / e;
            const Vec s = m * (m + two) * r * half;
            const Vec u = two * s * s;
            const Vec sinh_t = s * (e + r);
            Vec a = Vec::loadu(gp + i * N + j0, n) * k_i * Vec::loadu(ibp + j0, n) / sinh_t;
            a = Vec::blendv(zero, a, sinh_t > zero);
            if (n < W) a = Vec::set(zero, a, n);  // lanes past the row end must add nothing
            // Nearly equal pairs (cdist::is_near) leave the GEMM form; cdist_gradients adds them exactly.
            if ((u * beta * half_alpha < vnear * (two_minus_alpha - beta)).zero_mask() != all_lanes) {
              T lanes_a[Vec::size()], lanes_u[Vec::size()];
              a.store(lanes_a);
              u.store(lanes_u);
              for (int64_t k = 0; k < n; ++k)
                if (cdist::is_near(lanes_u[k], ap[i], bp[j0 + k])) {
                  np[i * N + j0 + k] = true;
                  lanes_a[k] = T(0);
                  any_near.store(true, std::memory_order_relaxed);
                }
              a = Vec::loadu(lanes_a);
            }
            a.store(wp + i * N + j0, n);
            row_sum = row_sum + a * (one + u * beta * half);
            (Vec::loadu(col + j0, n) + a * (one + u * half_alpha)).store(col + j0, n);
          }
          T lanes[Vec::size()];
          row_sum.store(lanes);
          T total = 0;
          for (int64_t k = 0; k < W; ++k) total += lanes[k];
          rp[i] = total;
        }
      });
    });
  }
  // An undefined `near` tells cdist_gradients there is no near pair to add (no scan of the mask).
  return cdist_gradients(row_coef, col_parts.sum(0), weights, any_near.load() ? near : at::Tensor(), grad, dist, x,
                         y, alpha, beta, c);
}

}  // namespace

TORCH_LIBRARY_IMPL(hyperdml, CPU, m) {
  m.impl("poincare_cdist", &poincare_cdist_cpu);
  m.impl("poincare_cdist_backward", &poincare_cdist_backward_cpu);
}

}  // namespace hyperdml
