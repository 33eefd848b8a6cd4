// The Python module hyperdml._C. Importing it registers the hyperdml:: ops (schemas here and in
// each op's folder, kernels in cpu/ and cuda/). No pybind: the module is empty on purpose.
#include <Python.h>
#include <torch/library.h>

#include <string>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

namespace hyperdml {

static bool compiled_with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

// The instruction set the CPU kernels' vectorised maths was compiled for (setup.py).
static std::string cpu_capability() {
#define HYPERDML_STR2(x) #x
#define HYPERDML_STR(x) HYPERDML_STR2(x)
#ifdef CPU_CAPABILITY
  return HYPERDML_STR(CPU_CAPABILITY);
#else
  return "DEFAULT";
#endif
}

TORCH_LIBRARY(hyperdml, m) {
  m.def("_compiled_with_cuda() -> bool", &compiled_with_cuda);
  m.def("_cpu_capability() -> str", &cpu_capability);
}

}  // namespace hyperdml
