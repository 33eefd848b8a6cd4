// The Python module hyperdml._C. Importing it registers the hyperdml:: ops (schemas here, in
// cpu_dispatch.cpp and in each op's folder, kernels in cpu/ and cuda/). No pybind: the module is
// empty on purpose.
#include <Python.h>
#include <torch/library.h>

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

TORCH_LIBRARY(hyperdml, m) {
  m.def("_compiled_with_cuda() -> bool", &compiled_with_cuda);
}

}  // namespace hyperdml
