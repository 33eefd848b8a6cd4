// Per-pair math of poincare_cdist, shared by the CPU and CUDA kernels.
//
// d(x, y) = arccosh(1 + u) / sqrt(c),  u = 2c ||x - y||^2 / (alpha beta),
// alpha = 1 - c||x||^2, beta = 1 - c||y||^2. ||x - y||^2 comes from the GEMM as
// ||x||^2 + ||y||^2 - 2<x, y>; where that difference is small next to the norms it has
// cancelled, and the kernels recompute it exactly from the rows (kNearRatio).
#pragma once

#include <cmath>

#include "macros.h"

namespace hyperdml {
namespace cdist {
namespace {  // internal linkage: host copies from gcc and nvcc never meet at link time

// Pairs with ||x-y||^2 < kNearRatio (||x||^2 + ||y||^2) get their squared distance recomputed
// exactly: below this, the GEMM form loses more than ~6 of the dtype's bits.
constexpr double kNearRatio = 1.0 / 64;

template <typename T>
HYPERDML_HD T exact_sqdist(const T* x, const T* y, int64_t dim) {
  T acc = 0;
  for (int64_t k = 0; k < dim; ++k) {
    const T diff = x[k] - y[k];
    acc += diff * diff;
  }
  return acc;
}

// The backward's test for the same cancellation, from u and alpha, beta instead of the norms:
// ||x - y||^2 = u alpha beta / (2c) < kNearRatio (||x||^2 + ||y||^2) = kNearRatio (2 - alpha - beta) / c.
template <typename T>
HYPERDML_HD bool is_near(T u, T alpha, T beta) {
  return u * alpha * beta * T(0.5) < T(kNearRatio) * (T(2) - alpha - beta);
}

// arccosh(1 + u) / sqrt(c) written as log1p(u + sqrt(u (u + 2))): exact for small u.
template <typename T>
HYPERDML_HD T distance_from_u(T u, T inv_sqrt_c) {
  return log1p(u + sqrt(u * (u + T(2)))) * inv_sqrt_c;
}

// Backward weights of one pair from its distance: A = g dd/du 4c / (alpha beta) and u.
// dd/du = 1 / (sqrt(c) sinh(sqrt(c) d)); with s = sinh(sqrt(c) d / 2): u = 2 s^2 and
// sinh(sqrt(c) d) = 2 s sqrt(1 + s^2), both free of cancellation. A = 0 where d = 0
// (the subgradient at x == y).
template <typename T>
HYPERDML_HD void backward_weights(T g, T d, T alpha, T beta, T sqrt_c, T* a_out, T* u_out) {
  const T s = sinh(sqrt_c * d / T(2));
  const T u = T(2) * s * s;
  const T sinh_t = T(2) * s * sqrt(T(1) + s * s);
  *u_out = u;
  *a_out = sinh_t > T(0) ? g * T(4) * sqrt_c / (alpha * beta * sinh_t) : T(0);
}

}  // namespace
}  // namespace cdist
}  // namespace hyperdml
