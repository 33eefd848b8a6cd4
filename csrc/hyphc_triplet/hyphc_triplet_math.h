// Per-triplet math of hyphc_triplet_loss, shared by the CPU and CUDA kernels.
//
// LCA depth of a pair (a, b), both scaled by sqrt(c): the geodesic through a and b is an arc of
// the circle through them orthogonal to the boundary; its centre m lies in span(a, b) with
// m.a = w_a = (1 + |a|^2)/2, m.b = w_b = (1 + |b|^2)/2, and tanh(sqrt(c) delta) = 1/|m|:
//
//   tanh^2(sqrt(c) delta) = (|a|^2 |b|^2 - (a.b)^2) / |w_a b - w_b a|^2.
//
// Everything is written with aa = a.a, ae = a.e, ee = e.e for e = b - a, so nearby points lose
// no precision. When a == b (den == 0) the LCA is the point itself: the depth of the midpoint.
// All arithmetic is in double (acc_t) whatever the storage type.
#pragma once

#include <cmath>

#include "macros.h"

namespace hyperdml {
namespace hyphc {
namespace {  // internal linkage: host copies from gcc and nvcc never meet at link time

struct PairGrad {
  double d_aa, d_ae, d_ee;  // d delta / d (aa, ae, ee), the dots already scaled by c
};

// Depth delta and its partials in (aa, ae, ee) (scaled dots). inv_sqrt_c = 1/sqrt(c).
HYPERDML_HD double lca_depth(double aa, double ae, double ee, double inv_sqrt_c, PairGrad* grad) {
  const double wa = (1.0 + aa) / 2.0;
  const double dw = -(2.0 * ae + ee) / 2.0;  // w_a - w_b
  const double num = aa * ee - ae * ae;
  const double den = dw * dw * aa + 2.0 * wa * dw * ae + wa * wa * ee;
  double t, dt_aa = 0, dt_ae = 0, dt_ee = 0;
  if (den > 0) {
    if (num > 0) {
      t = sqrt(num / den);
      const double dt_dnum = 1.0 / (2.0 * t * den), dt_dden = -t / (2.0 * den);
      const double den_aa = dw * dw + dw * ae + wa * ee;
      const double den_ae = -2.0 * dw * aa + 2.0 * wa * (dw - ae);
      const double den_ee = -dw * aa - wa * ae + wa * wa;
      dt_aa = dt_dnum * ee + dt_dden * den_aa;
      dt_ae = dt_dnum * (-2.0 * ae) + dt_dden * den_ae;
      dt_ee = dt_dnum * aa + dt_dden * den_ee;
    } else {
      t = 0;  // a, b and the origin are collinear: the geodesic passes through the origin
    }
  } else {
    const double mm = aa + ae + ee / 4.0;  // |a + e/2|^2
    if (mm > 0) {
      const double r = sqrt(mm);
      t = 2.0 * r / (1.0 + mm);
      const double dt_dmm = (1.0 - mm) / (r * (1.0 + mm) * (1.0 + mm));
      dt_aa = dt_dmm;
      dt_ae = dt_dmm;
      dt_ee = dt_dmm / 4.0;
    } else {
      t = 0;
    }
  }
  const double t_max = 1.0 - 1e-15;
  if (t > t_max) t = t_max;
  const double ddelta_dt = inv_sqrt_c / ((1.0 - t) * (1.0 + t));
  grad->d_aa = ddelta_dt * dt_aa;
  grad->d_ae = ddelta_dt * dt_ae;
  grad->d_ee = ddelta_dt * dt_ee;
  return atanh(t) * inv_sqrt_c;
}

// The eight dot products a triplet needs, over the coordinates begin, begin + step, ... < dim
// (a whole row on the CPU; one lane's share on CUDA, summed across the lanes afterwards):
// |zi|^2, |zj|^2, zi.(zj-zi), zi.(zk-zi), zj.(zk-zj), |zj-zi|^2, |zk-zi|^2, |zk-zj|^2.
constexpr int kDotSums = 8;

template <typename T>
HYPERDML_HD void triplet_dot_sums(const T* zi, const T* zj, const T* zk, int64_t begin, int64_t dim, int64_t step,
                                  double sums[kDotSums]) {
  double ii = 0, jj = 0, ij_e = 0, ik_e = 0, jk_e = 0, eij = 0, eik = 0, ejk = 0;
#if defined(_OPENMP) && !defined(__CUDACC__)
#pragma omp simd reduction(+ : ii, ij_e, ik_e, jj, jk_e, eij, eik, ejk)
#endif
  for (int64_t d = begin; d < dim; d += step) {
    const double a = zi[d], b = zj[d], k = zk[d];
    const double e1 = b - a, e2 = k - a, e3 = k - b;
    ii += a * a;
    jj += b * b;
    ij_e += a * e1;
    ik_e += a * e2;
    jk_e += b * e3;
    eij += e1 * e1;
    eik += e2 * e2;
    ejk += e3 * e3;
  }
  sums[0] = ii, sums[1] = jj, sums[2] = ij_e, sums[3] = ik_e, sums[4] = jk_e, sums[5] = eij, sums[6] = eik,
  sums[7] = ejk;
}

// Loss of one triplet from its depths: sum s - s . softmax(delta / tau). With want_grad, also
// dloss/ddelta and dloss/ds.
HYPERDML_HD double triplet_loss(const double delta[3], const double s[3], double inv_tau, double dl_ddelta[3],
                                double dl_ds[3]) {
  const double zmax = fmax(delta[0], fmax(delta[1], delta[2])) * inv_tau;
  double p[3], z = 0;
  for (int m = 0; m < 3; ++m) {
    p[m] = exp(delta[m] * inv_tau - zmax);
    z += p[m];
  }
  double sp = 0, ssum = 0;
  for (int m = 0; m < 3; ++m) {
    p[m] /= z;
    sp += s[m] * p[m];
    ssum += s[m];
  }
  for (int m = 0; m < 3; ++m) {
    dl_ddelta[m] = -inv_tau * p[m] * (s[m] - sp);
    dl_ds[m] = 1.0 - p[m];
  }
  return ssum - sp;
}

// Loss of triplet t from its dot sums and its sims row, with dloss/ddelta, dloss/ds and the
// depths' partials. Pairs (ij, ik, jk) have (a, e) = (zi, zj-zi), (zi, zk-zi), (zj, zk-zj).
template <typename T>
HYPERDML_HD double triplet_forward_from_sums(const double sums[kDotSums], const T* sims_row, double c,
                                             double inv_sqrt_c, double inv_tau, PairGrad pg[3], double dl_ddelta[3],
                                             double dl_ds[3]) {
  const double aa[3] = {sums[0], sums[0], sums[1]};
  const double ae[3] = {sums[2], sums[3], sums[4]};
  const double ee[3] = {sums[5], sums[6], sums[7]};
  double delta[3], s[3];
  for (int m = 0; m < 3; ++m) {
    delta[m] = lca_depth(c * aa[m], c * ae[m], c * ee[m], inv_sqrt_c, &pg[m]);
    s[m] = static_cast<double>(sims_row[m]);
  }
  return triplet_loss(delta, s, inv_tau, dl_ddelta, dl_ds);
}

// The same for triplet t from the points, one pass over the rows (the CPU kernels' path).
template <typename T>
HYPERDML_HD double triplet_forward(const T* pts, const int64_t* tri, const T* sims, int64_t t, int64_t dim, double c,
                                   double inv_sqrt_c, double inv_tau, PairGrad pg[3], double dl_ddelta[3],
                                   double dl_ds[3]) {
  const int64_t* idx = tri + 3 * t;
  double sums[kDotSums];
  triplet_dot_sums(pts + idx[0] * dim, pts + idx[1] * dim, pts + idx[2] * dim, 0, dim, 1, sums);
  return triplet_forward_from_sums(sums, sims + 3 * t, c, inv_sqrt_c, inv_tau, pg, dl_ddelta, dl_ds);
}

// Coefficients M (3x3) with grad z_p = sum_q M[p][q] z_q for one triplet, given dloss/ddelta
// (already times the incoming gradient). Pair m joins points (first[m], second[m]); for a pair
// (a, b) with e = b - a: grad_a = c[(2g_aa - 2g_ae + 2g_ee) a + (g_ae - 2g_ee) b],
// grad_b = c[(g_ae - 2g_ee) a + 2g_ee b].
HYPERDML_HD void point_coefficients(const PairGrad pg[3], const double dl_ddelta[3], double c, double M[3][3]) {
  const int first[3] = {0, 0, 1}, second[3] = {1, 2, 2};
  for (int p = 0; p < 3; ++p)
    for (int q = 0; q < 3; ++q) M[p][q] = 0;
  for (int m = 0; m < 3; ++m) {
    const double g_aa = dl_ddelta[m] * pg[m].d_aa, g_ae = dl_ddelta[m] * pg[m].d_ae,
                 g_ee = dl_ddelta[m] * pg[m].d_ee;
    const int a = first[m], b = second[m];
    M[a][a] += c * (2.0 * g_aa - 2.0 * g_ae + 2.0 * g_ee);
    M[a][b] += c * (g_ae - 2.0 * g_ee);
    M[b][a] += c * (g_ae - 2.0 * g_ee);
    M[b][b] += c * 2.0 * g_ee;
  }
}

}  // namespace
}  // namespace hyphc
}  // namespace hyperdml
