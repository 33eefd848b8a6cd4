// Definitions of the input checks declared in common.h.
#include "common.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace hyperdml {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.8g", v);
  return buf;
}

std::string num(int64_t v) { return std::to_string(v); }

std::string shape_of(const at::Tensor& t) {
  std::string out = "(";
  for (int64_t d = 0; d < t.dim(); ++d) out += (d ? ", " : "") + std::to_string(t.size(d));
  return out + (t.dim() == 1 ? ",)" : ")");
}

std::string device_str(const at::Tensor& t) { return t.device().str(); }

// torch's names ("torch.float32"), as Python prints them, rather than c10's ("Float").
std::string dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kByte: return "torch.uint8";
    case at::kChar: return "torch.int8";
    case at::kShort: return "torch.int16";
    case at::kInt: return "torch.int32";
    case at::kLong: return "torch.int64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kComplexFloat: return "torch.complex64";
    case at::kComplexDouble: return "torch.complex128";
    case at::kBool: return "torch.bool";
    default: return c10::toString(t.scalar_type());
  }
}

void check_curvature(double c) {
  TORCH_CHECK_VALUE(c >= kMinCurvature && c <= kMaxCurvature, "curvature c must be a finite number > 0, within [",
                    num(kMinCurvature), ", ", num(kMaxCurvature),
                    "] (outside it geoopt's stored curvature loses its precision or overflows), got ", num(c));
}

void check_temperature(double tau) {
  TORCH_CHECK_VALUE(tau >= kMinTemperature && std::isfinite(tau), "temperature tau must be a finite number >= ",
                    num(kMinTemperature), ", got ", num(tau));
}

void check_points(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 2, name, " must have shape (rows, D), got shape ", shape_of(t));
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                   " must be float32 or float64, got ", dtype_of(t));
}

void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK_VALUE(a.device() == b.device(), a_name, " is on ", device_str(a), " but ", b_name, " is on ",
                    device_str(b));
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), a_name, " is ", dtype_of(a), " but ", b_name,
                   " is ", dtype_of(b), "; pass one dtype");
}

void check_device(const at::Tensor& t, const char* name, c10::DeviceType type) {
  TORCH_CHECK_VALUE(t.device().type() == type, name, " must be on ", c10::DeviceTypeName(type, true), ", got ", device_str(t));
}

void check_in_ball(const at::Tensor& t, const at::Tensor& sqnorm, double c, const char* name) {
  if (t.numel() == 0) return;
  if ((sqnorm * c < 1).all().item<bool>()) return;
  TORCH_CHECK_VALUE(at::isfinite(t).all().item<bool>(), name, " contains NaN or Inf");
  TORCH_CHECK_VALUE(false, name, " has a point on or outside the boundary of the Poincare ball of curvature -",
                    num(c), ": max norm ", num(sqnorm.max().sqrt().item<double>()), " >= 1/sqrt(c) = ",
                    num(1.0 / std::sqrt(c)), " (project or clip it first, e.g. hyperdml.geometry.project)");
}

void check_finite(const at::Tensor& t, const char* name) {
  if (t.numel() == 0) return;
  // min and max propagate NaN and show an infinity: a tenth of isfinite(t).all()'s time on the CPU.
  const auto [lo, hi] = at::aminmax(t);
  TORCH_CHECK_VALUE(at::isfinite(at::stack({lo, hi})).all().item<bool>(), name, " contains NaN or Inf");
}

void check_hyphc_inputs(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims,
                               double c, double tau, c10::DeviceType device) {
  check_curvature(c);
  check_temperature(tau);
  check_points(points, "points");
  check_device(points, "points", device);
  TORCH_CHECK_TYPE(triplets.scalar_type() == at::kLong, "triplets must be int64, got ", dtype_of(triplets));
  TORCH_CHECK_VALUE(triplets.dim() == 2 && triplets.size(1) == 3, "triplets must have shape (T, 3), got ",
                    shape_of(triplets));
  TORCH_CHECK_VALUE(sims.sizes() == triplets.sizes(), "sims must have the shape of triplets ", shape_of(triplets),
                    ", got ", shape_of(sims));
  check_same(points, "points", sims, "sims");
  TORCH_CHECK_VALUE(triplets.device() == points.device(), "points is on ", device_str(points), " but triplets is on ",
                    device_str(triplets));
}

void check_cdist_inputs(const at::Tensor& x, const at::Tensor& y, double c, c10::DeviceType device) {
  check_curvature(c);
  check_points(x, "x");
  check_points(y, "y");
  check_same(x, "x", y, "y");
  check_device(x, "x", device);
  TORCH_CHECK_VALUE(x.size(1) == y.size(1), "x has D=", num(x.size(1)), " but y has D=", num(y.size(1)));
}

namespace {

// Every row of the contiguous (rows, D) block p has c * |row|^2 < 1 (false on NaN).
template <typename T>
bool rows_inside(const T* p, int64_t rows, int64_t D, double c) {
  const T cc = static_cast<T>(c);
  return at::parallel_reduce(
      0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(D, 1)), true,
      [&](int64_t begin, int64_t end, bool ok) {
        for (int64_t i = begin; i < end && ok; ++i) {
          T sq = 0;
          for (int64_t d = 0; d < D; ++d) sq += p[i * D + d] * p[i * D + d];
          ok = sq * cc < T(1);
        }
        return ok;
      },
      [](bool a, bool b) { return a && b; });
}

