// Device-independent pieces of poincare_cdist shared by the CPU and CUDA kernels.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace hyperdml {

// The last step of the CUDA backward, with the per-pair weights A (B, N) from its kernel:
// grad_x_i = row_i x_i - sum_j A_ij y_j and grad_y_j = col_j y_j - sum_i A_ij x_i, where
// row_i = sum_j A_ij (1 + u_ij beta_j / 2) and col_j = sum_i A_ij (1 + u_ij alpha_i / 2).
//
// That GEMM form cancels for nearly equal points (its error grows like eps ||x|| / ||x - y||),
// so the kernels leave the pairs that cdist::is_near flags out of A and mark them in `near`
// (bool, B x N); add_near_pairs adds their terms A_ij ((x_i - y_j) + (u_ij beta_j / 2) x_i) (and
// the mirror for y) from the exact differences. (The CPU backward works in column blocks and
// calls add_near_pairs per block itself.)
std::tuple<at::Tensor, at::Tensor> cdist_gradients(const at::Tensor& row, const at::Tensor& col,
                                                   const at::Tensor& weights, const at::Tensor& near,
                                                   const at::Tensor& grad, const at::Tensor& dist,
                                                   const at::Tensor& x, const at::Tensor& y,
                                                   const at::Tensor& alpha, const at::Tensor& beta, double c);

// The exact terms of the pairs marked in `near` (bool, B x N), added in place to grad_x (B, D)
// and grad_y (N, D), in chunks of pairs (never a (B, N, D) tensor); grad and dist are (B, N)
// (any strides), alpha (B,) and beta (N,).
void add_near_pairs(const at::Tensor& grad_x, const at::Tensor& grad_y, const at::Tensor& near,
                    const at::Tensor& grad, const at::Tensor& dist, const at::Tensor& x, const at::Tensor& y,
                    const at::Tensor& alpha, const at::Tensor& beta, double c);

}  // namespace hyperdml
