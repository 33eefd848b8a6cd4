// CPU kernels of hyperdml::hyphc_triplet_loss: OpenMP (at::parallel_for) over triplets.
// Triplets go W at a time (W = Vectorized<double>::size(): 8 with AVX512, 4 with AVX2): each
// one's eight dot sums over its rows, then the depths, softmax and coefficients of all W in one
// vectorised pass (one triplet per lane, Sleef maths); the last T mod W triplets take the same
// maths on scalars. The backward accumulates point gradients in one buffer per thread, summed at
// the end, so no (T, 3, D) gather or scatter tensor exists. Compiled once per instruction set
// (cpu_dispatch.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "common.h"
#include "cpu_lanes.h"
#include "hyphc_triplet/cpu/hyphc_triplet_kernel.h"
#include "hyphc_triplet/hyphc_triplet_math.h"

namespace hyperdml {
namespace hyphc {
namespace {

using Vec = at::vec::Vectorized<double>;

template <>
struct Lanes<Vec> {
  static Vec sqrt(const Vec& x) { return x.sqrt(); }
  static Vec atanh(const Vec& x) { return x.atanh(); }
  static Vec exp(const Vec& x) { return x.exp(); }
  static Vec max(const Vec& a, const Vec& b) { return at::vec::maximum(a, b); }
  static Vec min(const Vec& a, const Vec& b) { return at::vec::minimum(a, b); }
  static Vec both(const Vec& a, const Vec& b) { return a & b; }
  static bool any(const Vec& m) { return any_lane(m); }
  static Vec select(const Vec& m, const Vec& if_true, const Vec& if_false) {
    return Vec::blendv(if_false, if_true, m);
  }
};

}  // namespace
}  // namespace hyphc

namespace CPU_CAPABILITY {
namespace {

constexpr int64_t kGrain = 256;
constexpr int W = hyphc::Vec::size();

// The inputs of one triplet, as scalars.
template <typename T>
void load_one(const T* pts, const int64_t* tri, const T* sims, int64_t t, int64_t dim,
              double sums[hyphc::kDotSums], double s[3]) {
  const int64_t* idx = tri + 3 * t;
  hyphc::triplet_dot_sums(pts + idx[0] * dim, pts + idx[1] * dim, pts + idx[2] * dim, 0, dim, 1, sums);
  for (int m = 0; m < 3; ++m) s[m] = static_cast<double>(sims[3 * t + m]);
}

// The inputs of triplets t0 .. t0 + W - 1, one per lane.
struct LaneInputs {
  hyphc::Vec sums[hyphc::kDotSums], sims[3];
};

template <typename T>
LaneInputs load_lanes(const T* pts, const int64_t* tri, const T* sims, int64_t t0, int64_t dim) {
  double sums[hyphc::kDotSums][W], s[3][W];
  for (int k = 0; k < W; ++k) {
    double one_sums[hyphc::kDotSums], one_s[3];
    load_one(pts, tri, sims, t0 + k, dim, one_sums, one_s);
    for (int m = 0; m < hyphc::kDotSums; ++m) sums[m][k] = one_sums[m];
    for (int m = 0; m < 3; ++m) s[m][k] = one_s[m];
  }
  LaneInputs lanes;
  for (int m = 0; m < hyphc::kDotSums; ++m) lanes.sums[m] = hyphc::Vec::loadu(sums[m]);
  for (int m = 0; m < 3; ++m) lanes.sims[m] = hyphc::Vec::loadu(s[m]);
  return lanes;
}

}  // namespace

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
    const hyphc::Vec vc(c), v_inv_sqrt_c(inv_sqrt_c), v_inv_tau(inv_tau);
    at::parallel_for(0, T, kGrain, [&](int64_t begin, int64_t end) {
      int64_t t = begin;
      for (; t + W <= end; t += W) {
        const LaneInputs in = load_lanes(pts, tri, sp, t, D);
        double loss[W];
        hyphc::triplet_loss_from_sums(in.sums, in.sims, vc, v_inv_sqrt_c, v_inv_tau).store(loss);
        for (int k = 0; k < W; ++k) op[t + k] = static_cast<scalar_t>(loss[k]);
      }
      for (; t < end; ++t) {
        double sums[hyphc::kDotSums], s[3];
        load_one(pts, tri, sp, t, D, sums, s);
        op[t] = static_cast<scalar_t>(hyphc::triplet_loss_from_sums(sums, s, c, inv_sqrt_c, inv_tau));
      }
    });
  });
  return out;
}

