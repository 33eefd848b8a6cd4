// Input checks shared by the hyperdml kernels. Every kernel calls them before touching memory,
// so that bad input is a Python exception (ValueError / TypeError), never a crash.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

namespace hyperdml {

inline void check_curvature(double c) {
  TORCH_CHECK_VALUE(std::isfinite(c) && c > 0, "curvature c must be a finite number > 0, got ", c);
}

inline void check_points(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 2, name, " must have shape (rows, D), got shape ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                   " must be float32 or float64, got ", t.scalar_type());
}

inline void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK_VALUE(a.device() == b.device(), a_name, " is on ", a.device(), " but ", b_name, " is on ",
                    b.device());
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), a_name, " is ", a.scalar_type(), " but ", b_name,
                   " is ", b.scalar_type(), "; pass one dtype");
}

inline void check_device(const at::Tensor& t, const char* name, c10::DeviceType type) {
  TORCH_CHECK_VALUE(t.device().type() == type, name, " must be on ", type, ", got ", t.device());
}

// Rows of `t` are finite and strictly inside the ball of curvature -c. `sqnorm` holds the
// squared row norms (the kernels need them anyway). One host sync on success.
inline void check_in_ball(const at::Tensor& t, const at::Tensor& sqnorm, double c, const char* name) {
  if (t.numel() == 0) return;
  if ((sqnorm * c < 1).all().item<bool>()) return;
  TORCH_CHECK_VALUE(at::isfinite(t).all().item<bool>(), name, " contains NaN or Inf");
  TORCH_CHECK_VALUE(false, name, " has a point on or outside the boundary of the Poincare ball of curvature -",
                    c, ": max norm ", sqnorm.max().sqrt().item<double>(), " >= 1/sqrt(c) = ",
                    1.0 / std::sqrt(c), " (project or clip it first, e.g. hyperdml.geometry.project)");
}

inline void check_finite(const at::Tensor& t, const char* name) {
  if (t.numel() == 0) return;
  TORCH_CHECK_VALUE(at::isfinite(t).all().item<bool>(), name, " contains NaN or Inf");
}

}  // namespace hyperdml
