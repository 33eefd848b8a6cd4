// CUDA kernels of hyperdml::hyphc_triplet_loss: a warp per 32 triplets (coalesced gathers, one
// lane per triplet for the scalar maths); the backward adds each triplet's point gradients with
// coalesced atomics into a (P, D) buffer, so no (T, 3, D) tensor exists.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common.h"
#include "cuda_launch.h"
#include "hyphc_triplet/hyphc_triplet_math.h"

namespace hyperdml {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// One warp takes 32 triplets at a time, in two phases:
// 1. for each of the 32 triplets in turn, the whole warp gathers its three rows (lane l takes the
//    coordinates l, l + 32, ...: coalesced) and sums the eight dot products with shuffles; lane k
//    keeps triplet k's sums;
// 2. every lane then does the scalar maths (three LCA depths, softmax, coefficients, in double) of
//    its own triplet, all 32 at once; the backward then broadcasts each triplet's 3x3
//    coefficients back to the warp, which adds the three gradient rows with coalesced atomics.
// The loop over triplets is uniform across the warp, so the shuffles always have every lane.
__device__ void warp_allreduce(double sums[hyphc::kDotSums]) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
#pragma unroll
    for (int m = 0; m < hyphc::kDotSums; ++m) sums[m] += __shfl_xor_sync(kFullMask, sums[m], offset);
}

// Phase 1 for the triplets base .. base + count - 1: returns lane's own triplet's dot sums.
template <typename T>
__device__ void gather_dot_sums(const T* pts, const int64_t* tri, int64_t base, int count, int64_t dim, int lane,
                                double mine[hyphc::kDotSums]) {
  for (int m = 0; m < hyphc::kDotSums; ++m) mine[m] = 0;
  for (int k = 0; k < count; ++k) {
    const int64_t* idx = tri + 3 * (base + k);
    double sums[hyphc::kDotSums];
    hyphc::triplet_dot_sums(pts + idx[0] * dim, pts + idx[1] * dim, pts + idx[2] * dim, lane, dim, kWarp, sums);
    warp_allreduce(sums);
    if (lane == k)
      for (int m = 0; m < hyphc::kDotSums; ++m) mine[m] = sums[m];
  }
}

struct WarpIndex {
  int lane;
  int64_t first;   // first triplet of this warp
  int64_t stride;  // triplets per grid iteration
};

__device__ WarpIndex warp_index() {
  const int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / kWarp;
  return {static_cast<int>(threadIdx.x % kWarp), warp * kWarp, (int64_t)gridDim.x * blockDim.x};
}

template <typename T>
__global__ void forward_kernel(T* __restrict__ out, const T* __restrict__ pts, const int64_t* __restrict__ tri,
                               const T* __restrict__ sims, int64_t n, int64_t dim, double c, double inv_sqrt_c,
                               double inv_tau) {
  const WarpIndex w = warp_index();
  for (int64_t base = w.first; base < n; base += w.stride) {
    const int count = static_cast<int>(n - base < kWarp ? n - base : kWarp);
    double sums[hyphc::kDotSums];
    gather_dot_sums(pts, tri, base, count, dim, w.lane, sums);
    if (w.lane < count) {
      const int64_t t = base + w.lane;
      const double s[3] = {static_cast<double>(sims[3 * t]), static_cast<double>(sims[3 * t + 1]),
                           static_cast<double>(sims[3 * t + 2])};
      out[t] = static_cast<T>(hyphc::triplet_loss_from_sums<double>(sums, s, c, inv_sqrt_c, inv_tau));
    }
  }
}

// grad_pts is float64 for either dtype: a point's gradient sums the terms of every triplet that
// holds it, which float32 atomics would add with an error growing with their number.
template <typename T>
__global__ void backward_kernel(double* __restrict__ grad_pts, T* __restrict__ grad_sims, const T* __restrict__ grad,
                                int64_t grad_stride, const T* __restrict__ pts, const int64_t* __restrict__ tri,
                                const T* __restrict__ sims, int64_t n, int64_t dim, double c, double inv_sqrt_c,
                                double inv_tau) {
  const WarpIndex w = warp_index();
  for (int64_t base = w.first; base < n; base += w.stride) {
    const int count = static_cast<int>(n - base < kWarp ? n - base : kWarp);
    double sums[hyphc::kDotSums];
    gather_dot_sums(pts, tri, base, count, dim, w.lane, sums);
    double M[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    if (w.lane < count) {
      const int64_t t = base + w.lane;
      const double s[3] = {static_cast<double>(sims[3 * t]), static_cast<double>(sims[3 * t + 1]),
                           static_cast<double>(sims[3 * t + 2])};
      double dl_ds[3];
      hyphc::triplet_backward_from_sums<double>(sums, s, static_cast<double>(grad[t * grad_stride]), c, inv_sqrt_c, inv_tau, dl_ds,
                                                M);
      for (int m = 0; m < 3; ++m) grad_sims[3 * t + m] = static_cast<T>(dl_ds[m]);
    }
    for (int k = 0; k < count; ++k) {
      double Mk[3][3];
      for (int p = 0; p < 3; ++p)
        for (int q = 0; q < 3; ++q) Mk[p][q] = __shfl_sync(kFullMask, M[p][q], k);
      const int64_t* idx = tri + 3 * (base + k);
      const T* z0 = pts + idx[0] * dim;
      const T* z1 = pts + idx[1] * dim;
      const T* z2 = pts + idx[2] * dim;
      for (int64_t d = w.lane; d < dim; d += kWarp) {
        const double a = z0[d], b = z1[d], e = z2[d];
        for (int p = 0; p < 3; ++p)
          atomicAdd(grad_pts + idx[p] * dim + d, Mk[p][0] * a + Mk[p][1] * b + Mk[p][2] * e);
      }
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
    forward_kernel<scalar_t><<<blocks_for(T, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
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
  const at::Tensor& grad = grad_in;  // any stride: a mean's gradient is one value, expanded
  check_hyphc_values(points, triplets, sims, c);
  const int64_t T = triplets.size(0), D = points.size(1);
  at::Tensor grad_points = at::zeros_like(points, points.options().dtype(at::kDouble));
  at::Tensor grad_sims = at::empty_like(sims);
  if (T == 0) return {grad_points.to(points.scalar_type()), grad_sims};
  at::globalContext().alertNotDeterministic("hyphc_triplet_loss_backward_cuda");  // atomic adds
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hyphc_triplet_loss_backward_cuda", [&] {
    backward_kernel<scalar_t><<<blocks_for(T, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        grad_points.data_ptr<double>(), grad_sims.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
        grad.stride(0), points.data_ptr<scalar_t>(), triplets.data_ptr<int64_t>(), sims.data_ptr<scalar_t>(), T, D, c,
        1.0 / std::sqrt(c), 1.0 / tau);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_points.to(points.scalar_type()), grad_sims};
}

}  // namespace

TORCH_LIBRARY_IMPL(hyperdml, CUDA, m) {
  m.impl("hyphc_triplet_loss", &hyphc_triplet_loss_cuda);
  m.impl("hyphc_triplet_loss_backward", &hyphc_triplet_loss_backward_cuda);
}

}  // namespace hyperdml
