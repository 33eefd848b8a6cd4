// The CPU kernels of hyphc_triplet_loss, one copy per instruction set (cpu_dispatch.h); the op's
// registration (hyphc_triplet.cpp) calls the copy in use.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "cpu_dispatch.h"

namespace hyperdml {

using TensorPair = std::tuple<at::Tensor, at::Tensor>;
using TensorTriple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

HYPERDML_DECLARE_CPU_KERNEL(at::Tensor, hyphc_triplet_loss_cpu,
                            (const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims, double c,
                             double tau))
HYPERDML_DECLARE_CPU_KERNEL(TensorTriple, hyphc_triplet_loss_and_sum_grads_cpu,
                            (const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims, double c,
                             double tau, bool sims_grad))
HYPERDML_DECLARE_CPU_KERNEL(TensorPair, hyphc_triplet_loss_backward_cpu,
                            (const at::Tensor& grad, const at::Tensor& points, const at::Tensor& triplets,
                             const at::Tensor& sims, double c, double tau))

}  // namespace hyperdml
