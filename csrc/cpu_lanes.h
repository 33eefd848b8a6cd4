// Helpers over ATen's vectorised types shared by the CPU kernels.
#pragma once

#include <ATen/cpu/vec/vec.h>

namespace hyperdml {

// Whether any lane of a comparison result holds (its lanes are all-ones or all-zeros bits).
template <typename T>
inline bool any_lane(const at::vec::Vectorized<T>& mask) {
  return mask.zero_mask() != (1 << at::vec::Vectorized<T>::size()) - 1;
}

}  // namespace hyperdml