// Every entry is finite and >= 0 (false on NaN).
template <typename T>
bool all_finite_nonnegative(const T* p, int64_t n) {
  return at::parallel_reduce(
      0, n, 32768, true,
      [&](int64_t begin, int64_t end, bool ok) {
        for (int64_t i = begin; i < end && ok; ++i) ok = p[i] >= T(0) && std::isfinite(p[i]);
        return ok;
      },
      [](bool a, bool b) { return a && b; });
}

// x and y in the ball and dist finite and >= 0. On the CPU one pass over the data without any
// temporary or dispatched op (the small calls of a training step would otherwise pay more for the
// check than for the backward); elsewhere tensor ops and one host sync.
bool cdist_backward_values_ok(const at::Tensor& x, const at::Tensor& y, const at::Tensor& dist, double c) {
  if (x.device().is_cpu()) {
    const at::Tensor xc = x.contiguous(), yc = y.contiguous(), dc = dist.contiguous();
    bool ok = true;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cdist_backward_values_ok", [&] {
      ok = rows_inside(xc.data_ptr<scalar_t>(), xc.size(0), xc.size(1), c) &&
           rows_inside(yc.data_ptr<scalar_t>(), yc.size(0), yc.size(1), c) &&
           all_finite_nonnegative(dc.data_ptr<scalar_t>(), dc.numel());
    });
    return ok;
  }
  std::vector<at::Tensor> ok = {((x * x).sum(1) * c < 1).all(), ((y * y).sum(1) * c < 1).all()};
  if (dist.numel() > 0) {
    const auto [lo, hi] = at::aminmax(dist);  // NaN fails both tests
    ok.push_back(lo >= 0);
    ok.push_back(at::isfinite(hi));
  }
  return at::stack(ok).all().item<bool>();
}

}  // namespace

const char* const kCdistBadDistMessage =
    "dist contains NaN, Inf or a negative value (pass the output of poincare_cdist)";

void check_cdist_backward_args(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y,
                               const at::Tensor& dist, double c, c10::DeviceType device) {
  check_cdist_inputs(x, y, c, device);
  const int64_t B = x.size(0), N = y.size(0);
  TORCH_CHECK_VALUE(grad.dim() == 2 && grad.size(0) == B && grad.size(1) == N && dist.sizes() == grad.sizes(),
                    "grad and dist must have shape (", num(B), ", ", num(N), "), got ", shape_of(grad), " and ",
                    shape_of(dist));
  check_same(x, "x", grad, "grad");
  check_same(x, "x", dist, "dist");
}

void check_cdist_backward_inputs(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y,
                                 const at::Tensor& dist, double c, c10::DeviceType device) {
  check_cdist_backward_args(grad, x, y, dist, c, device);
  if (cdist_backward_values_ok(x, y, dist, c)) return;
  const at::Tensor xx = (x * x).sum(1), yy = (y * y).sum(1);
  check_in_ball(x, xx, c, "x");
  check_in_ball(y, yy, c, "y");
  TORCH_CHECK_VALUE(false, kCdistBadDistMessage);
}

void check_hyphc_grad(const at::Tensor& grad, const at::Tensor& points, const at::Tensor& triplets) {
  TORCH_CHECK_VALUE(grad.dim() == 1 && grad.size(0) == triplets.size(0), "grad must have shape (",
                    num(triplets.size(0)), ",), got ", shape_of(grad));
  check_same(points, "points", grad, "grad");
}

void check_hyphc_values(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims,
                               double c) {
  // Float64 norms, as the CPU kernel takes them. All tests in one host sync when they pass (on
  // CUDA each sync costs more than a check's pass over the data); the checks below name the
  // problem otherwise.
  const at::Tensor wide = points.to(at::kDouble);
  const at::Tensor sqnorms = (wide * wide).sum(1);
  std::vector<at::Tensor> ok = {(sqnorms * c < 1).all()};
  if (sims.numel() > 0) {
    const auto [lo, hi] = at::aminmax(sims);  // NaN makes both NaN
    ok.push_back(at::isfinite(lo) & at::isfinite(hi));
  }
  if (triplets.numel() > 0) {
    const auto [lo, hi] = at::aminmax(triplets);
    ok.push_back((lo >= 0) & (hi < points.size(0)));
  }
  if (at::stack(ok).all().item<bool>()) return;
  check_in_ball(points, sqnorms, c, "points");
  check_finite(sims, "sims");
  if (triplets.numel() == 0) return;
  const auto [lo_t, hi_t] = at::aminmax(triplets);
  const int64_t lo = lo_t.item<int64_t>(), hi = hi_t.item<int64_t>();
  TORCH_CHECK_VALUE(lo >= 0 && hi < points.size(0), "triplets has an index out of range [0, ", num(points.size(0)),
                    "): min ", num(lo), ", max ", num(hi));
}

}  // namespace hyperdml
