// Run-time choice among copies of the CPU kernels, as ATen's DispatchStub does.
//
// setup.py compiles every source under csrc/cpu/ and csrc/<op>/cpu/ once per instruction set
// (x86-64: DEFAULT, AVX2 and AVX512) with -DCPU_CAPABILITY=<name> and that set's -m flags. Each
// copy puts its functions in namespace hyperdml::CPU_CAPABILITY (ATen's vector types live in
// at::vec::CPU_CAPABILITY the same way), so the copies have distinct symbols. The op
// registrations call HYPERDML_CPU_KERNEL(name)(...), which picks the copy for cpu_capability().
#pragma once

#include <string>
#include <vector>

namespace hyperdml {

enum class CpuCapability { DEFAULT = 0, AVX2 = 1, AVX512 = 2 };

// The instruction set the CPU kernels run with, chosen on first use and then fixed:
// HYPERDML_CPU_CAPABILITY when set (ValueError if it names no set, one this build lacks or one
// this CPU lacks); otherwise ATen's (which follows ATEN_CPU_CAPABILITY), lowered to the best set
// that this CPU supports and this build has.
CpuCapability cpu_capability();

const char* capability_name(CpuCapability capability);

// The sets this build compiled the kernels for, lowest first.
std::vector<std::string> compiled_cpu_capabilities();

// The copy of a kernel for cpu_capability(). Copies a build does not compile are nullptr and are
// never chosen.
template <typename Fn>
Fn select_cpu_kernel(Fn default_fn, Fn avx2_fn, Fn avx512_fn) {
  switch (cpu_capability()) {
    case CpuCapability::AVX512:
      return avx512_fn;
    case CpuCapability::AVX2:
      return avx2_fn;
    default:
      return default_fn;
  }
}

}  // namespace hyperdml

// Declares kernel `name` in each capability's namespace (inside namespace hyperdml).
#define HYPERDML_DECLARE_CPU_KERNEL(ret, name, params) \
  namespace DEFAULT {                                  \
  ret name params;                                     \
  }                                                    \
  namespace AVX2 {                                     \
  ret name params;                                     \
  }                                                    \
  namespace AVX512 {                                   \
  ret name params;                                     \
  }

// setup.py defines HYPERDML_CPU_AVX2 / HYPERDML_CPU_AVX512 in every file when it compiles that copy.
#ifdef HYPERDML_CPU_AVX2
#define HYPERDML_CPU_KERNEL_AVX2(name) &::hyperdml::AVX2::name
#else
#define HYPERDML_CPU_KERNEL_AVX2(name) nullptr
#endif
#ifdef HYPERDML_CPU_AVX512
#define HYPERDML_CPU_KERNEL_AVX512(name) &::hyperdml::AVX512::name
#else
#define HYPERDML_CPU_KERNEL_AVX512(name) nullptr
#endif

// The copy of kernel `name` (declared with HYPERDML_DECLARE_CPU_KERNEL) to call now.
#define HYPERDML_CPU_KERNEL(name)                                                 \
  ::hyperdml::select_cpu_kernel<decltype(&::hyperdml::DEFAULT::name)>(           \
      &::hyperdml::DEFAULT::name, HYPERDML_CPU_KERNEL_AVX2(name), HYPERDML_CPU_KERNEL_AVX512(name))

namespace hyperdml {
// Defined in csrc/cpu/instruction_set.cpp: the set the compiler targeted in that copy, read from
// its own predefined macros (__AVX512F__, __AVX2__, ...), not from the CPU_CAPABILITY name.
HYPERDML_DECLARE_CPU_KERNEL(const char*, compiled_instruction_set, ())
}  // namespace hyperdml
