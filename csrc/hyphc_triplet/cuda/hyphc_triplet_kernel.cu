// CUDA kernels of hyperdml::hyphc_triplet_loss: one thread per triplet; the backward adds each
// triplet's point gradients with atomics into a (P, D) buffer, so no (T, 3, D) tensor exists.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common.h"
#include "hyphc_triplet/hyphc_triplet_math.h"

namespace hyperdml {
namespace {

constexpr int kThreads = 128;

int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535LL * 16));
}

template <typename T>
__global__ void forward_kernel(T* __restrict__ out, const T* __restrict__ pts, const int64_t* __restrict__ tri,
                               const T* __restrict__ sims, int64_t n, int64_t dim, double c, double inv_sqrt_c,
                               double inv_tau) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
    hyphc::PairGrad pg[3];
    double dl_ddelta[3], dl_ds[3];
    out[t] = static_cast<T>(hyphc::triplet_forward(pts, tri, sims, t, dim, c, inv_sqrt_c, inv_tau, pg, dl_ddelta, dl_ds));
  }
}

template <typename T>
__global__ void backward_kernel(T* __restrict__ grad_pts, T* __restrict__ grad_sims, const T* __restrict__ grad,
                                const T* __restrict__ pts, const int64_t* __restrict__ tri,
                                const T* __restrict__ sims, int64_t n, int64_t dim, double c, double inv_sqrt_c,
                                double inv_tau) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
    hyphc::PairGrad pg[3];
    double dl_ddelta[3], dl_ds[3], M[3][3];
    hyphc::triplet_forward(pts, tri, sims, t, dim, c, inv_sqrt_c, inv_tau, pg, dl_ddelta, dl_ds);
    const double g = static_cast<double>(grad[t]);
    for (int m = 0; m < 3; ++m) {
      grad_sims[3 * t + m] = static_cast<T>(g * dl_ds[m]);
      dl_ddelta[m] *= g;
    }
    hyphc::point_coefficients(pg, dl_ddelta, c, M);
    const int64_t* idx = tri + 3 * t;
    const T* z0 = pts + idx[0] * dim;
    const T* z1 = pts + idx[1] * dim;
    const T* z2 = pts + idx[2] * dim;
    for (int64_t d = 0; d < dim; ++d) {
      const double a = z0[d], b = z1[d], k = z2[d];
      for (int p = 0; p < 3; ++p)
        atomicAdd(grad_pts + idx[p] * dim + d, static_cast<T>(M[p][0] * a + M[p][1] * b + M[p][2] * k));
    }
  }
}

at::Tensor hyphc_triplet_loss_cuda(const at::Tensor& points_in, const at::Tensor& triplets_in,
                                   const at::Tensor& sims_in, double c, double tau) {
  check_hyphc_inputs(points_in, triplets_in, sims_in, c, tau, at::kCUDA);
  const c10::cuda::CUDAGuard guard(points_in.device());
  const at::Tensor points = points_in.contiguous(), triplets = triplets_in.contiguous(), sims = sims_in.contiguous();
  check_hyphc_values(points, triplets, sims, c);
  const int64_t T = triplets.size(0), D = points.size(1);
  at::Tensor out = at::empty({T}, points.options());
  if (T == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hyphc_triplet_loss_cuda", [&] {
    forward_kernel<scalar_t><<<blocks_for(T), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        out.data_ptr<scalar_t>(), points.data_ptr<scalar_t>(), triplets.data_ptr<int64_t>(),
        sims.data_ptr<scalar_t>(), T, D, c, 1.0 / std::sqrt(c), 1.0 / tau);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> hyphc_triplet_loss_backward_cuda(const at::Tensor& grad_in,
                                                                    const at::Tensor& points_in,
                                                                    const at::Tensor& triplets_in,
                                                                    const at::Tensor& sims_in, double c,
                                                                    double tau) {
  check_hyphc_inputs(points_in, triplets_in, sims_in, c, tau, at::kCUDA);
  check_hyphc_grad(grad_in, points_in, triplets_in);
  const c10::cuda::CUDAGuard guard(points_in.device());
  const at::Tensor points = points_in.contiguous(), triplets = triplets_in.contiguous(), sims = sims_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  check_hyphc_values(points, triplets, sims, c);
  const int64_t T = triplets.size(0), D = points.size(1);
  at::Tensor grad_points = at::zeros_like(points);
  at::Tensor grad_sims = at::empty_like(sims);
  if (T == 0) return {grad_points, grad_sims};
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hyphc_triplet_loss_backward_cuda", [&] {
    backward_kernel<scalar_t><<<blocks_for(T), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        grad_points.data_ptr<scalar_t>(), grad_sims.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
        points.data_ptr<scalar_t>(), triplets.data_ptr<int64_t>(), sims.data_ptr<scalar_t>(), T, D, c,
        1.0 / std::sqrt(c), 1.0 / tau);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_points, grad_sims};
}

}  // namespace

TORCH_LIBRARY_IMPL(hyperdml, CUDA, m) {
  m.impl("hyphc_triplet_loss", &hyphc_triplet_loss_cuda);
  m.impl("hyphc_triplet_loss_backward", &hyphc_triplet_loss_backward_cuda);
}

}  // namespace hyperdml
