"""Build of hyperdml and its C++/CUDA extension ``hyperdml._C``.

The C++ (CPU) kernels are always built. The CUDA kernels are added when a CUDA toolkit is usable
(``CUDA_HOME`` or nvcc found) and either a GPU is visible or ``HYPERDML_WITH_CUDA=1`` is set;
``HYPERDML_WITH_CUDA=0`` turns them off. Without a visible GPU, ``TORCH_CUDA_ARCH_LIST`` defaults
to Volta..Hopper so a machine without one can still build (and CI can check that the CUDA
sources compile). The CPU kernels are compiled for DEFAULT (any x86-64), AVX2 and AVX512, and the
extension picks one at run time from the CPU (``HYPERDML_CPU_CAPABILITY`` overrides it).

Build with ``pip install -e . --no-build-isolation`` (build isolation would install a second torch);
``python setup.py build_ext --inplace`` rebuilds incrementally with ninja; ``python -m build
--no-isolation`` makes the sdist and a wheel built from it.
"""

from __future__ import annotations

import glob
import os
import platform

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    flag = os.environ.get("HYPERDML_WITH_CUDA", "").strip()
    if flag == "0":
        return False
    import torch
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None or torch.version.cuda is None:
        if flag == "1":
            raise RuntimeError("HYPERDML_WITH_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME)")
        return False
    return flag == "1" or torch.cuda.is_available()


# The CPU kernels (each .cpp under csrc/cpu/ and csrc/<op>/cpu/) are compiled once per
# instruction set, with ATen's flags for that set, into the one extension; it picks a copy at run
# time (csrc/cpu_dispatch.h), so one build runs on any x86-64 CPU.
CPU_CAPABILITY_FLAGS = {
    "DEFAULT": [],
    "AVX2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2"],
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX512"],
}


def _cpu_capabilities() -> list[str]:
    """The instruction sets to compile the CPU kernels for: all on x86-64, DEFAULT elsewhere.
    ``HYPERDML_CPU_CAPABILITIES=DEFAULT`` (or ``DEFAULT,AVX2``, ...) compiles fewer, for a quicker
    build; DEFAULT is always compiled."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ["DEFAULT"]
    wanted = os.environ.get("HYPERDML_CPU_CAPABILITIES", "").replace(",", " ").upper().split()
    unknown = sorted(set(wanted) - set(CPU_CAPABILITY_FLAGS))
    if unknown:
        raise RuntimeError(f"HYPERDML_CPU_CAPABILITIES: unknown {unknown}; known: {list(CPU_CAPABILITY_FLAGS)}")
    return [name for name in CPU_CAPABILITY_FLAGS if name == "DEFAULT" or not wanted or name in wanted]


def _is_cpu_kernel(source: str) -> bool:
    return source.endswith(".cpp") and os.path.basename(os.path.dirname(source)) == "cpu"


def _sanitize_flags() -> list[str]:
    """``HYPERDML_SANITIZE=1``: AddressSanitizer + UndefinedBehaviorSanitizer for the C++ (CPU)
    code, compile and link flags (built at -O1 for usable reports). The result must be loaded with
    libasan preloaded, see tools/sanitize_test.sh; CUDA code is not instrumented (use
    compute-sanitizer for it)."""
    if os.environ.get("HYPERDML_SANITIZE", "").strip() != "1":
        return []
    return ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]


def _extensions():
    with_cuda = _want_cuda()
    if with_cuda and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = "7.0;8.0;9.0+PTX"
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    def rel(pattern: str) -> list[str]:
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "csrc", pattern)))

    sources = rel("*.cpp") + rel("*/*.cpp") + rel("*/cpu/*.cpp")
    openmp = ["-fopenmp"]
    sanitize = _sanitize_flags()
    optimize = ["-O1"] if sanitize else ["-O3"]
    compiled = [f"-DHYPERDML_CPU_{name}" for name in _cpu_capabilities() if name != "DEFAULT"]
    compile_args = {"cxx": [*optimize, *openmp, *compiled, *sanitize]}
    options = dict(include_dirs=[os.path.join(ROOT, "csrc")], extra_link_args=[*openmp, *sanitize])
    if not with_cuda:
        return [CppExtension("hyperdml._C", sources, extra_compile_args=compile_args, **options)]
    sources += rel("*/cuda/*.cu")
    compile_args["nvcc"] = ["-O3"]
    return [
        CUDAExtension(
            "hyperdml._C", sources, define_macros=[("WITH_CUDA", None)], extra_compile_args=compile_args, **options
        )
    ]


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    class BuildPerCapability(BuildExtension):
        """torch's BuildExtension (ninja), which compiles the CPU kernel sources once per
        instruction set, each set in its own folder of build_temp with its own ninja file
        (incremental), and links those objects after the others."""

        def build_extension(self, ext):
            ninja_compile = self.compiler.compile

            def compile_per_capability(sources, output_dir=None, extra_postargs=None, **kwargs):
                kernels = [s for s in sources if _is_cpu_kernel(s)]
                others = [s for s in sources if not _is_cpu_kernel(s)]
                # Link order matters: of an inline function that several objects define (ATen's,
                # the standard library's), the linker keeps the first copy. The objects compiled
                # without -m flags come first, so every caller gets a copy any x86-64 CPU runs.
                objects = ninja_compile(others, output_dir=output_dir, extra_postargs=extra_postargs, **kwargs)
                for name in _cpu_capabilities():
                    flags = dict(extra_postargs)
                    flags["cxx"] = [*flags["cxx"], f"-DCPU_CAPABILITY={name}", *CPU_CAPABILITY_FLAGS[name]]
                    folder = os.path.join(output_dir, f"cpu_{name.lower()}")
                    objects += ninja_compile(kernels, output_dir=folder, extra_postargs=flags, **kwargs)
                return objects

            self.compiler.compile = compile_per_capability
            try:
                super().build_extension(ext)
            finally:
                self.compiler.compile = ninja_compile

    return {"build_ext": BuildPerCapability.with_options(use_ninja=True)}


def _install_requires(with_extension: bool) -> list[str]:
    # The compiled extension works only with the torch release (major.minor) it was built against;
    # without it, the pure-PyTorch package needs torch >= 2.5. faiss is an extra (setup.cfg).
    torch = "torch>=2.5"
    if with_extension:
        import torch as built_with

        torch = "torch==" + ".".join(built_with.__version__.split("+")[0].split(".")[:2]) + ".*"
    return [torch, "torchvision", "geoopt>=0.5", "numpy", "scipy", "scikit-learn", "matplotlib", "pillow", "tqdm",
            "filelock"]


# `make` installs the package with HYPERDML_SKIP_EXTENSION=1 and then builds the extension in
# place with `setup.py build_ext --inplace` (incremental with ninja), so it is compiled once.
_skip = os.environ.get("HYPERDML_SKIP_EXTENSION") == "1"
setup(ext_modules=[] if _skip else _extensions(), cmdclass=_cmdclass(), install_requires=_install_requires(not _skip))
