// CPU kernels of hyperdml::hyphc_triplet_loss: OpenMP (at::parallel_for) over triplets.
//
// The points' squared norms are summed once per call (float64). A triplet then needs three dot
// products, zi.zj, zi.zk, zj.zk, summed in float64 (a float32 product is exact in float64), from
// which each pair (a, b) gets its e-form dots ae = a.b - |a|^2 and ee = |a|^2 + |b|^2 - 2 a.b
// (e = b - a). Where those cancel (nearly equal points, or a pair nearly collinear with the
// origin: kCancelRatio), the pair's ae and ee are summed again from the exact differences, as
// triplet_dot_sums does for every pair. Triplets go W at a time (W = Vectorized<double>::size():
// 8 with AVX512, 4 with AVX2), one per lane, through the depths, softmax and coefficients (Sleef
// maths); a last, shorter group fills its spare lanes with copies of its first triplet. The rows
// of a group ahead are prefetched while a group is computed (the rows are random: waiting for
// them bounded both kernels).
//
// Gradients (the backward, and the forward that sums the gradient of the summed loss when a
// gradient will be taken) are added into gradient rows per thread (ThreadGradients), summed at
// the end, so no (T, 3, D) gather or scatter tensor exists; each point's coefficient on its own
// row is summed as a float64 scalar and applied once at the end. The backward reads the incoming
// gradient with its stride.
// Index range and finite sims are checked while the triplets are read. Compiled once per
// instruction set (cpu_dispatch.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

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
  static Vec log(const Vec& x) { return x.log(); }
  static Vec exp(const Vec& x) { return x.exp(); }
  static Vec max(const Vec& a, const Vec& b) { return at::vec::maximum(a, b); }
  static Vec min(const Vec& a, const Vec& b) { return at::vec::minimum(a, b); }
  static Vec both(const Vec& a, const Vec& b) { return a & b; }
  static Vec either(const Vec& a, const Vec& b) { return a | b; }
  static bool any(const Vec& m) { return any_lane(m); }
  static Vec select(const Vec& m, const Vec& if_true, const Vec& if_false) {
    return Vec::blendv(if_false, if_true, m);
  }
};

}  // namespace
}  // namespace hyphc

namespace CPU_CAPABILITY {
namespace {

constexpr int64_t kGrain = 1024;
// The forward prefetches the rows of the lane group kAhead groups ahead (one group ahead left
// the row loads waiting; two measured best).
constexpr int kAhead = 2;
constexpr int W = hyphc::Vec::size();

// A pair's dots come from a.b and the norms unless ee < kCancelRatio (|a|^2 + |b|^2) (the
// difference has cancelled) or num = aa ee - ae^2 < kCancelRatio aa ee (a, b and the origin are
// nearly collinear and num has cancelled): then from the exact differences. Outside those, the
// dots carry at most ~150 (D + 3) float64 ulps of error relative to aa ee (docs/reliability.md).
constexpr double kCancelRatio = 1.0 / 64;

// Squared norms of the rows of a contiguous (P, D) block, in float64.
template <typename T>
void row_sqnorms(const T* pts, int64_t P, int64_t D, double* out) {
  at::parallel_for(0, P, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* z = pts + p * D;
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t d = 0; d < D; ++d) acc += static_cast<double>(z[d]) * static_cast<double>(z[d]);
      out[p] = acc;
    }
  });
}

