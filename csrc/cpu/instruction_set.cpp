// Compiled once per instruction set, like the kernels: says which set the compiler targeted in
// this copy, so that extension_info() reports the copy the dispatch really reached.
#include "cpu_dispatch.h"

#ifndef CPU_CAPABILITY
#error "compiled once per instruction set by setup.py, with -DCPU_CAPABILITY=<name>"
#endif

namespace hyperdml {
namespace CPU_CAPABILITY {

const char* compiled_instruction_set() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__FMA__)
  return "AVX512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2";
#else
  return "DEFAULT";
#endif
}

}  // namespace CPU_CAPABILITY
}  // namespace hyperdml
