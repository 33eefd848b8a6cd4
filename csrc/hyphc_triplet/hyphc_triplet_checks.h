// Input checks of hyphc_triplet_loss, shared by the CPU and CUDA dispatchers.
#pragma once

#include "common.h"

namespace hyperdml {

inline void check_hyphc_inputs(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims,
                               double c, double tau, c10::DeviceType device) {
  check_curvature(c);
  TORCH_CHECK_VALUE(std::isfinite(tau) && tau > 0, "temperature tau must be a finite number > 0, got ", tau);
  check_points(points, "points");
  check_device(points, "points", device);
  TORCH_CHECK_TYPE(triplets.scalar_type() == at::kLong, "triplets must be int64, got ", triplets.scalar_type());
  TORCH_CHECK_VALUE(triplets.dim() == 2 && triplets.size(1) == 3, "triplets must have shape (T, 3), got ",
                    triplets.sizes());
  TORCH_CHECK_VALUE(sims.sizes() == triplets.sizes(), "sims must have the shape of triplets ", triplets.sizes(),
                    ", got ", sims.sizes());
  check_same(points, "points", sims, "sims");
  TORCH_CHECK_VALUE(triplets.device() == points.device(), "points is on ", points.device(), " but triplets is on ",
                    triplets.device());
}

// Data-dependent checks: indices in range, points in the ball, finite sims (host syncs).
inline void check_hyphc_values(const at::Tensor& points, const at::Tensor& triplets, const at::Tensor& sims,
                               double c) {
  check_in_ball(points, (points * points).sum(1), c, "points");
  check_finite(sims, "sims");
  if (triplets.numel() == 0) return;
  const int64_t lo = triplets.min().item<int64_t>(), hi = triplets.max().item<int64_t>();
  TORCH_CHECK_VALUE(lo >= 0 && hi < points.size(0), "triplets has an index out of range [0, ", points.size(0),
                    "): min ", lo, ", max ", hi);
}

}  // namespace hyperdml
