#!/usr/bin/env bash
# The package as a user gets it: `python -m build` (the sdist, then a wheel built from that
# sdist, against the installed torch), the wheel installed with its dependencies into a fresh
# virtual environment, and tools/smoke_test.py run from outside the source tree (import,
# extension_info(), both ops against their references) plus `hyperdml --help`. With qemu-user
# installed (Debian: qemu-user; CI installs it), the same smoke test runs on emulated CPUs without
# AVX512 (Haswell) and without AVX2 (SandyBridge): the one wheel must run on both.
#
# Everything goes to build/package/; the virtual environment (about 6 GB: torch and its CUDA
# libraries, pinned to requirements.txt) is removed at the end unless KEEP_VENV=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-$root/.venv/bin/python}
out=$root/build/package
start=$SECONDS
step() { echo "package_test: $1 ($((SECONDS - start)) s)"; }

rm -rf "$out"
mkdir -p "$out"

# 1. sdist, and a wheel from it (no build isolation: it would build against a second torch).
HYPERDML_WITH_CUDA=${HYPERDML_WITH_CUDA:-0} MAX_JOBS=${MAX_JOBS:-2} \
  "$py" -m build --no-isolation --outdir "$out/dist" . >"$out/build.log" 2>&1 || { tail -60 "$out/build.log"; exit 1; }
sdist=$(ls "$out"/dist/hyperdml-*.tar.gz)
wheel=$(ls "$out"/dist/hyperdml-*.whl)
grep -q "Building wheel from sdist" "$out/build.log"  # not from the checkout
step "built $(basename "$sdist") and, from it, $(basename "$wheel")"

# 2. The wheel holds the compiled extension, every module of the package and the LICENSE.
"$py" - "$wheel" <<'EOF'
import pathlib, sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
modules = {str(p) for p in pathlib.Path("hyperdml").rglob("*.py") if "__pycache__" not in p.parts}
missing = sorted(modules - names)
assert not missing, f"modules missing from the wheel: {missing}"
assert any(n.startswith("hyperdml/_C") and n.endswith(".so") for n in names), "no compiled extension"
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE"
assert not [n for n in names if n.startswith(("csrc/", "tests/"))], "sources or tests in the wheel"
print(f"wheel: {len(names)} files, {len(modules)} modules")
EOF

# 3. A fresh virtual environment with the wheel and its dependencies (versions pinned as tested).
venv=$out/venv
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c requirements.txt "$wheel[faiss]" \
  >"$out/install.log" 2>&1 || { tail -40 "$out/install.log"; exit 1; }
step "installed the wheel and its dependencies into a fresh virtual environment"

# 4. Smoke tests from outside the source tree.
smoke=$root/tools/smoke_test.py
cd "$out"
OMP_NUM_THREADS=1 "$venv/bin/python" "$smoke" --installed
"$venv/bin/hyperdml" --help >/dev/null
OMP_NUM_THREADS=1 HYPERDML_CPU_CAPABILITY=DEFAULT "$venv/bin/python" "$smoke" --installed --expect-capability DEFAULT
step "smoke test passed; hyperdml --help runs"

if command -v qemu-x86_64 >/dev/null; then
  for cpu in "Haswell AVX2 AVX512" "SandyBridge DEFAULT AVX2"; do
    set -- $cpu
    OMP_NUM_THREADS=1 qemu-x86_64 -cpu "$1" "$venv/bin/python" "$smoke" --installed --expect-capability "$2" \
      --refused "$3" 2>&1 | grep -v "TCG doesn't support"
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "package_test: the smoke test failed on an emulated $1 CPU"; exit 1; }
  done
  step "the wheel runs on emulated Haswell (AVX2) and SandyBridge (no AVX2) CPUs"
else
  echo "package_test: qemu-x86_64 not found: the emulated-CPU smoke tests did not run"
fi

cd "$root"
[ "${KEEP_VENV:-0}" = 1 ] || rm -rf "$venv"
step "done"
