// Schemas of hyperdml::poincare_cdist and its backward. Kernels: cpu/ and cuda/.
// Autograd, fake kernel and autocast rules are registered from Python (hyperdml/ops).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(hyperdml, m) {
  m.def("poincare_cdist(Tensor x, Tensor y, float c) -> Tensor");
  m.def("poincare_cdist_backward(Tensor grad, Tensor x, Tensor y, Tensor dist, float c) -> (Tensor, Tensor)");
}
