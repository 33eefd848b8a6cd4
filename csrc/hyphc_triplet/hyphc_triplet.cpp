// Schemas of hyperdml::hyphc_triplet_loss and its backward. Kernels: cpu/ and cuda/.
// Autograd and the fake kernel are registered from Python (hyperdml/ops).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(hyperdml, m) {
  m.def("hyphc_triplet_loss(Tensor points, Tensor triplets, Tensor sims, float c, float tau) -> Tensor");
  m.def(
      "hyphc_triplet_loss_backward(Tensor grad, Tensor points, Tensor triplets, Tensor sims, float c, "
      "float tau) -> (Tensor, Tensor)");
}
