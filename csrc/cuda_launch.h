// Launch geometry shared by the CUDA kernels (grid-stride loops over n items).
#pragma once

#include <algorithm>
#include <cstdint>

namespace hyperdml {

// Blocks of `threads` threads for n items, capped (the kernels loop with a grid stride).
inline int blocks_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 16) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, max_blocks)));
}

}  // namespace hyperdml
