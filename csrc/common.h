// Input checks shared by the hyperdml kernels. Every kernel calls them before touching memory,
// so that bad input is a Python exception (ValueError / TypeError), never a crash.
//
// Defined once in common.cpp (compiled by the host compiler): the CUDA files call the same
// functions instead of keeping nvcc-compiled inline copies of ATen code.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace hyperdml {

// Message pieces built with snprintf, not iostreams: error messages must not depend on the
// locale machinery of whichever libstdc++ the process loaded first (seen to crash when two meet).
std::string num(double v);
std::string num(int64_t v);
std::string shape_of(const at::Tensor& t);
std::string device_str(const at::Tensor& t);
std::string dtype_of(const at::Tensor& t);

// Accepted ranges of the curvature magnitude and the HypHC temperature; the same constants and
// messages as hyperdml/ops/_checks.py (MIN_CURVATURE, MAX_CURVATURE, MIN_TEMPERATURE).
constexpr double kMinCurvature = 1e-6;
constexpr double kMaxCurvature = 700.0;
constexpr double kMinTemperature = 1e-30;

void check_curvature(double c);
void check_temperature(double tau);
void check_points(const at::Tensor& t, const char* name);
void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name);
void check_device(const at::Tensor& t, const char* name, c10::DeviceType type);
// Rows of `t` are finite and strictly inside the ball of curvature -c. `sqnorm` holds the
// squared row norms (the kernels need them anyway). One host sync on success.
void check_in_ball(const at::Tensor& t, const at::Tensor& sqnorm, double c, const char* name);
void check_finite(const at::Tensor& t, const char* name);

// poincare_cdist: x (B, D) and y (N, D) on `device`, one floating dtype, c in range; for the
// backward also grad and dist of shape (B, N), then x and y in the ball and dist finite and >= 0
// (host syncs).
void check_cdist_inputs(const at::Tensor& x, const at::Tensor& y, double c, c10::DeviceType device);
void check_cdist_backward_inputs(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y,
                                 const at::Tensor& dist, double c, c10::DeviceType device);
// The shape, dtype and device part of check_cdist_backward_inputs alone, for a kernel that checks
// the values in its own passes over the data (the CPU backward), with these messages:
void check_cdist_backward_args(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y,
                               const at::Tensor& dist, double c, c10::DeviceType device);
extern const char* const kCdistBadDistMessage;

// hyphc_triplet_loss: shapes, dtypes and devices; then indices in range, points in the ball and
// finite sims (host syncs).
void check_hyphc_inputs(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims, double c,
                        double tau, c10::DeviceType device);
void check_hyphc_grad(const at::Tensor& grad, const at::Tensor& points, const at::Tensor& triplets);
void check_hyphc_values(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims, double c);

}  // namespace hyperdml
