"""Build of hyperdml and its C++/CUDA extension ``hyperdml._C``.

The C++ (CPU) kernels are always built. The CUDA kernels are added when a CUDA toolkit is usable
(``CUDA_HOME`` or nvcc found) and either a GPU is visible or ``HYPERDML_WITH_CUDA=1`` is set;
``HYPERDML_WITH_CUDA=0`` turns them off. Without a visible GPU, ``TORCH_CUDA_ARCH_LIST`` defaults
to Volta..Hopper so a machine without one can still build (and CI can check that the CUDA
sources compile).

Build with ``pip install -e . --no-build-isolation`` (build isolation would install a second torch);
``python setup.py build_ext --inplace`` rebuilds incrementally with ninja.
"""

from __future__ import annotations

import glob
import os

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


def _cpu_capability_flags() -> list[str]:
    """Compile ATen's vectorised types for the building CPU's best capability that torch itself
    uses (AVX512 or AVX2, + Sleef maths from libtorch), as ``-march=native`` builds do;
    ``HYPERDML_CPU_CAPABILITY=AVX2`` or ``DEFAULT`` (plain loops, any x86-64) for a portable build."""
    wanted = os.environ.get("HYPERDML_CPU_CAPABILITY", "").strip().upper()
    if not wanted:
        import torch

        detected = torch.backends.cpu.get_cpu_capability()
        wanted = detected if detected in ("AVX2", "AVX512") else "DEFAULT"
    if wanted == "AVX512":  # torch's own AVX512 kernels are built with these
        isa = ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c"]
        return isa + ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"]
    if wanted == "AVX2":
        return ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    if wanted != "DEFAULT":
        raise RuntimeError(f"HYPERDML_CPU_CAPABILITY must be AVX512, AVX2 or DEFAULT, got {wanted}")
    return []


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

    rel = lambda paths: sorted(os.path.relpath(p, ROOT) for p in paths)  # noqa: E731
    sources = rel(glob.glob(os.path.join(ROOT, "csrc", "*.cpp")))
    sources += rel(glob.glob(os.path.join(ROOT, "csrc", "*", "*.cpp")))
    sources += rel(glob.glob(os.path.join(ROOT, "csrc", "*", "cpu", "*.cpp")))
    openmp = ["-fopenmp"]
    sanitize = _sanitize_flags()
    optimize = ["-O1"] if sanitize else ["-O3"]
    compile_args = {"cxx": [*optimize, *openmp, *_cpu_capability_flags(), *sanitize]}
    options = dict(include_dirs=[os.path.join(ROOT, "csrc")], extra_link_args=[*openmp, *sanitize])
    if not with_cuda:
        return [CppExtension("hyperdml._C", sources, extra_compile_args=compile_args, **options)]
    sources += rel(glob.glob(os.path.join(ROOT, "csrc", "*", "cuda", "*.cu")))
    compile_args["nvcc"] = ["-O3"]
    return [
        CUDAExtension(
            "hyperdml._C", sources, define_macros=[("WITH_CUDA", None)], extra_compile_args=compile_args, **options
        )
    ]


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    return {"build_ext": BuildExtension.with_options(use_ninja=True)}


# `make` installs the package with HYPERDML_SKIP_EXTENSION=1 and then builds the extension in
# place with `setup.py build_ext --inplace` (incremental with ninja), so it is compiled once.
_skip = os.environ.get("HYPERDML_SKIP_EXTENSION") == "1"
setup(ext_modules=[] if _skip else _extensions(), cmdclass=_cmdclass())
