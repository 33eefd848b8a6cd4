// CUDA kernels of hyperdml::hyphc_triplet_loss: a group of lanes per triplet; the backward adds
// each triplet's point gradients with (coalesced) atomics into a (P, D) buffer, so no (T, 3, D)
// tensor exists.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <type_traits>

#include "common.h"
#include "cuda_launch.h"
#include "hyphc_triplet/hyphc_triplet_math.h"

namespace hyperdml {
namespace {

constexpr int kThreads = 256;

// A group of G lanes (G divides 32) works on one triplet: each lane takes the coordinates
// lane, lane + G, ..., so the gathers of the three rows and the atomic adds of their gradients
// are coalesced, and the eight dot sums are combined with warp shuffles. Every lane then holds
// the sums and does the (cheap) scalar maths itself. The loop over triplets is uniform across a
// warp, so the shuffles never run with lanes missing.
template <int G>
__device__ void group_reduce(double sums[hyphc::kDotSums]) {
#pragma unroll
  for (int offset = G / 2; offset > 0; offset /= 2)
#pragma unroll
    for (int m = 0; m < hyphc::kDotSums; ++m) sums[m] += __shfl_xor_sync(0xffffffffu, sums[m], offset, G);
}

struct GroupIndex {
  int lane;            // lane within the group
  int64_t warp_first;  // triplet of the warp's first group in this iteration
  int group_in_warp;
  int64_t stride;      // triplets per grid iteration
};

template <int G>
__device__ GroupIndex group_index() {
  const int64_t thread = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int in_warp = threadIdx.x % 32;
  return {in_warp % G, (thread - in_warp) / G, in_warp / G, (int64_t)gridDim.x * blockDim.x / G};
}

template <typename T, int G>
__global__ void forward_kernel(T* __restrict__ out, const T* __restrict__ pts, const int64_t* __restrict__ tri,
                               const T* __restrict__ sims, int64_t n, int64_t dim, double c, double inv_sqrt_c,
                               double inv_tau) {
  const GroupIndex g = group_index<G>();
  for (int64_t base = g.warp_first; base < n; base += g.stride) {
    const int64_t t = base + g.group_in_warp;
    const bool valid = t < n;
    double sums[hyphc::kDotSums] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (valid) {
      const int64_t* idx = tri + 3 * t;
      hyphc::triplet_dot_sums(pts + idx[0] * dim, pts + idx[1] * dim, pts + idx[2] * dim, g.lane, dim, G, sums);
    }
    group_reduce<G>(sums);
    if (valid && g.lane == 0) {
      hyphc::PairGrad pg[3];
      double dl_ddelta[3], dl_ds[3];
      out[t] = static_cast<T>(
          hyphc::triplet_forward_from_sums(sums, sims + 3 * t, c, inv_sqrt_c, inv_tau, pg, dl_ddelta, dl_ds));
    }
  }
}

template <typename T, int G>
__global__ void backward_kernel(T* __restrict__ grad_pts, T* __restrict__ grad_sims, const T* __restrict__ grad,
                                const T* __restrict__ pts, const int64_t* __restrict__ tri,
                                const T* __restrict__ sims, int64_t n, int64_t dim, double c, double inv_sqrt_c,
                                double inv_tau) {
  const GroupIndex g = group_index<G>();
  for (int64_t base = g.warp_first; base < n; base += g.stride) {
    const int64_t t = base + g.group_in_warp;
    const bool valid = t < n;
    const int64_t* idx = tri + 3 * (valid ? t : 0);
    const T* z0 = pts + idx[0] * dim;
    const T* z1 = pts + idx[1] * dim;
    const T* z2 = pts + idx[2] * dim;
    double sums[hyphc::kDotSums] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (valid) hyphc::triplet_dot_sums(z0, z1, z2, g.lane, dim, G, sums);
    group_reduce<G>(sums);
    if (!valid) continue;
    hyphc::PairGrad pg[3];
    double dl_ddelta[3], dl_ds[3], M[3][3];
    hyphc::triplet_forward_from_sums(sums, sims + 3 * t, c, inv_sqrt_c, inv_tau, pg, dl_ddelta, dl_ds);
    const double gt = static_cast<double>(grad[t]);
    for (int m = 0; m < 3; ++m) dl_ddelta[m] *= gt;
    if (g.lane == 0)
      for (int m = 0; m < 3; ++m) grad_sims[3 * t + m] = static_cast<T>(gt * dl_ds[m]);
    hyphc::point_coefficients(pg, dl_ddelta, c, M);
    for (int64_t d = g.lane; d < dim; d += G) {
      const double a = z0[d], b = z1[d], k = z2[d];
      for (int p = 0; p < 3; ++p)
        atomicAdd(grad_pts + idx[p] * dim + d, static_cast<T>(M[p][0] * a + M[p][1] * b + M[p][2] * k));
    }
  }
}

// Lanes per triplet: enough to cover D in one or two strides, at least 4.
template <typename Launch>
void with_group_size(int64_t dim, Launch&& launch) {
  if (dim > 32)
    launch(std::integral_constant<int, 32>{});
  else if (dim > 16)
    launch(std::integral_constant<int, 16>{});
  else if (dim > 8)
    launch(std::integral_constant<int, 8>{});
  else
    launch(std::integral_constant<int, 4>{});
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
    with_group_size(D, [&](auto group) {
      constexpr int G = decltype(group)::value;
      forward_kernel<scalar_t, G><<<blocks_for(T * G, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          out.data_ptr<scalar_t>(), points.data_ptr<scalar_t>(), triplets.data_ptr<int64_t>(),
          sims.data_ptr<scalar_t>(), T, D, c, 1.0 / std::sqrt(c), 1.0 / tau);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
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
    with_group_size(D, [&](auto group) {
      constexpr int G = decltype(group)::value;
      backward_kernel<scalar_t, G><<<blocks_for(T * G, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          grad_points.data_ptr<scalar_t>(), grad_sims.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
          points.data_ptr<scalar_t>(), triplets.data_ptr<int64_t>(), sims.data_ptr<scalar_t>(), T, D, c,
          1.0 / std::sqrt(c), 1.0 / tau);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {grad_points, grad_sims};
}

}  // namespace

TORCH_LIBRARY_IMPL(hyperdml, CUDA, m) {
  m.impl("hyphc_triplet_loss", &hyphc_triplet_loss_cuda);
  m.impl("hyphc_triplet_loss_backward", &hyphc_triplet_loss_backward_cuda);
}

}  // namespace hyperdml