// z0.z1, z0.z2 and z1.z2 over D coordinates, in float64, each still spread over the lanes.
template <typename T>
inline void cross_dots(const T* z0, const T* z1, const T* z2, int64_t D, hyphc::Vec out[3]) {
  using hyphc::Vec;
  // Two sums per dot, so that consecutive fused multiply-adds do not wait on each other.
  Vec d01(0.0), d02(0.0), d12(0.0), e01(0.0), e02(0.0), e12(0.0);
  int64_t d = 0;
  for (; d + 2 * W <= D; d += 2 * W) {
    const Vec a = load_double(z0 + d), b = load_double(z1 + d), k = load_double(z2 + d);
    const Vec a2 = load_double(z0 + d + W), b2 = load_double(z1 + d + W), k2 = load_double(z2 + d + W);
    d01 = at::vec::fmadd(a, b, d01);
    d02 = at::vec::fmadd(a, k, d02);
    d12 = at::vec::fmadd(b, k, d12);
    e01 = at::vec::fmadd(a2, b2, e01);
    e02 = at::vec::fmadd(a2, k2, e02);
    e12 = at::vec::fmadd(b2, k2, e12);
  }
  for (; d + W <= D; d += W) {
    const Vec a = load_double(z0 + d), b = load_double(z1 + d), k = load_double(z2 + d);
    d01 = at::vec::fmadd(a, b, d01);
    d02 = at::vec::fmadd(a, k, d02);
    d12 = at::vec::fmadd(b, k, d12);
  }
  if (d < D) {
    const Vec a = load_double(z0 + d, D - d), b = load_double(z1 + d, D - d), k = load_double(z2 + d, D - d);
    d01 = at::vec::fmadd(a, b, d01);
    d02 = at::vec::fmadd(a, k, d02);
    d12 = at::vec::fmadd(b, k, d12);
  }
  out[0] = d01 + e01, out[1] = d02 + e02, out[2] = d12 + e12;
}

// a.(b - a) and |b - a|^2 from the exact differences.
template <typename T>
inline void exact_pair(const T* a, const T* b, int64_t D, double* ae, double* ee) {
  double s_ae = 0, s_ee = 0;
#pragma omp simd reduction(+ : s_ae, s_ee)
  for (int64_t d = 0; d < D; ++d) {
    const double x = a[d], e = static_cast<double>(b[d]) - x;
    s_ae += x * e;
    s_ee += e * e;
  }
  *ae = s_ae, *ee = s_ee;
}

// Asks the cache for the rows of triplets t0 .. t0 + n - 1 (indices in [0, P)) ahead of their use: the
// triplets' rows are random, and waiting for them otherwise bounds both kernels.
template <int kWrite, typename T>
inline void prefetch_rows(const T* base, const int64_t* tri, int64_t t0, int n, int64_t P, int64_t D) {
  if (n <= 0) return;
  const int64_t* idx = tri + 3 * t0;
  const int64_t bytes = D * static_cast<int64_t>(sizeof(T));
  for (int k = 0; k < 3 * n; ++k) {
    if (static_cast<uint64_t>(idx[k]) >= static_cast<uint64_t>(P)) continue;
    const char* row = reinterpret_cast<const char*>(base + idx[k] * D);
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(row + b, kWrite);
  }
}

// The inputs of up to W triplets, one per lane: the pairs' dots (aa, ae, ee) and the sims.
struct LaneInputs {
  hyphc::Vec aa[3], ae[3], ee[3], sims[3];
  bool cancels[W];  // a pair of this lane's triplet took its dots from the exact differences
};