namespace {

// Adds triplet t's point gradients, sum_q M[p][q] z_q for its points p, to the rows of acc.
template <typename T>
void add_point_grads(double* acc, const T* pts, const int64_t* idx, int64_t dim, const double M[3][3]) {
  const T* z0 = pts + idx[0] * dim;
  const T* z1 = pts + idx[1] * dim;
  const T* z2 = pts + idx[2] * dim;
  double* r0 = acc + idx[0] * dim;
  double* r1 = acc + idx[1] * dim;
  double* r2 = acc + idx[2] * dim;
  if (r0 == r1 || r0 == r2 || r1 == r2) {  // a repeated index: the rows alias, add one at a time
    for (int p = 0; p < 3; ++p) {
      double* row = acc + idx[p] * dim;
      for (int64_t d = 0; d < dim; ++d)
        row[d] += M[p][0] * static_cast<double>(z0[d]) + M[p][1] * static_cast<double>(z1[d]) +
                  M[p][2] * static_cast<double>(z2[d]);
    }
    return;
  }
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) {
    const double a = z0[d], b = z1[d], e = z2[d];
    r0[d] += M[0][0] * a + M[0][1] * b + M[0][2] * e;
    r1[d] += M[1][0] * a + M[1][1] * b + M[1][2] * e;
    r2[d] += M[2][0] * a + M[2][1] * b + M[2][2] * e;
  }
}

}  // namespace

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
    const hyphc::Vec vc(c), v_inv_sqrt_c(inv_sqrt_c), v_inv_tau(inv_tau);
    at::parallel_for(0, T, kGrain, [&](int64_t begin, int64_t end) {
      double* acc = partp + at::get_thread_num() * P * D;
      int64_t t = begin;
      for (; t + W <= end; t += W) {
        const LaneInputs in = load_lanes(pts, tri, sp, t, D);
        double g[W];
        for (int k = 0; k < W; ++k) g[k] = static_cast<double>(gp[t + k]);
        hyphc::Vec dl_ds[3], M[3][3];
        hyphc::triplet_backward_from_sums(in.sums, in.sims, hyphc::Vec::loadu(g), vc, v_inv_sqrt_c, v_inv_tau, dl_ds, M);
        double ds[3][W], m[3][3][W];
        for (int p = 0; p < 3; ++p) {
          dl_ds[p].store(ds[p]);
          for (int q = 0; q < 3; ++q) M[p][q].store(m[p][q]);
        }
        for (int k = 0; k < W; ++k) {
          double Mk[3][3];
          for (int p = 0; p < 3; ++p) {
            gsp[3 * (t + k) + p] = static_cast<scalar_t>(ds[p][k]);
            for (int q = 0; q < 3; ++q) Mk[p][q] = m[p][q][k];
          }
          add_point_grads(acc, pts, tri + 3 * (t + k), D, Mk);
        }
      }
      for (; t < end; ++t) {
        double sums[hyphc::kDotSums], s[3], dl_ds[3], M[3][3];
        load_one(pts, tri, sp, t, D, sums, s);
        hyphc::triplet_backward_from_sums(sums, s, static_cast<double>(gp[t]), c, inv_sqrt_c, inv_tau, dl_ds, M);
        for (int p = 0; p < 3; ++p) gsp[3 * t + p] = static_cast<scalar_t>(dl_ds[p]);
        add_point_grads(acc, pts, tri + 3 * t, D, M);
      }
    });
  });
  return {parts.sum(0).to(points.scalar_type()), grad_sims};
}

}  // namespace CPU_CAPABILITY
}  // namespace hyperdml
