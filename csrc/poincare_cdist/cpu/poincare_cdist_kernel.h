// The CPU kernels of poincare_cdist, one copy per instruction set (cpu_dispatch.h); the op's
// registration (poincare_cdist.cpp) calls the copy in use.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "cpu_dispatch.h"

namespace hyperdml {

using TensorPair = std::tuple<at::Tensor, at::Tensor>;

HYPERDML_DECLARE_CPU_KERNEL(at::Tensor, poincare_cdist_cpu, (const at::Tensor& x, const at::Tensor& y, double c))
HYPERDML_DECLARE_CPU_KERNEL(TensorPair, poincare_cdist_backward_cpu,
                            (const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y,
                             const at::Tensor& dist, double c))

}  // namespace hyperdml
