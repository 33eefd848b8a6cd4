// The run-time choice of the CPU kernels' instruction set (cpu_dispatch.h) and the ops that
// report it.
#include "cpu_dispatch.h"

#include <ATen/Version.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cctype>
#include <cstdlib>
#include <optional>

namespace hyperdml {
namespace {

constexpr CpuCapability kAll[] = {CpuCapability::DEFAULT, CpuCapability::AVX2, CpuCapability::AVX512};

bool compiled(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::AVX2:
#ifdef HYPERDML_CPU_AVX2
      return true;
#else
      return false;
#endif
    case CpuCapability::AVX512:
#ifdef HYPERDML_CPU_AVX512
      return true;
#else
      return false;
#endif
    default:
      return true;
  }
}

// Whether this CPU (and the OS, which must save the wider registers) runs the instructions that
// the copy's -m flags allow (setup.py: AVX2 = avx2 fma f16c; AVX512 = avx512f/bw/vl/dq fma f16c).
bool cpu_supports(CpuCapability capability) {
  if (capability == CpuCapability::DEFAULT) return true;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (capability == CpuCapability::AVX2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

std::optional<CpuCapability> parse(std::string name) {
  for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  for (CpuCapability capability : kAll)
    if (name == capability_name(capability)) return capability;
  return std::nullopt;
}

std::string joined(bool (*keep)(CpuCapability)) {
  std::string out;
  for (CpuCapability capability : kAll)
    if (keep(capability)) out += std::string(out.empty() ? "" : ", ") + capability_name(capability);
  return out;
}

CpuCapability choose() {
  const char* env = std::getenv("HYPERDML_CPU_CAPABILITY");
  if (env != nullptr && *env != '\0') {
    const std::string value(env);
    const std::optional<CpuCapability> wanted = parse(value);
    TORCH_CHECK_VALUE(wanted.has_value(),
                      "HYPERDML_CPU_CAPABILITY must be DEFAULT, AVX2 or AVX512 (or unset), got '" + value + "'");
    TORCH_CHECK_VALUE(compiled(*wanted), "HYPERDML_CPU_CAPABILITY=" + value +
                                             ": this build of hyperdml has CPU kernels for " + joined(compiled) +
                                             " only");
    TORCH_CHECK_VALUE(cpu_supports(*wanted), "HYPERDML_CPU_CAPABILITY=" + value + ": this CPU does not support " +
                                                 capability_name(*wanted) + " (it supports " +
                                                 joined(cpu_supports) + ")");
    return *wanted;
  }
  // ATen's own choice ("NO AVX" for its default on x86; other architectures' names map to
  // DEFAULT), lowered until both the CPU and this build have it.
  CpuCapability best = parse(at::get_cpu_capability()).value_or(CpuCapability::DEFAULT);
  while (best != CpuCapability::DEFAULT && !(compiled(best) && cpu_supports(best)))
    best = static_cast<CpuCapability>(static_cast<int>(best) - 1);
  return best;
}

}  // namespace

const char* capability_name(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::AVX512:
      return "AVX512";
    case CpuCapability::AVX2:
      return "AVX2";
    default:
      return "DEFAULT";
  }
}

CpuCapability cpu_capability() {
  static const CpuCapability chosen = choose();  // a throw leaves it unset: the next call says it again
  return chosen;
}

std::vector<std::string> compiled_cpu_capabilities() {
  std::vector<std::string> out;
  for (CpuCapability capability : kAll)
    if (compiled(capability)) out.emplace_back(capability_name(capability));
  return out;
}

namespace {

// The set of the copy the dispatch reaches, as that copy's compiler saw it.
std::string cpu_capability_in_use() { return HYPERDML_CPU_KERNEL(compiled_instruction_set)(); }

}  // namespace

TORCH_LIBRARY_FRAGMENT(hyperdml, m) {
  m.def("_cpu_capability() -> str", &cpu_capability_in_use);
  m.def("_cpu_capabilities() -> str[]", &compiled_cpu_capabilities);
}

}  // namespace hyperdml