// Reads triplets t0 .. t0 + n - 1 (0 < n <= W; lanes n.. repeat lane 0). False, reading no row,
// if an index is out of [0, P); `finite` is cleared if a sim is NaN or infinite.
template <typename T>
bool load_lanes(const T* pts, const double* norms, const int64_t* tri, const T* sims, int64_t t0, int n, int64_t P,
                int64_t D, LaneInputs* in, bool* finite) {
  const int64_t* idx = tri + 3 * t0;
  bool in_range = true;
  for (int k = 0; k < 3 * n; ++k) in_range &= static_cast<uint64_t>(idx[k]) < static_cast<uint64_t>(P);
  if (!in_range) return false;
  constexpr int first[3] = {0, 0, 1}, second[3] = {1, 2, 2};  // pairs ij, ik, jk
  hyphc::Vec spread[3][W];  // triplet k's dots, over the lanes
  __at_align__ double aa[3][W], bb[3][W], s[3][W];
  bool sims_ok = true;
  for (int k = 0; k < W; ++k) {
    if (k >= n) {
      for (int m = 0; m < 3; ++m) spread[m][k] = spread[m][0], aa[m][k] = aa[m][0], bb[m][k] = bb[m][0], s[m][k] = s[m][0];
      continue;
    }
    const int64_t* tk = idx + 3 * k;
    hyphc::Vec dots[3];
    cross_dots(pts + tk[0] * D, pts + tk[1] * D, pts + tk[2] * D, D, dots);
    for (int m = 0; m < 3; ++m) {
      spread[m][k] = dots[m];
      aa[m][k] = norms[tk[first[m]]];
      bb[m][k] = norms[tk[second[m]]];
      s[m][k] = static_cast<double>(sims[3 * (t0 + k) + m]);
      sims_ok &= std::isfinite(s[m][k]);
    }
  }
  *finite &= sims_ok;
  const hyphc::Vec ratio(kCancelRatio);
  std::fill(in->cancels, in->cancels + W, false);
  for (int m = 0; m < 3; ++m) {
    const hyphc::Vec a = hyphc::Vec::loadu(aa[m]), b = hyphc::Vec::loadu(bb[m]), dot = lane_sums(spread[m]);
    hyphc::Vec ae = dot - a;
    hyphc::Vec ee = (a - dot) + (b - dot);
    const hyphc::Vec cancelled = (ee < ratio * (a + b)) | (a * ee - ae * ae < ratio * a * ee);
    if (any_lane(cancelled)) {
      double lane_ae[W], lane_ee[W], lane_cancelled[W];
      ae.store(lane_ae);
      ee.store(lane_ee);
      cancelled.store(lane_cancelled);
      for (int k = 0; k < W; ++k)
        if (lane_cancelled[k] != 0) {
          in->cancels[k] = true;
          const int64_t* tk = idx + 3 * (k < n ? k : 0);
          exact_pair(pts + tk[first[m]] * D, pts + tk[second[m]] * D, D, &lane_ae[k], &lane_ee[k]);
        }
      ae = hyphc::Vec::loadu(lane_ae);
      ee = hyphc::Vec::loadu(lane_ee);
    }
    in->aa[m] = a;
    in->ae[m] = ae;
    in->ee[m] = ee;
    in->sims[m] = hyphc::Vec::loadu(s[m]);
  }
  return true;
}

// An uninitialised tensor that, when large, lives in transparent huge pages (Linux): the forward's
// coefficients take 72 bytes per triplet, and faulting in 72 MB (T = 10^6) of fresh 4 KiB pages
// took longer than computing them.
at::Tensor empty_large(at::IntArrayRef sizes, const at::TensorOptions& options) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t kHuge = size_t(2) << 20;
  int64_t numel = 1;
  for (int64_t n : sizes) numel *= n;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
  if (bytes >= kHuge) {
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* data = std::aligned_alloc(kHuge, rounded);
    TORCH_CHECK(data != nullptr, "hyphc_triplet_loss: out of memory allocating ", bytes, " bytes");
    madvise(data, rounded, MADV_HUGEPAGE);  // advice only: without huge pages it still works
    return at::from_blob(data, sizes, [](void* p) { std::free(p); }, options);
  }
#endif
  return at::empty(sizes, options);
}

// Float64 squared norms of the points (checked inside the ball).
at::Tensor point_sqnorms(const at::Tensor& points, double c) {
  at::Tensor norms = at::empty({points.size(0)}, points.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hyphc_point_sqnorms", [&] {
    row_sqnorms(points.data_ptr<scalar_t>(), points.size(0), points.size(1), norms.data_ptr<double>());
  });
  check_in_ball(points, norms, c, "points");
  return norms;
}

// Raises the error that the kernel's checks found (an index out of range or a non-finite sim).
[[noreturn]] void raise_bad_values(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims,
                                   double c) {
  check_hyphc_values(points, triplets, sims, c);
  TORCH_CHECK(false, "hyphc_triplet_loss: inconsistent input checks");
}

}  // namespace

