// Helpers over ATen's vectorised types shared by the CPU kernels.
#pragma once

// The kernels are compiled once per instruction set (cpu_dispatch.h); without the name, ATen's
// vector types and the kernels' namespace would not say which copy this is.
#ifndef CPU_CAPABILITY
#error "CPU kernels are compiled once per instruction set by setup.py, with -DCPU_CAPABILITY=<name>"
#endif

#include <ATen/cpu/vec/vec.h>

#include <cmath>
#include <cstdint>

namespace hyperdml {

// Whether any lane of a comparison result holds (its lanes are all-ones or all-zeros bits).
template <typename T>
inline bool any_lane(const at::vec::Vectorized<T>& mask) {
  return mask.zero_mask() != (1 << at::vec::Vectorized<T>::size()) - 1;
}

// p * 2^k for integer-valued lanes k in [-126, 127] (float) or [-1022, 1023] (double), exact
// where the result is a normal number: the exponent is set directly, no exp2 call.
inline at::vec::Vectorized<float> scale_pow2(const at::vec::Vectorized<float>& p, const at::vec::Vectorized<float>& k) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_scalef_ps(p, k);
#elif defined(CPU_CAPABILITY_AVX2)
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
#else
  __at_align__ float lp[at::vec::Vectorized<float>::size()], lk[at::vec::Vectorized<float>::size()];
  p.store(lp);
  k.store(lk);
  for (int i = 0; i < at::vec::Vectorized<float>::size(); ++i)
    lp[i] = std::isfinite(lk[i]) ? std::ldexp(lp[i], static_cast<int>(lk[i])) : lp[i] * lk[i];
  return at::vec::Vectorized<float>::loadu(lp);
#endif
}

inline at::vec::Vectorized<double> scale_pow2(const at::vec::Vectorized<double>& p,
                                              const at::vec::Vectorized<double>& k) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_scalef_pd(p, k);
#elif defined(CPU_CAPABILITY_AVX2)
  const __m256i k64 = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
  const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(k64, _mm256_set1_epi64x(1023)), 52);
  return _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
#else
  __at_align__ double lp[at::vec::Vectorized<double>::size()], lk[at::vec::Vectorized<double>::size()];
  p.store(lp);
  k.store(lk);
  for (int i = 0; i < at::vec::Vectorized<double>::size(); ++i)
    lp[i] = std::isfinite(lk[i]) ? std::ldexp(lp[i], static_cast<int>(lk[i])) : lp[i] * lk[i];
  return at::vec::Vectorized<double>::loadu(lp);
#endif
}

using VecD = at::vec::Vectorized<double>;

// VecD::size() values from p, widened to double (a float widens exactly).
inline VecD load_double(const double* p) { return VecD::loadu(p); }

inline VecD load_double(const float* p) {
#if defined(CPU_CAPABILITY_AVX512)
  return VecD(_mm512_cvtps_pd(_mm256_loadu_ps(p)));
#elif defined(CPU_CAPABILITY_AVX2)
  return VecD(_mm256_cvtps_pd(_mm_loadu_ps(p)));
#else
  __at_align__ double lanes[VecD::size()];
  for (int k = 0; k < VecD::size(); ++k) lanes[k] = p[k];
  return VecD::loadu(lanes);
#endif
}

// The first n (< VecD::size()) values from p, widened to double; the other lanes are 0.
template <typename T>
inline VecD load_double(const T* p, int64_t n) {
  __at_align__ double lanes[VecD::size()] = {};
  for (int64_t k = 0; k < n; ++k) lanes[k] = static_cast<double>(p[k]);
  return VecD::loadu(lanes);
}

// Lane k of the result is the sum of the lanes of v[k]: VecD::size() horizontal sums at once,
// by a transposing tree of shuffles (AVX512: 21 instructions for 8 sums instead of ~56).
inline VecD lane_sums(const VecD (&v)[VecD::size()]) {
#if defined(CPU_CAPABILITY_AVX512)
  __m512d pair[4], quad[2];
  for (int k = 0; k < 4; ++k)  // (v2k, v2k+1) summed in adjacent lanes of each 128-bit block
    pair[k] = _mm512_add_pd(_mm512_unpacklo_pd(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_pd(v[2 * k], v[2 * k + 1]));
  // 0x88 takes 128-bit blocks (0, 2) of each operand, 0xDD blocks (1, 3): summing the two halves
  // each time, until block b holds the totals of v[2b] and v[2b + 1].
  for (int k = 0; k < 2; ++k)
    quad[k] = _mm512_add_pd(_mm512_shuffle_f64x2(pair[2 * k], pair[2 * k + 1], 0x88),
                            _mm512_shuffle_f64x2(pair[2 * k], pair[2 * k + 1], 0xDD));
  return VecD(_mm512_add_pd(_mm512_shuffle_f64x2(quad[0], quad[1], 0x88), _mm512_shuffle_f64x2(quad[0], quad[1], 0xDD)));
#elif defined(CPU_CAPABILITY_AVX2)
  const __m256d s01 = _mm256_hadd_pd(v[0], v[1]), s23 = _mm256_hadd_pd(v[2], v[3]);
  return VecD(_mm256_add_pd(_mm256_permute2f128_pd(s01, s23, 0x20), _mm256_permute2f128_pd(s01, s23, 0x31)));
#else
  __at_align__ double lanes[VecD::size()], sums[VecD::size()];
  for (int k = 0; k < VecD::size(); ++k) {
    v[k].store(lanes);
    double total = 0;
    for (int l = 0; l < VecD::size(); ++l) total += lanes[l];
    sums[k] = total;
  }
  return VecD::loadu(sums);
#endif
}

}  // namespace hyperdml
