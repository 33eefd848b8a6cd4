// CPU kernels of hyperdml::hyphc_triplet_loss: OpenMP (at::parallel_for) over triplets; the
// backward accumulates point gradients in one buffer per thread, summed at the end, so no
// (T, 3, D) gather or scatter tensor exists.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "common.h"
#include "hyphc_triplet/hyphc_triplet_math.h"

namespace hyperdml {
namespace {

constexpr int64_t kGrain = 256;

at::Tensor hyphc_triplet_loss_cpu(const at::Tensor& points_in, const at::Tensor& triplets_in,
                                  const at::Tensor& sims_in, double c, double tau) {
  check_hyphc_inputs(points_in, triplets_in, sims_in, c, tau, at::kCPU);
  const at::Tensor points = points_in.contiguous(), triplets = triplets_in.contiguous(), sims = sims_in.contiguous();
  check_hyphc_values(points, triplets, sims, c);
  const int64_t T = triplets.size(0), D = points.size(1);
  at::Tensor out = at::empty({T}, points.options());
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hyphc_triplet_loss_cpu", [&] {
    const scalar_t* pts = points.data_ptr<scalar_t>();
    const int64_t* tri = triplets.data_ptr<int64_t>();
    const scalar_t* sp = sims.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const double inv_sqrt_c = 1.0 / std::sqrt(c), inv_tau = 1.0 / tau;
    at::parallel_for(0, T, kGrain, [&](int64_t begin, int64_t end) {
      hyphc::PairGrad pg[3];
      double dl_ddelta[3], dl_ds[3];
      for (int64_t t = begin; t < end; ++t)
        op[t] = static_cast<scalar_t>(
            hyphc::triplet_forward(pts, tri, sp, t, D, c, inv_sqrt_c, inv_tau, pg, dl_ddelta, dl_ds));
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> hyphc_triplet_loss_backward_cpu(const at::Tensor& grad_in,
                                                                   const at::Tensor& points_in,
                                                                   const at::Tensor& triplets_in,
                                                                   const at::Tensor& sims_in, double c, double tau) {
  check_hyphc_inputs(points_in, triplets_in, sims_in, c, tau, at::kCPU);
  check_hyphc_grad(grad_in, points_in, triplets_in);
  const at::Tensor points = points_in.contiguous(), triplets = triplets_in.contiguous(), sims = sims_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  check_hyphc_values(points, triplets, sims, c);
  const int64_t T = triplets.size(0), P = points.size(0), D = points.size(1);
  const int threads = at::get_num_threads();
  // Per-thread gradient buffers in double: exact accumulation whatever the storage type.
  at::Tensor parts = at::zeros({threads, P, D}, points.options().dtype(at::kDouble));
  at::Tensor grad_sims = at::empty_like(sims);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hyphc_triplet_loss_backward_cpu", [&] {
    const scalar_t* pts = points.data_ptr<scalar_t>();
    const int64_t* tri = triplets.data_ptr<int64_t>();
    const scalar_t* sp = sims.data_ptr<scalar_t>();
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    scalar_t* gsp = grad_sims.data_ptr<scalar_t>();
    double* partp = parts.data_ptr<double>();
    const double inv_sqrt_c = 1.0 / std::sqrt(c), inv_tau = 1.0 / tau;
    at::parallel_for(0, T, kGrain, [&](int64_t begin, int64_t end) {
      double* acc = partp + at::get_thread_num() * P * D;
      hyphc::PairGrad pg[3];
      double dl_ddelta[3], dl_ds[3], M[3][3];
      for (int64_t t = begin; t < end; ++t) {
        hyphc::triplet_forward(pts, tri, sp, t, D, c, inv_sqrt_c, inv_tau, pg, dl_ddelta, dl_ds);
        const double g = static_cast<double>(gp[t]);
        for (int m = 0; m < 3; ++m) {
          gsp[3 * t + m] = static_cast<scalar_t>(g * dl_ds[m]);
          dl_ddelta[m] *= g;
        }
        hyphc::point_coefficients(pg, dl_ddelta, c, M);
        const int64_t* idx = tri + 3 * t;
        const scalar_t* z[3] = {pts + idx[0] * D, pts + idx[1] * D, pts + idx[2] * D};
        for (int p = 0; p < 3; ++p) {
          double* out = acc + idx[p] * D;
          _Pragma("omp simd")  // a pragma cannot stand inside the AT_DISPATCH macro
          for (int64_t d = 0; d < D; ++d)
            out[d] += M[p][0] * static_cast<double>(z[0][d]) + M[p][1] * static_cast<double>(z[1][d]) +
                      M[p][2] * static_cast<double>(z[2][d]);
        }
      }
    });
  });
  return {parts.sum(0).to(points.scalar_type()), grad_sims};
}

}  // namespace

TORCH_LIBRARY_IMPL(hyperdml, CPU, m) {
  m.impl("hyphc_triplet_loss", &hyphc_triplet_loss_cpu);
  m.impl("hyphc_triplet_loss_backward", &hyphc_triplet_loss_backward_cpu);
}

}  // namespace hyperdml