namespace {

// Adds triplet idx's point gradients sum_q M[p][q] z_q to acc (in A): the terms of other points to
// the rows, its own coefficients M[p][p] to diag (float64; applied to z_p once, at the end). Out of
// line, so that a profile (benchmarks/profile_hyphc.py) can tell its time from the pass's.
template <typename A, typename T>
C10_NOINLINE void add_point_grads(A* acc, double* diag, const T* pts, const int64_t* idx, int64_t dim, const double M[3][3]) {
  using VA = at::vec::Vectorized<A>;
  for (int p = 0; p < 3; ++p) diag[idx[p]] += M[p][p];
  const T* z0 = pts + idx[0] * dim;
  const T* z1 = pts + idx[1] * dim;
  const T* z2 = pts + idx[2] * dim;
  A* r0 = acc + idx[0] * dim;
  A* r1 = acc + idx[1] * dim;
  A* r2 = acc + idx[2] * dim;
  if (r0 == r1 || r0 == r2 || r1 == r2) {  // a repeated index: the rows alias, add one at a time
    const T* z[3] = {z0, z1, z2};
    for (int p = 0; p < 3; ++p) {
      A* row = acc + idx[p] * dim;
      const T* u = z[(p + 1) % 3];
      const T* v = z[(p + 2) % 3];
      const A mu = static_cast<A>(M[p][(p + 1) % 3]), mv = static_cast<A>(M[p][(p + 2) % 3]);
      for (int64_t d = 0; d < dim; ++d) row[d] += mu * static_cast<A>(u[d]) + mv * static_cast<A>(v[d]);
    }
    return;
  }
  auto load = [](const T* p) {
    if constexpr (std::is_same_v<A, T>) return VA::loadu(p);
    else return load_double(p);
  };
  // Two fused multiply-adds per coordinate and row: the add into the row is the second's.
  const A m01 = static_cast<A>(M[0][1]), m02 = static_cast<A>(M[0][2]), m12 = static_cast<A>(M[1][2]);
  const VA v01(m01), v02(m02), v12(m12);
  int64_t d = 0;
  for (; d + VA::size() <= dim; d += VA::size()) {
    const VA a = load(z0 + d), b = load(z1 + d), e = load(z2 + d);
    at::vec::fmadd(v02, e, at::vec::fmadd(v01, b, VA::loadu(r0 + d))).store(r0 + d);
    at::vec::fmadd(v12, e, at::vec::fmadd(v01, a, VA::loadu(r1 + d))).store(r1 + d);
    at::vec::fmadd(v12, b, at::vec::fmadd(v02, a, VA::loadu(r2 + d))).store(r2 + d);
  }
  for (; d < dim; ++d) {
    const A a = z0[d], b = z1[d], e = z2[d];
    r0[d] = std::fma(m02, e, std::fma(m01, b, r0[d]));
    r1[d] = std::fma(m12, e, std::fma(m01, a, r1[d]));
    r2[d] = std::fma(m12, b, std::fma(m02, a, r2[d]));
  }
}

}  // namespace

namespace {

// Scratch of the calling thread kept between calls (a training loop makes the same call every
// step, and fresh pages for these buffers cost more than a short call's work): slot 0 holds
// gradient rows, slot 1 flushed float64 rows. Buffers above kKeptBytes live in `own` for the call.
constexpr size_t kKeptBytes = size_t(4) << 20;

// n values of E at a 64-byte boundary (rows that start mid cache line make every vector access
// touch two lines).
template <typename E>
E* thread_scratch(int slot, size_t n, std::vector<E>& own) {
  constexpr size_t kPad = 64 / sizeof(E);
  thread_local std::vector<E> kept[2];
  std::vector<E>& v = n * sizeof(E) <= kKeptBytes ? kept[slot] : own;
  if (v.size() < n + kPad) v.resize(n + kPad);
  const auto address = reinterpret_cast<uintptr_t>(v.data());
  return reinterpret_cast<E*>((address + 63) & ~uintptr_t(63));
}

// Per-thread gradient buffers, zeroed by the thread on first use, and their sum with the points'
// own coefficients applied. Each thread adds its triplets' terms into rows in A; when A is float,
// the rows are added into float64 rows and cleared every max(16 P, 4096)
// triplets (moving P D values costs about 1 % of adding 16 P triplets), so no float32 sum runs
// over more triplets than that (the bound in docs/reliability.md). Triplets whose terms cancel
// (nearly equal points or a pair nearly collinear with the origin) are added in float64 directly,
// and the points' own coefficients (diag) are scalars summed in float64.
template <typename A>
class ThreadGradients {
 public:
  static constexpr bool kTwoLevel = !std::is_same_v<A, double>;

