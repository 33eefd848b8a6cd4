// Helpers over ATen's vectorised types shared by the CPU kernels.
#pragma once

// The kernels are compiled once per instruction set (cpu_dispatch.h); without the name, ATen's
// vector types and the kernels' namespace would not say which copy this is.
#ifndef CPU_CAPABILITY
#error "CPU kernels are compiled once per instruction set by setup.py, with -DCPU_CAPABILITY=<name>"
#endif

#include <ATen/cpu/vec/vec.h>

namespace hyperdml {

// Whether any lane of a comparison result holds (its lanes are all-ones or all-zeros bits).
template <typename T>
inline bool any_lane(const at::vec::Vectorized<T>& mask) {
  return mask.zero_mask() != (1 << at::vec::Vectorized<T>::size()) - 1;
}

}  // namespace hyperdml
