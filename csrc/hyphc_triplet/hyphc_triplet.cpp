// Schemas of hyperdml::hyphc_triplet_loss and its backward, and the CPU registration, which
// calls the kernels' copy for the instruction set in use (cpu_dispatch.h). Kernels: cpu/ and
// cuda/. Autograd and the fake kernel are registered from Python (hyperdml/ops).
#include <torch/library.h>

#include "hyphc_triplet/cpu/hyphc_triplet_kernel.h"

TORCH_LIBRARY_FRAGMENT(hyperdml, m) {
  m.def("hyphc_triplet_loss(Tensor points, Tensor triplets, Tensor sims, float c, float tau) -> Tensor");
  m.def(
      "hyphc_triplet_loss_backward(Tensor grad, Tensor points, Tensor triplets, Tensor sims, float c, "
      "float tau) -> (Tensor, Tensor)");
  m.def(
      "hyphc_triplet_loss_and_sum_grads(Tensor points, Tensor triplets, Tensor sims, float c, float tau, "
      "bool sims_grad) -> (Tensor, Tensor, Tensor)");
}

namespace hyperdml {
namespace {

at::Tensor hyphc_triplet_loss_cpu_dispatch(const at::Tensor& points, const at::Tensor& triplets,
                                           const at::Tensor& sims, double c, double tau) {
  return HYPERDML_CPU_KERNEL(hyphc_triplet_loss_cpu)(points, triplets, sims, c, tau);
}

TensorPair hyphc_triplet_loss_backward_cpu_dispatch(const at::Tensor& grad, const at::Tensor& points,
                                                    const at::Tensor& triplets, const at::Tensor& sims, double c,
                                                    double tau) {
  return HYPERDML_CPU_KERNEL(hyphc_triplet_loss_backward_cpu)(grad, points, triplets, sims, c, tau);
}

TensorTriple hyphc_triplet_loss_and_sum_grads_cpu_dispatch(const at::Tensor& points, const at::Tensor& triplets,
                                                           const at::Tensor& sims, double c, double tau,
                                                           bool sims_grad) {
  return HYPERDML_CPU_KERNEL(hyphc_triplet_loss_and_sum_grads_cpu)(points, triplets, sims, c, tau, sims_grad);
}

}  // namespace
}  // namespace hyperdml

TORCH_LIBRARY_IMPL(hyperdml, CPU, m) {
  m.impl("hyphc_triplet_loss", &hyperdml::hyphc_triplet_loss_cpu_dispatch);
  m.impl("hyphc_triplet_loss_backward", &hyperdml::hyphc_triplet_loss_backward_cpu_dispatch);
  m.impl("hyphc_triplet_loss_and_sum_grads", &hyperdml::hyphc_triplet_loss_and_sum_grads_cpu_dispatch);
}
