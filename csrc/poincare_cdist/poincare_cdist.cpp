// Schemas of hyperdml::poincare_cdist and its backward, and the CPU registration, which calls
// the kernels' copy for the instruction set in use (cpu_dispatch.h). Kernels: cpu/ and cuda/.
// Autograd, fake kernel and autocast rules are registered from Python (hyperdml/ops).
#include "poincare_cdist/poincare_cdist.h"

#include <algorithm>
#include <cmath>

#include <torch/library.h>

#include "poincare_cdist/cpu/poincare_cdist_kernel.h"

namespace hyperdml {

// Adds the exact terms of the pairs marked in `near` (left out of the weights by the kernels).
void add_near_pairs(const at::Tensor& grad_x, const at::Tensor& grad_y, const at::Tensor& near, const at::Tensor& grad,
                    const at::Tensor& dist, const at::Tensor& x, const at::Tensor& y, const at::Tensor& alpha,
                    const at::Tensor& beta, double c) {
  const at::Tensor pairs = near.nonzero();  // (K, 2)
  const int64_t K = pairs.size(0);
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(x.size(1), 1));
  const double sqrt_c = std::sqrt(c);
  for (int64_t s = 0; s < K; s += chunk) {
    const at::Tensor part = pairs.slice(0, s, std::min(K, s + chunk));
    const at::Tensor i = part.select(1, 0), j = part.select(1, 1);
    const at::Tensor g = grad.index({i, j}), d = dist.index({i, j});  // no copy of a strided block
    const at::Tensor ai = alpha.index_select(0, i), bj = beta.index_select(0, j);
    // Same weights as cdist::backward_weights: s = sinh(sqrt(c) d / 2), u = 2 s^2,
    // sinh(sqrt(c) d) = 2 s sqrt(1 + s^2), A = g 4 sqrt(c) / (alpha beta sinh), 0 at d = 0.
    const at::Tensor sh = at::sinh(d * (sqrt_c / 2));
    const at::Tensor u = 2 * sh * sh;
    const at::Tensor sinh_t = 2 * sh * at::sqrt(1 + sh * sh);
    const at::Tensor a = at::where(sinh_t > 0, g * (4 * sqrt_c) / (ai * bj * at::where(sinh_t > 0, sinh_t, 1)), 0);
    const at::Tensor xi = x.index_select(0, i), yj = y.index_select(0, j);
    const at::Tensor diff = xi - yj;
    grad_x.index_add_(0, i, a.unsqueeze(1) * (diff + (u * bj * 0.5).unsqueeze(1) * xi));
    grad_y.index_add_(0, j, a.unsqueeze(1) * ((u * ai * 0.5).unsqueeze(1) * yj - diff));
  }
}

std::tuple<at::Tensor, at::Tensor> cdist_gradients(const at::Tensor& row, const at::Tensor& col,
                                                   const at::Tensor& weights, const at::Tensor& near,
                                                   const at::Tensor& grad, const at::Tensor& dist,
                                                   const at::Tensor& x, const at::Tensor& y,
                                                   const at::Tensor& alpha, const at::Tensor& beta, double c) {
  // grad_x = diag(row) x - W y and grad_y = diag(col) y - W^T x, each one GEMM that accumulates
  // in place into the diagonal term (addmm_ with beta = 1, alpha = -1): no subtraction pass and
  // no second (N, D) buffer.
  // Where TF32 is allowed (allow_tf32, set_float32_matmul_precision("high")), cuBLAS would round
  // float32 products to 2^-11 of their size: float32 inputs then take float64 GEMMs.
  const bool widen = x.scalar_type() == at::kFloat && at::globalContext().allowTF32CuBLAS();
  const auto gemm_type = widen ? at::kDouble : x.scalar_type();
  const at::Tensor w = weights.to(gemm_type), xg = x.to(gemm_type), yg = y.to(gemm_type);
  at::Tensor grad_x = row.unsqueeze(1).to(gemm_type) * xg;
  grad_x.addmm_(w, yg, 1, -1);
  at::Tensor grad_y = col.unsqueeze(1).to(gemm_type) * yg;
  grad_y.addmm_(w.t(), xg, 1, -1);
  grad_x = grad_x.to(x.scalar_type());
  grad_y = grad_y.to(x.scalar_type());
  add_near_pairs(grad_x, grad_y, near, grad, dist, x, y, alpha, beta, c);
  return {grad_x, grad_y};
}

}  // namespace hyperdml

TORCH_LIBRARY_FRAGMENT(hyperdml, m) {
  m.def("poincare_cdist(Tensor x, Tensor y, float c) -> Tensor");
  m.def("poincare_cdist_backward(Tensor grad, Tensor x, Tensor y, Tensor dist, float c) -> (Tensor, Tensor)");
}

namespace hyperdml {
namespace {

at::Tensor poincare_cdist_cpu_dispatch(const at::Tensor& x, const at::Tensor& y, double c) {
  return HYPERDML_CPU_KERNEL(poincare_cdist_cpu)(x, y, c);
}

TensorPair poincare_cdist_backward_cpu_dispatch(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y,
                                                const at::Tensor& dist, double c) {
  return HYPERDML_CPU_KERNEL(poincare_cdist_backward_cpu)(grad, x, y, dist, c);
}

}  // namespace
}  // namespace hyperdml

TORCH_LIBRARY_IMPL(hyperdml, CPU, m) {
  m.impl("poincare_cdist", &hyperdml::poincare_cdist_cpu_dispatch);
  m.impl("poincare_cdist_backward", &hyperdml::poincare_cdist_backward_cpu_dispatch);
}
