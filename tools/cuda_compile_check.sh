#!/usr/bin/env bash
# Compiles the CUDA kernels on a machine without a GPU, so CUDA code that does not compile fails
# CI. The toolkit (nvcc, headers) comes from pinned NVIDIA pip wheels in .venv; the result goes
# to build/cuda-check and is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
"$py" -m pip install --quiet nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cuda-cccl==13.0.85
cuda_home=$("$py" -c "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13'))")
[ -e "$cuda_home/lib/libcudart.so" ] || ln -s libcudart.so.13 "$cuda_home/lib/libcudart.so"
export CUDA_HOME=$cuda_home PATH=$cuda_home/bin:$PATH
export HYPERDML_WITH_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-2}
# Only the DEFAULT copy of the CPU kernels: this build checks the CUDA sources, not the CPU ones.
export HYPERDML_CPU_CAPABILITIES=${HYPERDML_CPU_CAPABILITIES:-DEFAULT}
"$py" setup.py -q build_ext --build-lib build/cuda-check --build-temp build/cuda-check/tmp
so=$(ls build/cuda-check/hyperdml/_C*.so)
# Each .cu file leaves its (nvcc-generated) static initialiser in the library.
symbols=$(nm "$so")
for op in poincare_cdist hyphc_triplet; do
  grep -q "${op}_kernel.cudafe1" <<< "$symbols" || { echo "the CUDA kernels of $op are missing from $so"; exit 1; }
done
echo "CUDA sources compiled: $so"
