// Schemas of hyperdml::poincare_cdist and its backward. Kernels: cpu/ and cuda/.
// Autograd, fake kernel and autocast rules are registered from Python (hyperdml/ops).
#include "poincare_cdist/poincare_cdist.h"

#include <torch/library.h>

namespace hyperdml {

std::tuple<at::Tensor, at::Tensor> cdist_gradients(const at::Tensor& row, const at::Tensor& col,
                                                   const at::Tensor& weights, const at::Tensor& x,
                                                   const at::Tensor& y) {
  // grad_x = diag(row) x - W y and grad_y = diag(col) y - W^T x, each one GEMM that accumulates
  // into the diagonal term (addmm with beta = 1, alpha = -1), so no separate subtraction pass.
  return {at::addmm(row.unsqueeze(1) * x, weights, y, 1, -1), at::addmm(col.unsqueeze(1) * y, weights.t(), x, 1, -1)};
}

}  // namespace hyperdml

TORCH_LIBRARY_FRAGMENT(hyperdml, m) {
  m.def("poincare_cdist(Tensor x, Tensor y, float c) -> Tensor");
  m.def("poincare_cdist_backward(Tensor grad, Tensor x, Tensor y, Tensor dist, float c) -> (Tensor, Tensor)");
}
