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
// All arithmetic is in double whatever the storage type. The loss needs the depths only through
// t = tanh(sqrt(c) delta) (triplet_loss), so no atanh is taken.
//
// The maths after the dot sums is written once over a number type V: double (CUDA: one triplet
// per thread; the CPU's leftover triplets) or, on the CPU, ATen's Vectorized<double> (one
// triplet per lane). Branches are therefore selects: both sides are computed and Lanes<V>::select
// keeps one per lane; the side that cannot occur in a lane may hold inf or NaN there, never read.
#pragma once

#include <cmath>

#include "macros.h"

namespace hyperdml {
namespace hyphc {
namespace {  // internal linkage: host copies from gcc and nvcc never meet at link time

// The lane operations the maths needs. Specialised here for double; the CPU kernel specialises
// it for Vectorized<double>.
template <typename V>
struct Lanes;

template <>
struct Lanes<double> {
  static HYPERDML_HD double sqrt(double x) { return ::sqrt(x); }
  static HYPERDML_HD double log(double x) { return ::log(x); }
  static HYPERDML_HD double exp(double x) { return ::exp(x); }
  static HYPERDML_HD double max(double a, double b) { return fmax(a, b); }
  static HYPERDML_HD double min(double a, double b) { return fmin(a, b); }
  static HYPERDML_HD bool both(bool a, bool b) { return a && b; }
  static HYPERDML_HD bool either(bool a, bool b) { return a || b; }
  static HYPERDML_HD bool any(bool m) { return m; }
  static HYPERDML_HD double select(bool m, double if_true, double if_false) { return m ? if_true : if_false; }
};

template <typename V>
struct PairGradOf {
  V d_aa, d_ae, d_ee;  // d t / d (aa, ae, ee), t = tanh(sqrt(c) delta), the dots already scaled by c
};

// t = tanh(sqrt(c) delta) of a pair from its scaled dots (aa, ae, ee), at most 1 - 1e-15; with
// kGrad also its partials in them. The loss needs the depths only through t (triplet_loss).
template <bool kGrad, typename V>
HYPERDML_HD V lca_tanh(V aa, V ae, V ee, PairGradOf<V>* grad) {
  using L = Lanes<V>;
  const V zero(0.0), one(1.0), two(2.0), half(0.5);
  const V wa = (one + aa) * half;
  const V dw = (two * ae + ee) * V(-0.5);  // w_a - w_b
  const V num = aa * ee - ae * ae;
  const V den = dw * dw * aa + two * wa * dw * ae + wa * wa * ee;
  const auto apart = den > zero;                    // a != b
  const auto bent = L::both(apart, num > zero);     // else a, b and the origin are collinear: t = 0
  const V inv_den = one / den;
  V t = L::select(bent, L::sqrt(num * inv_den), zero);  // tanh(sqrt(c) delta)
  V dt_aa = zero, dt_ae = zero, dt_ee = zero;
  if constexpr (kGrad) {
    const V dt_dnum = half * t / num, dt_dden = V(-0.5) * t * inv_den;  // t^2 = num / den
    const V den_aa = dw * dw + dw * ae + wa * ee;
    const V den_ae = two * (wa * (dw - ae) - dw * aa);
    const V den_ee = wa * wa - dw * aa - wa * ae;
    dt_aa = L::select(bent, dt_dnum * ee + dt_dden * den_aa, zero);
    dt_ae = L::select(bent, dt_dnum * (V(-2.0) * ae) + dt_dden * den_ae, zero);
    dt_ee = L::select(bent, dt_dnum * aa + dt_dden * den_ee, zero);
  }
  const auto same = den <= zero;
  if (L::any(same)) {  // a == b: the depth of the midpoint, t = 2r / (1 + r^2), r = |a + e/2|
    const V mm = aa + ae + ee * V(0.25);
    const auto inside = L::both(same, mm > zero);  // else the midpoint is the origin: t = 0
    const V r = L::sqrt(mm);
    t = L::select(same, L::select(inside, two * r / (one + mm), zero), t);
    if constexpr (kGrad) {
      const V dt_dmm = L::select(inside, (one - mm) / (r * (one + mm) * (one + mm)), zero);
      dt_aa = L::select(same, dt_dmm, dt_aa);
      dt_ae = L::select(same, dt_dmm, dt_ae);
      dt_ee = L::select(same, dt_dmm * V(0.25), dt_ee);
    }
  }
  if constexpr (kGrad) {
    grad->d_aa = dt_aa;
    grad->d_ae = dt_ae;
    grad->d_ee = dt_ee;
  }
  return L::min(t, V(1.0 - 1e-15));
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

// Loss of one triplet from its pairs' t = tanh(sqrt(c) delta): sum s - s . softmax(delta / tau).
// With kGrad, also dloss/dt and dloss/ds. k = 1 / (2 sqrt(c) tau).
//
// delta = atanh(t) / sqrt(c) = log q / (2 sqrt(c)) with q = (1 + t) / (1 - t), so the softmax's
// shifted exponents are (delta_m - delta_max) / tau = k log r_m, r_m = q_m / q_max in (0, 1]:
// one log per pair, no atanh, and exactly 0 for the largest depth whatever tau (its r is the
// same two products in the other order), so the softmax sum lies in [1, 3] and nothing
// overflows even at tau = 1e-30. The ratio is within a few ulps, so the exponent within a few
// ulps of 1 absolutely, times k. The largest depth's weight is exp(0) = 1 without computing it:
// only the other two pairs take a log and an exp (selected per lane).
template <bool kGrad, typename V>
HYPERDML_HD V triplet_loss(const V t[3], const V s[3], V k, V inv_sqrt_c, V inv_tau, V dl_dt[3], V dl_ds[3]) {
  using L = Lanes<V>;
  const V one(1.0);
  const V tmax = L::max(t[0], L::max(t[1], t[2]));
  const V plus_max = one + tmax, minus_max = one - tmax;
  const auto max0 = L::both(t[0] >= t[1], t[0] >= t[2]);  // pair 0 is (one of) the deepest
  const auto max01 = L::either(max0, t[1] >= t[2]);        // pair 0 or 1 is
  // The two other pairs, u and v: (1, 2) when pair 0 is deepest, else (0, 2) or (0, 1).
  const V tu = L::select(max0, t[1], t[0]), tv = L::select(max01, t[2], t[1]);
  auto weight = [&](V tm) { return L::exp(L::log(((one + tm) * minus_max) / ((one - tm) * plus_max)) * k); };
  const V pu = weight(tu), pv = weight(tv);
  V p[3] = {L::select(max0, one, pu), L::select(max0, pu, L::select(max01, one, pv)), L::select(max01, pv, one)};
  V plus[3], minus[3];
  const V inv_z = one / (one + pu + pv);
  V sp(0.0), ssum(0.0);
  for (int m = 0; m < 3; ++m) {
    plus[m] = one + t[m];
    minus[m] = one - t[m];
    p[m] = p[m] * inv_z;
    sp = sp + s[m] * p[m];
    ssum = ssum + s[m];
  }
  if constexpr (kGrad) {
    // One division for the three 1 / ((1 - t)(1 + t)): each is the product of the other two
    // times 1 / (all three); each factor is at least 1e-15, so nothing underflows.
    const V q[3] = {minus[0] * plus[0], minus[1] * plus[1], minus[2] * plus[2]};
    const V inv_q012 = one / (q[0] * q[1] * q[2]);
    const V inv_q[3] = {q[1] * q[2] * inv_q012, q[0] * q[2] * inv_q012, q[0] * q[1] * inv_q012};
    for (int m = 0; m < 3; ++m) {
      // dloss/ddelta = p (sp - s) / tau; ddelta/dt = 1 / (sqrt(c) (1 - t)(1 + t)).
      dl_dt[m] = inv_tau * p[m] * (sp - s[m]) * inv_sqrt_c * inv_q[m];
      dl_ds[m] = one - p[m];
    }
  }
  return ssum - sp;
}

// Loss of a triplet from its pairs' dots and its sims, with (kGrad) dloss/dt, dloss/ds and the
// partials of each pair's t. Pairs m = (ij, ik, jk) have (a, e) = (zi, zj-zi), (zi, zk-zi),
// (zj, zk-zj) and dots aa[m] = a.a, ae[m] = a.e, ee[m] = e.e, not yet scaled by c.
template <bool kGrad, typename V>
HYPERDML_HD V triplet_forward(const V aa[3], const V ae[3], const V ee[3], const V s[3], V c, V inv_sqrt_c, V inv_tau,
                              PairGradOf<V> pg[3], V dl_dt[3], V dl_ds[3]) {
  V t[3];
  for (int m = 0; m < 3; ++m) t[m] = lca_tanh<kGrad>(c * aa[m], c * ae[m], c * ee[m], &pg[m]);
  return triplet_loss<kGrad>(t, s, V(0.5) * inv_sqrt_c * inv_tau, inv_sqrt_c, inv_tau, dl_dt, dl_ds);
}

// The same from the eight dot sums of triplet_dot_sums.
template <bool kGrad, typename V>
HYPERDML_HD V triplet_forward_from_sums(const V sums[kDotSums], const V s[3], V c, V inv_sqrt_c, V inv_tau,
                                        PairGradOf<V> pg[3], V dl_dt[3], V dl_ds[3]) {
  const V aa[3] = {sums[0], sums[0], sums[1]};
  const V ae[3] = {sums[2], sums[3], sums[4]};
  const V ee[3] = {sums[5], sums[6], sums[7]};
  return triplet_forward<kGrad>(aa, ae, ee, s, c, inv_sqrt_c, inv_tau, pg, dl_dt, dl_ds);
}

// Loss of a triplet from its pairs' dots (or its dot sums) and sims, nothing else.
template <typename V>
HYPERDML_HD V triplet_loss_value(const V aa[3], const V ae[3], const V ee[3], const V s[3], V c, V inv_sqrt_c,
                                 V inv_tau) {
  PairGradOf<V> pg[3];
  V dl_dt[3], dl_ds[3];
  return triplet_forward<false>(aa, ae, ee, s, c, inv_sqrt_c, inv_tau, pg, dl_dt, dl_ds);
}

template <typename V>
HYPERDML_HD V triplet_loss_from_sums(const V sums[kDotSums], const V s[3], V c, V inv_sqrt_c, V inv_tau) {
  PairGradOf<V> pg[3];
  V dl_dt[3], dl_ds[3];
  return triplet_forward_from_sums<false>(sums, s, c, inv_sqrt_c, inv_tau, pg, dl_dt, dl_ds);
}

// Coefficients M (3x3, symmetric) with grad z_p = sum_q M[p][q] z_q for one triplet, given
// dloss/dt (already times the incoming gradient). Pair m joins points (first[m], second[m]); for a pair
// (a, b) with e = b - a: grad_a = c[(2g_aa - 2g_ae + 2g_ee) a + (g_ae - 2g_ee) b],
// grad_b = c[(g_ae - 2g_ee) a + 2g_ee b].
template <typename V>
HYPERDML_HD void point_coefficients(const PairGradOf<V> pg[3], const V dl_dt[3], V c, V M[3][3]) {
  const int first[3] = {0, 0, 1}, second[3] = {1, 2, 2};
  const V two(2.0);
  for (int p = 0; p < 3; ++p)
    for (int q = 0; q < 3; ++q) M[p][q] = V(0.0);
  for (int m = 0; m < 3; ++m) {
    const V g_aa = dl_dt[m] * pg[m].d_aa, g_ae = dl_dt[m] * pg[m].d_ae, g_ee = dl_dt[m] * pg[m].d_ee;
    const int a = first[m], b = second[m];
    const V cross = c * (g_ae - two * g_ee);
    M[a][a] = M[a][a] + c * (two * g_aa - two * g_ae + two * g_ee);
    M[a][b] = M[a][b] + cross;
    M[b][a] = M[b][a] + cross;
    M[b][b] = M[b][b] + c * two * g_ee;
  }
}

// Backward of a triplet from its pairs' dots, times its incoming gradient g: dloss/ds and the
// point coefficients M (above).
template <typename V>
HYPERDML_HD void triplet_backward(const V aa[3], const V ae[3], const V ee[3], const V s[3], V g, V c, V inv_sqrt_c,
                                  V inv_tau, V dl_ds[3], V M[3][3]) {
  PairGradOf<V> pg[3];
  V dl_dt[3];
  triplet_forward<true>(aa, ae, ee, s, c, inv_sqrt_c, inv_tau, pg, dl_dt, dl_ds);
  for (int m = 0; m < 3; ++m) {
    dl_ds[m] = g * dl_ds[m];
    dl_dt[m] = g * dl_dt[m];
  }
  point_coefficients(pg, dl_dt, c, M);
}

// What a forward that sums the gradient needs per triplet (kCoeffs values): the point
// coefficients M and dloss/ds for an incoming gradient of 1 (both are linear in it), as
// M00 M11 M22 M01 M02 M12 (M is symmetric) ds0 ds1 ds2. Returns the loss.
constexpr int kCoeffs = 9;

template <typename V>
HYPERDML_HD V triplet_loss_and_coefficients(const V aa[3], const V ae[3], const V ee[3], const V s[3], V c,
                                            V inv_sqrt_c, V inv_tau, V coeffs[kCoeffs]) {
  PairGradOf<V> pg[3];
  V dl_dt[3], dl_ds[3], M[3][3];
  const V loss = triplet_forward<true>(aa, ae, ee, s, c, inv_sqrt_c, inv_tau, pg, dl_dt, dl_ds);
  point_coefficients(pg, dl_dt, c, M);
  coeffs[0] = M[0][0], coeffs[1] = M[1][1], coeffs[2] = M[2][2];
  coeffs[3] = M[0][1], coeffs[4] = M[0][2], coeffs[5] = M[1][2];
  coeffs[6] = dl_ds[0], coeffs[7] = dl_ds[1], coeffs[8] = dl_ds[2];
  return loss;
}

// The same from the eight dot sums of triplet_dot_sums.
template <typename V>
HYPERDML_HD void triplet_backward_from_sums(const V sums[kDotSums], const V s[3], V g, V c, V inv_sqrt_c, V inv_tau,
                                            V dl_ds[3], V M[3][3]) {
  const V aa[3] = {sums[0], sums[0], sums[1]};
  const V ae[3] = {sums[2], sums[3], sums[4]};
  const V ee[3] = {sums[5], sums[6], sums[7]};
  triplet_backward(aa, ae, ee, s, g, c, inv_sqrt_c, inv_tau, dl_ds, M);
}

}  // namespace
}  // namespace hyphc
}  // namespace hyperdml