  struct Buffers {
    A* rows = nullptr;
    double* diag = nullptr;
    double* total = nullptr;  // kTwoLevel: the flushed rows, made at the first flush
    int64_t pending = 0;      // triplets added to rows since the last flush
  };

  ThreadGradients(int64_t P, int64_t D, const at::TensorOptions& options)
      : P_(P), D_(D), flush_every_(std::max<int64_t>(16 * P, 4096)), threads_(at::get_num_threads()),
        mine_(threads_), used_(threads_, 0), own_rows_(threads_), own_totals_(threads_),
        diag_(at::empty({threads_, P}, options.dtype(at::kDouble))) {}

  // The calling thread's buffers, zeroed the first time it asks.
  Buffers& mine() {
    const int k = at::get_thread_num();
    Buffers& b = mine_[k];
    if (!used_[k]) {
      b.rows = thread_scratch<A>(0, P_ * D_, own_rows_[k]);
      b.diag = diag_.data_ptr<double>() + k * P_;
      std::fill(b.rows, b.rows + P_ * D_, A(0));
      std::fill(b.diag, b.diag + P_, 0.0);
      used_[k] = 1;
    }
    return b;
  }

  // Adds a triplet's point gradients (add_point_grads) into b: into the float64 rows when its
  // terms cancel (a pair took its dots from the exact differences), else into the rows in A.
  template <typename T>
  void add(Buffers& b, const T* pts, const int64_t* idx, const double M[3][3], bool cancels) const {
    if (kTwoLevel && cancels)
      add_point_grads(total(b, false), b.diag, pts, idx, D_, M);
    else
      add_point_grads(b.rows, b.diag, pts, idx, D_, M);
  }

  // Counts n more triplets added into b.rows; every flush_every_, moves the rows into b.total.
  void added(Buffers& b, int64_t n) const {
    if constexpr (kTwoLevel) {
      if ((b.pending += n) < flush_every_) return;
      const bool first = b.total == nullptr;
      double* sum = total(b, true);
      A* rows = b.rows;
      if (!first) {
        for (int64_t i = 0; i < P_ * D_; ++i) {  // one pass: add and clear
          sum[i] += static_cast<double>(rows[i]);
          rows[i] = A(0);
        }
      } else {
        std::fill(rows, rows + P_ * D_, A(0));
      }
      b.pending = 0;
    }
  }

  // out[p] = (sum over the threads of their rows[p] and total[p]) + (sum of diag[p]) z_p, summed
  // in float64 and rounded once to T.
  template <typename T>
  void sum_into(const T* pts, T* out) const {
    std::vector<const Buffers*> used;
    for (int k = 0; k < threads_; ++k)
      if (used_[k]) used.push_back(&mine_[k]);
    at::parallel_for(0, P_, std::max<int64_t>(1, 4096 / std::max<int64_t>(D_, 1)), [&](int64_t begin, int64_t end) {
      std::vector<double> row(D_);
      for (int64_t p = begin; p < end; ++p) {
        double own = 0;
        for (const Buffers* b : used) own += b->diag[p];
        const T* z = pts + p * D_;
        for (int64_t d = 0; d < D_; ++d) row[d] = own * static_cast<double>(z[d]);
        for (const Buffers* b : used) {
          const A* r = b->rows + p * D_;
          for (int64_t d = 0; d < D_; ++d) row[d] += static_cast<double>(r[d]);
          if (b->total != nullptr) {
            const double* s = b->total + p * D_;
            for (int64_t d = 0; d < D_; ++d) row[d] += s[d];
          }
        }
        T* o = out + p * D_;
        for (int64_t d = 0; d < D_; ++d) o[d] = static_cast<T>(row[d]);
      }
    });
  }

