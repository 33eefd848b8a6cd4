// Device-independent pieces of poincare_cdist shared by the CPU and CUDA kernels.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace hyperdml {

// The last step of the backward, with the per-pair weights A (B, N) from a device kernel:
// grad_x_i = row_i x_i - sum_j A_ij y_j and grad_y_j = col_j y_j - sum_i A_ij x_i, where
// row_i = sum_j A_ij (1 + u_ij beta_j / 2) and col_j = sum_i A_ij (1 + u_ij alpha_i / 2).
std::tuple<at::Tensor, at::Tensor> cdist_gradients(const at::Tensor& row, const at::Tensor& col,
                                                   const at::Tensor& weights, const at::Tensor& x,
                                                   const at::Tensor& y);

}  // namespace hyperdml
