#!/usr/bin/env bash
# Runs the op tests against a copy of the CPU extension built with AddressSanitizer and
# UndefinedBehaviorSanitizer (HYPERDML_SANITIZE=1 in setup.py); fails on any sanitizer report.
# The CPU kernels run as the CPU's default copy first, then the ops' own tests under each other
# instruction set the CPU has (HYPERDML_CPU_CAPABILITY).
#
# The sanitized build lives in build/sanitize/ (a copy of hyperdml/, csrc/, tests/ and the build
# files); the in-place hyperdml/_C*.so of the checkout is never touched. Rebuilds are incremental
# (ninja, file times preserved by the copy). Python itself is not instrumented, so libasan is
# preloaded, and leak detection is off (the interpreter "leaks" by design).
#
#   bash tools/sanitize_test.sh                 # build + the op tests
#   bash tools/sanitize_test.sh -k cdist        # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-$root/.venv/bin/python}
out=build/sanitize
logs=$root/$out/logs
start=$SECONDS

# 1. A fresh copy of the sources (mtimes kept, so ninja recompiles only what changed); no .so.
mkdir -p "$out"
rm -rf "$out/hyperdml" "$out/csrc" "$out/tests" "$logs"
tar -C "$root" --exclude='_C*.so' --exclude='__pycache__' -cf - \
  hyperdml csrc tests setup.py setup.cfg pyproject.toml README.md | tar -C "$out" -xf -
mkdir -p "$logs"

# 2. The sanitized CPU-only build, in place in the copy.
(cd "$out" && HYPERDML_SANITIZE=1 HYPERDML_WITH_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
  "$py" setup.py -q build_ext --inplace >"$logs/build.log" 2>&1) || { cat "$logs/build.log"; exit 1; }
so=$(ls "$out"/hyperdml/_C*.so)
deps=$(ldd "$so")
grep -q libasan <<< "$deps" || { echo "sanitize_test: $so is not linked against libasan"; exit 1; }
echo "sanitize_test: built $so in $((SECONDS - start)) s"

# 3. The op tests under the sanitizers. Reports go to $logs (also those of subprocesses).
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
tests=(
  tests/test_poincare_cdist.py tests/test_hyphc_triplet_op.py tests/test_hyphc_lca.py
  tests/test_property_ops.py tests/test_property_losses.py tests/test_bad_inputs.py
)
status=0
(
  cd "$out"
  export LD_PRELOAD="$asan $ubsan" PYTHONPATH=. OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$logs/asan"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
  export HYPERDML_HYPOTHESIS_PROFILE=default PYTHONDONTWRITEBYTECODE=1
  # The tests must import the sanitized copy, not the checkout's package.
  "$py" -W ignore -c "import sys, torch, hyperdml._extension as e, hyperdml._C as C
sys.exit(0 if e.HAS_EXTENSION and C.__file__.startswith('$root/$out/') else 1)" \
    || { echo "sanitize_test: hyperdml is not imported from $out"; exit 1; }
  # The sanitizer must be live: a deliberate heap overflow (libc memset past a malloc) is reported.
  ASAN_OPTIONS="detect_leaks=0:log_path=$logs/selfcheck" "$py" -c "import ctypes
libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(8); libc.memset(ctypes.c_void_p(p), 0, 16)" 2>/dev/null || true
  grep -qs heap-buffer-overflow "$logs"/selfcheck.* || { echo "sanitize_test: AddressSanitizer is not active"; exit 1; }
  rm -f "$logs"/selfcheck.*
  # (the CLI cases of test_bad_inputs.py run no kernel: left out, they only cost time here)
  # (set -e does not act inside this subshell, the left side of ||: each failure is counted)
  failed=0
  "$py" -m pytest -q -p no:cacheprovider -k "not cli_bad_arguments" "${tests[@]}" "$@" || failed=1
  # The other copies of the CPU kernels (one per instruction set) that this CPU runs: the kernels'
  # reference comparisons under each.
  in_use=$("$py" -W ignore -c "import hyperdml; print(hyperdml.extension_info()['cpu_capability'])")
  for capability in DEFAULT AVX2 AVX512; do
    [ "$capability" != "$in_use" ] || continue
    HYPERDML_CPU_CAPABILITY=$capability "$py" -W ignore -c "import hyperdml; hyperdml.extension_info()" \
      2>/dev/null || { echo "sanitize_test: this CPU does not run the $capability copy"; continue; }
    echo "sanitize_test: the $capability copy of the CPU kernels"
    HYPERDML_CPU_CAPABILITY=$capability "$py" -m pytest -q -p no:cacheprovider -k "not torch_compile" \
      tests/test_poincare_cdist.py tests/test_hyphc_triplet_op.py "$@" || failed=1
  done
  exit $failed
) || status=$?

reports=$(ls "$logs"/asan* "$logs"/ubsan* 2>/dev/null || true)
if [ -n "$reports" ]; then
  echo "sanitize_test: sanitizer reports:"
  for f in $reports; do echo "== $f"; cat "$f"; done
  status=1
fi
echo "sanitize_test: $([ $status -eq 0 ] && echo clean || echo FAILED) in $((SECONDS - start)) s"
exit $status
