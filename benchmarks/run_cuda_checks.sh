#!/usr/bin/env bash
# On a machine with a CUDA GPU and a CUDA-enabled torch: build the extension with its CUDA
# kernels, run the test suite there (CUDA_TESTS narrows it; tests/test_cdist_triton.py runs the
# fused Triton cdist kernels on the GPU), compute-sanitizer over both ops (float32 cdist through the
# Triton kernels, float64 through the CUDA C++ ones), and the CUDA
# benchmarks (results in benchmarks/results/<gpu name>.json, tables in benchmarks/README.md).
#   bash benchmarks/run_cuda_checks.sh [output-folder]     (default: $OUT, else benchmarks/results)
# Everything it measures is written into the output folder as it goes, so a run cut short still
# leaves its logs. WHEELS=DIR installs the Python dependencies from local wheels first (no network).
set -euo pipefail
out=${1:-${OUT:-benchmarks/results}}
mkdir -p "$out"
py=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
  "$py" -m pip install -q --no-index --find-links "$WHEELS" geoopt scipy tqdm filelock 2>&1 | tail -3 || true
  # Triton (the fused float32 cdist kernels) comes with torch's Linux wheels; a wheel in WHEELS
  # fills the gap where it is missing.
  "$py" -c "import triton" 2> /dev/null \
    || "$py" -m pip install -q --no-index --find-links "$WHEELS" triton 2>&1 | tail -3 || true
fi
export HYPERDML_WITH_CUDA=1 PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
"$py" setup.py build_ext --inplace > "$out/cuda_build.log" 2>&1 || { tail -40 "$out/cuda_build.log"; exit 1; }
"$py" -c "import hyperdml; print(hyperdml.extension_info())"
"$py" -c "import importlib, hyperdml.ops; m = importlib.import_module('hyperdml.ops.poincare_cdist'); \
print('float32 cdist by the fused Triton kernels on:', m.FUSED_DEVICES or 'nothing (no Triton)')"
ldd hyperdml/_C*.so | grep -E "stdc|cudart" || true
echo "libstdc++ code linked into _C: $(nm -C hyperdml/_C*.so | grep -c ' [TW] std::' || true) symbols"
# The test files with CUDA cases (CUDA_TESTS=tests runs them all, ~7 more minutes).
cuda_tests="tests/test_cdist_triton.py tests/test_poincare_cdist.py tests/test_hyphc_triplet_op.py
  tests/test_op_autograd.py tests/test_losses_cuda.py tests/test_bad_inputs.py tests/test_calibrate_proxy.py
  tests/test_hierarchical_proxy.py tests/test_bench.py"
"$py" -m pytest -q -p no:cacheprovider ${CUDA_TESTS:-$cuda_tests} 2>&1 \
  | tee "$out/cuda_tests.log" | tail -15 || echo "the CUDA tests failed"
if command -v compute-sanitizer > /dev/null; then
  cat > /tmp/hyperdml_sanitize.py <<'PY'
import torch, hyperdml
g = torch.Generator().manual_seed(0)
for dtype in (torch.float32, torch.float64):
    x = (torch.randn(67, 33, generator=g) * 0.1).to("cuda", dtype).requires_grad_()
    y = (torch.randn(45, 33, generator=g) * 0.1).to("cuda", dtype).requires_grad_()
    hyperdml.poincare_cdist(x, y, 0.5).sum().backward()
    hyperdml.poincare_cdist(x, x, 0.5).sum().backward()
    for dim in (3, 17, 64):  # every lane-group size of the CUDA kernel
        p = (torch.randn(50, dim, generator=g) * 0.05).to("cuda", dtype).requires_grad_()
        t = torch.randint(0, 50, (1001, 3), generator=g).cuda()
        s = torch.rand(1001, 3, generator=g).to("cuda", dtype)
        hyperdml.hyphc_triplet_loss(p, t, s, 1.0, 0.05).sum().backward()
torch.cuda.synchronize()
print("sanitizer workload done")
PY
  for tool in memcheck racecheck; do
    echo "compute-sanitizer --tool $tool:"
    compute-sanitizer --tool "$tool" --error-exitcode 9 "$py" /tmp/hyperdml_sanitize.py 2>&1 | tail -4 | tee -a "$out/cuda_sanitizer.log"
  done
fi
# Benchmarks (`hyperdml bench`, see benchmarks/README.md): <device>.json, tables and plots in $out,
# and benchmarks/README.md's generated tables refreshed. One process per competitor rather than per
# case: CUDA peak memory comes from the allocator's own counters, reset before each case, so this
# measures the same and starts 5 CUDA contexts instead of 55 (about 6 instead of 11 minutes).
# BENCH=0 skips them; BENCH_CDIST_ARGS / BENCH_HYPHC_ARGS add or override options.
# The shapes of the GPU targets (benchmarks/targets.py): cdist 4096x8192x128 and 256x113180x512,
# hyphc T = 1e6 and 1e7 (a results file holds one run per op: the second cdist shape gets its own
# folder); then benchmarks/report.py refreshes benchmarks/README.md's tables.
if [ "${BENCH:-1}" != 0 ]; then
  "$py" -m hyperdml bench cdist --device cuda --out "$out" --isolate competitor --B 4096 --N 8192 --D 128 \
    --sweep none ${BENCH_CDIST_ARGS:-} 2>&1 | tee "$out/bench_cdist.log" || echo "bench cdist failed"
  "$py" -m hyperdml bench cdist --device cuda --out "$out/retrieval" --isolate competitor --B 256 --N 113180 \
    --D 512 ${BENCH_CDIST_ARGS:-} 2>&1 | tee "$out/bench_cdist_retrieval.log" || echo "bench cdist failed"
  "$py" -m hyperdml bench hyphc --device cuda --out "$out" --isolate competitor \
    --T 1000000,10000000 ${BENCH_HYPHC_ARGS:-} 2>&1 | tee "$out/bench_hyphc.log" || echo "bench hyphc failed"
  "$py" benchmarks/report.py --results "$out" 2>&1 | tail -3 || true
fi
