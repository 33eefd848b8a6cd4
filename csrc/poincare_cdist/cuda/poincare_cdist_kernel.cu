// CUDA kernels of hyperdml::poincare_cdist: cuBLAS GEMM (through ATen) for the inner products,
// one fused elementwise kernel for the rest; the backward is one elementwise kernel plus GEMMs,
// then the exact terms of the nearly equal pairs (add_near_pairs).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common.h"
#include "cuda_launch.h"
#include "poincare_cdist/poincare_cdist.h"
#include "poincare_cdist/poincare_cdist_math.h"

namespace hyperdml {
namespace {

constexpr int kThreads = 256;


template <typename T>
__global__ void distance_kernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ y,
                                const T* __restrict__ xx, const T* __restrict__ yy, int64_t B, int64_t N,
                                int64_t D, T c, T inv_sqrt_c, T near) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < B * N;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = idx / N, j = idx % N;
    const T xi = xx[i], yj = yy[j];
    T sq = xi + yj - T(2) * out[idx];
    if (sq < near * (xi + yj)) sq = cdist::exact_sqdist(x + i * D, y + j * D, D);
    const T u = T(2) * c * sq / ((T(1) - c * xi) * (T(1) - c * yj));
    out[idx] = cdist::distance_from_u(u, inv_sqrt_c);
  }
}

// Nearly equal pairs (cdist::is_near) get weight 0 and a mark in `near`; cdist_gradients adds
// their exact terms.
template <typename T>
__global__ void weights_kernel(T* __restrict__ weights, T* __restrict__ weights_u, bool* __restrict__ near,
                               const T* __restrict__ grad, const T* __restrict__ dist,
                               const T* __restrict__ alpha, const T* __restrict__ beta, int64_t B, int64_t N,
                               T sqrt_c) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < B * N;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = idx / N, j = idx % N;
    T a, u;
    cdist::backward_weights(grad[idx], dist[idx], alpha[i], beta[j], sqrt_c, &a, &u);
    const bool is_near = cdist::is_near(u, alpha[i], beta[j]);
    near[idx] = is_near;
    weights[idx] = is_near ? T(0) : a;
    weights_u[idx] = is_near ? T(0) : a * u;
  }
}

at::Tensor poincare_cdist_cuda(const at::Tensor& x_in, const at::Tensor& y_in, double c) {
  check_cdist_inputs(x_in, y_in, c, at::kCUDA);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  const at::Tensor xx = (x * x).sum(1), yy = (y * y).sum(1);
  if (!at::stack({(xx * c < 1).all(), (yy * c < 1).all()}).all().item<bool>()) {  // one host sync
    check_in_ball(x, xx, c, "x");  // these name the problem
    check_in_ball(y, yy, c, "y");
  }
  // Where TF32 is allowed (allow_tf32, set_float32_matmul_precision("high")), cuBLAS would round
  // the products to 2^-11 of their size: errors of several percent in the squared distances just
  // outside the near-pair guard. float32 inputs then take a float64 GEMM.
  const bool widen = x.scalar_type() == at::kFloat && at::globalContext().allowTF32CuBLAS();
  at::Tensor out = widen ? at::mm(x.to(at::kDouble), y.to(at::kDouble).t()).to(at::kFloat)
                         : at::mm(x, y.t()).contiguous();
  const int64_t B = x.size(0), N = y.size(0), D = x.size(1);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "poincare_cdist_cuda", [&] {
    using T = scalar_t;
    distance_kernel<T><<<blocks_for(B * N, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        out.data_ptr<T>(), x.data_ptr<T>(), y.data_ptr<T>(), xx.data_ptr<T>(), yy.data_ptr<T>(), B, N, D,
        static_cast<T>(c), static_cast<T>(1.0 / std::sqrt(c)), static_cast<T>(cdist::kNearRatio));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> poincare_cdist_backward_cuda(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                                const at::Tensor& y_in, const at::Tensor& dist_in,
                                                                double c) {
  check_cdist_backward_inputs(grad_in, x_in, y_in, dist_in, c, at::kCUDA);
  const int64_t B = x_in.size(0), N = y_in.size(0);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  const at::Tensor grad = grad_in.contiguous(), dist = dist_in.contiguous();
  const at::Tensor alpha = 1 - c * (x * x).sum(1), beta = 1 - c * (y * y).sum(1);
  at::Tensor weights = at::empty({B, N}, x.options());    // A_ij
  at::Tensor weights_u = at::empty({B, N}, x.options());  // A_ij u_ij
  at::Tensor near = at::empty({B, N}, x.options().dtype(at::kBool));
  if (B > 0 && N > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "poincare_cdist_backward_cuda", [&] {
      using T = scalar_t;
      weights_kernel<T><<<blocks_for(B * N, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          weights.data_ptr<T>(), weights_u.data_ptr<T>(), near.data_ptr<bool>(), grad.data_ptr<T>(), dist.data_ptr<T>(),
          alpha.data_ptr<T>(), beta.data_ptr<T>(), B, N, static_cast<T>(std::sqrt(c)));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  // row_i = sum_j A_ij (1 + u_ij beta_j / 2), col_j = sum_i A_ij (1 + u_ij alpha_i / 2).
  const at::Tensor row = weights.sum(1) + 0.5 * at::mv(weights_u, beta);
  const at::Tensor col = weights.sum(0) + 0.5 * at::mv(weights_u.t(), alpha);
  return cdist_gradients(row, col, weights, near, grad, dist, x, y, alpha, beta, c);
}

}  // namespace

TORCH_LIBRARY_IMPL(hyperdml, CUDA, m) {
  m.impl("poincare_cdist", &poincare_cdist_cuda);
  m.impl("poincare_cdist_backward", &poincare_cdist_backward_cuda);
}

}  // namespace hyperdml