 private:
  int64_t P_, D_, flush_every_;
  int threads_;
  std::vector<Buffers> mine_;
  std::vector<char> used_;
  std::vector<std::vector<A>> own_rows_;
  mutable std::vector<std::vector<double>> own_totals_;
  at::Tensor diag_;

  // b's float64 rows, made the first time they are needed (short calls never need them): a copy
  // of b.rows (from_rows: the first flush) or zeros.
  double* total(Buffers& b, bool from_rows) const {
    if (b.total == nullptr) {
      double* t = thread_scratch<double>(1, P_ * D_, own_totals_[&b - mine_.data()]);
      if (from_rows)
        for (int64_t i = 0; i < P_ * D_; ++i) t[i] = static_cast<double>(b.rows[i]);
      else
        std::fill(t, t + P_ * D_, 0.0);
      b.total = t;
    }
    return b.total;
  }
};


}  // namespace

namespace {

struct ForwardOut {
  at::Tensor loss, grad_points, grad_sims;
};

// The pass over all triplets: the losses and, with kGrads, the gradients of sum_t w_t loss_t, points
// (P, D) in their dtype and, when sims_grad, sims (T, 3). Without `weights` (the forward), w = 1,
// the sims' gradient is float64 and the losses are written; with them (the backward: the
// incoming gradient, read with its stride, as a mean's is one value expanded), the sims' gradient
// is in their dtype and no loss is written. Each lane group's gradient coefficients for a weight
// of 1 (hyphc::triplet_loss_and_coefficients) are scaled by the lanes' weights and added into the
// thread's gradient rows while the group's rows are still in L1.
template <bool kGrads>
ForwardOut forward(const at::Tensor& points_in, const at::Tensor& triplets_in, const at::Tensor& sims_in, double c,
                   double tau, const at::Tensor& weights = at::Tensor(), bool sims_grad = false) {
  using hyphc::kCoeffs;
  check_hyphc_inputs(points_in, triplets_in, sims_in, c, tau, at::kCPU);
  const at::Tensor points = points_in.contiguous(), triplets = triplets_in.contiguous(), sims = sims_in.contiguous();
  const at::Tensor norms = point_sqnorms(points, c);
  const int64_t T = triplets.size(0), P = points.size(0), D = points.size(1);
  const at::TensorOptions f64 = points.options().dtype(at::kDouble);
  const bool weighted = weights.defined();
  const at::TensorOptions sims_grad_options = weighted ? sims.options() : f64;
  ForwardOut res;
  if (!weighted) res.loss = empty_large({T}, points.options());
  if constexpr (kGrads) {
    res.grad_points = at::empty({P, D}, points.options());
    res.grad_sims = empty_large({sims_grad ? T : 0, 3}, sims_grad_options);
  }
  std::atomic<bool> bad{false};
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hyphc_triplet_loss_cpu", [&] {
    const scalar_t* pts = points.data_ptr<scalar_t>();
    const double* np = norms.data_ptr<double>();
    const int64_t* tri = triplets.data_ptr<int64_t>();
    const scalar_t* sp = sims.data_ptr<scalar_t>();
    scalar_t* op = weighted ? nullptr : res.loss.data_ptr<scalar_t>();
    const scalar_t* wp = weighted ? weights.data_ptr<scalar_t>() : nullptr;
    const int64_t w_stride = weighted ? weights.stride(0) : 0;
    double* gsp64 = kGrads && sims_grad && !weighted ? res.grad_sims.data_ptr<double>() : nullptr;
    scalar_t* gsp = kGrads && sims_grad && weighted ? res.grad_sims.data_ptr<scalar_t>() : nullptr;
    const hyphc::Vec vc(c), v_inv_sqrt_c(1.0 / std::sqrt(c)), v_inv_tau(1.0 / tau);
    // Float32 rows for float32 points, flushed into float64 (ThreadGradients).
    std::optional<ThreadGradients<scalar_t>> parts;
    if constexpr (kGrads) parts.emplace(P, D, points.options());
    at::parallel_for(0, T, kGrain, [&](int64_t begin, int64_t end) {
      typename ThreadGradients<scalar_t>::Buffers* mine = nullptr;
      if constexpr (kGrads) mine = &parts->mine();
      bool finite = true;
      for (int64_t t = begin; t < end; t += W) {
        const int n = static_cast<int>(std::min<int64_t>(W, end - t));
        const int ahead = static_cast<int>(std::clamp<int64_t>(end - t - kAhead * W, 0, W));
        prefetch_rows<0>(pts, tri, t + kAhead * W, ahead, P, D);
        LaneInputs in;
        if (!load_lanes(pts, np, tri, sp, t, n, P, D, &in, &finite)) {
          finite = false;
          break;
        }
        __at_align__ double loss[W];
        if constexpr (kGrads) {
          hyphc::Vec cf[kCoeffs];
          hyphc::triplet_loss_and_coefficients(in.aa, in.ae, in.ee, in.sims, vc, v_inv_sqrt_c, v_inv_tau, cf)
              .store(loss);
          __at_align__ double lanes[kCoeffs][W];
          for (int j = 0; j < kCoeffs; ++j) cf[j].store(lanes[j]);
          for (int k = 0; k < n; ++k) {
            const double w = wp != nullptr ? static_cast<double>(wp[(t + k) * w_stride]) : 1.0;
            const double M[3][3] = {{w * lanes[0][k], w * lanes[3][k], w * lanes[4][k]},
                                    {w * lanes[3][k], w * lanes[1][k], w * lanes[5][k]},
                                    {w * lanes[4][k], w * lanes[5][k], w * lanes[2][k]}};
            parts->add(*mine, pts, tri + 3 * (t + k), M, in.cancels[k]);
            if (gsp64 != nullptr)
              for (int m = 0; m < 3; ++m) gsp64[3 * (t + k) + m] = lanes[6 + m][k];
            else if (gsp != nullptr)
              for (int m = 0; m < 3; ++m) gsp[3 * (t + k) + m] = static_cast<scalar_t>(w * lanes[6 + m][k]);
          }
          parts->added(*mine, n);
        } else {
          hyphc::triplet_loss_value(in.aa, in.ae, in.ee, in.sims, vc, v_inv_sqrt_c, v_inv_tau).store(loss);
        }
        for (int k = 0; k < n && op != nullptr; ++k) op[t + k] = static_cast<scalar_t>(loss[k]);
      }
      if (!finite) bad.store(true, std::memory_order_relaxed);
    });
    if constexpr (kGrads)
      if (!bad.load()) parts->sum_into(pts, res.grad_points.data_ptr<scalar_t>());
  });
  if (bad.load()) raise_bad_values(points, triplets, sims, c);
  return res;
}

}  // namespace

at::Tensor hyphc_triplet_loss_cpu(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims,
                                  double c, double tau) {
  return forward<false>(points, triplets, sims, c, tau).loss;
}

TensorTriple hyphc_triplet_loss_and_sum_grads_cpu(const at::Tensor& points, const at::Tensor& triplets,
                                                  const at::Tensor& sims, double c, double tau, bool sims_grad) {
  ForwardOut res = forward<true>(points, triplets, sims, c, tau, at::Tensor(), sims_grad);
  return {res.loss, res.grad_points, res.grad_sims};
}

// The backward computes the forward again, with the incoming gradient as the triplets' weights.
TensorPair hyphc_triplet_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& points,
                                           const at::Tensor& triplets, const at::Tensor& sims, double c, double tau) {
  check_hyphc_inputs(points, triplets, sims, c, tau, at::kCPU);  // before the grad's checks, as the fake kernel
  check_hyphc_grad(grad, points, triplets);
  ForwardOut res = forward<true>(points, triplets, sims, c, tau, grad, true);
  return {res.grad_points, res.grad_sims};
}

}  // namespace CPU_CAPABILITY
}  // namespace hyperdml
