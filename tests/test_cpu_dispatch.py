"""The CPU kernels' instruction set, chosen at run time (csrc/cpu_dispatch.h).

Each copy this CPU can run passes the op tests' reference comparisons; HYPERDML_CPU_CAPABILITY
chooses a copy and refuses a set that the CPU or the build lacks; on emulated CPUs without AVX512
or AVX2 (qemu-user, where installed) the extension loads, chooses the best set they have and
computes the same results; and no code outside the AVX copies uses AVX instructions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import hyperdml
from hyperdml import _extension

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPABILITIES = ["DEFAULT", "AVX2", "AVX512"]
# The CPU flags each copy's -m flags need (setup.py), as Linux names them in /proc/cpuinfo.
NEEDS = {"DEFAULT": set(), "AVX2": {"avx2", "fma", "f16c"}}
NEEDS["AVX512"] = NEEDS["AVX2"] | {"avx512f", "avx512bw", "avx512vl", "avx512dq"}

requires_extension = pytest.mark.skipif(not _extension.HAS_EXTENSION, reason="compiled extension not available")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


SUPPORTED = [name for name in CAPABILITIES if NEEDS[name] <= _cpu_flags()]
COMPILED = hyperdml.extension_info()["cpu_capabilities"] if _extension.HAS_EXTENSION else []


def _python(code: str, *, env: dict | None = None, prefix: list[str] | None = None, timeout: int = 600):
    """Runs ``code`` in a fresh interpreter on this checkout (optionally under ``prefix``, e.g. qemu)."""
    base = {k: v for k, v in os.environ.items() if k not in ("HYPERDML_CPU_CAPABILITY", "ATEN_CPU_CAPABILITY")}
    full_env = {**base, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*(prefix or []), sys.executable, "-c", code], env=full_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


INFO = "import hyperdml; print(hyperdml.extension_info()['cpu_capability'])"


@requires_extension
def test_default_is_the_best_set_of_the_cpu_that_torch_uses():
    proc = _python(INFO)
    assert proc.returncode == 0, proc.stderr
    expected = [name for name in SUPPORTED if name in COMPILED][-1]
    if torch.backends.cpu.get_cpu_capability() in CAPABILITIES:  # torch may choose lower ("NO AVX")
        expected = min(expected, torch.backends.cpu.get_cpu_capability(), key=CAPABILITIES.index)
    assert proc.stdout.split()[-1] == expected


@requires_extension
@pytest.mark.parametrize("aten, expected", [("default", "DEFAULT"), ("avx2", "AVX2")])
def test_default_follows_aten_cpu_capability(aten, expected):
    if expected not in SUPPORTED:
        pytest.skip(f"this CPU lacks {expected}")
    proc = _python(INFO, env={"ATEN_CPU_CAPABILITY": aten})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == expected


@requires_extension
@pytest.mark.parametrize("value", ["SSE4", "avx-512", " "])
def test_unknown_capability_is_a_clear_error(value):
    code = """
import torch, hyperdml
for call in (hyperdml.extension_info, lambda: hyperdml.poincare_cdist(torch.zeros(2, 3), torch.zeros(4, 3), 1.0)):
    try:
        call()
    except ValueError as error:
        print("ValueError:", error)
    else:
        print("no error")
"""
    proc = _python(code, env={"HYPERDML_CPU_CAPABILITY": value})
    assert proc.returncode == 0, proc.stderr
    message = f"HYPERDML_CPU_CAPABILITY must be DEFAULT, AVX2 or AVX512 (or unset), got '{value}'"
    assert proc.stdout.count(message) == 2, proc.stdout


@requires_extension
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_each_supported_capability_can_be_chosen(capability):
    if capability not in SUPPORTED or capability not in COMPILED:
        pytest.skip(f"{capability}: not supported by this CPU or not compiled")
    proc = _python(INFO, env={"HYPERDML_CPU_CAPABILITY": capability.lower()})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == capability  # reported by the copy the dispatch reached


@requires_extension
@pytest.mark.slow
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_op_tests_pass_under_each_capability(capability):
    """The op tests (reference comparisons, gradcheck, opcheck, property tests) under each copy
    but the one this process runs, which the same test files check in this pytest run."""
    if capability not in SUPPORTED or capability not in COMPILED:
        pytest.skip(f"{capability}: not supported by this CPU or not compiled")
    if capability == hyperdml.extension_info()["cpu_capability"]:
        pytest.skip(f"{capability} is the copy this process runs: the op test files themselves check it")
    tests = ["tests/test_poincare_cdist.py", "tests/test_hyphc_triplet_op.py", "tests/test_property_ops.py"]
    code = f"""
import sys, pytest, hyperdml
assert hyperdml.extension_info()["cpu_capability"] == {capability!r}
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-k", "not torch_compile", *{tests!r}]))
"""
    proc = _python(code, env={"HYPERDML_CPU_CAPABILITY": capability, "HYPERDML_HYPOTHESIS_PROFILE": "default"},
                   timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert re.search(r"\d+ passed", proc.stdout) and "failed" not in proc.stdout


QEMU = shutil.which("qemu-x86_64")
# CPU models of qemu-user: Haswell has AVX2 (no AVX512), SandyBridge has AVX (no AVX2).
EMULATED = [("Haswell", "AVX2", "AVX512"), ("SandyBridge", "DEFAULT", "AVX2")]


@requires_extension
@pytest.mark.slow
@pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 (Debian: qemu-user) not installed")
@pytest.mark.parametrize("cpu, expected, refused", EMULATED)
def test_runs_on_an_emulated_older_cpu(cpu, expected, refused):
    """The build loads on a CPU without the set it was compiled on, refuses a set that CPU lacks,
    chooses the best one it has, and its kernels agree with the references there (a build whose
    shared code used AVX512 dies here with an illegal instruction)."""
    code = (f"import runpy, sys; sys.argv = ['smoke', '--expect-capability', '{expected}', '--refused', "
            f"'{refused}']; runpy.run_path({os.path.join(ROOT, 'tools', 'smoke_test.py')!r}, run_name='__main__')")
    proc = _python(code, prefix=[QEMU, "-cpu", cpu], timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"HYPERDML_CPU_CAPABILITY={refused} refused: HYPERDML_CPU_CAPABILITY={refused}: this CPU does not support" \
        in proc.stdout
    assert f"({expected}) match the references" in proc.stdout


def _functions(disassembly: str) -> dict[int, tuple[str, list[str]]]:
    """objdump -d output → {start address: (name, instruction lines)}."""
    out, current = {}, None
    for line in disassembly.splitlines():
        head = re.match(r"^([0-9a-f]+) <(.+)>:$", line)
        if head:
            current = out.setdefault(int(head.group(1), 16), (head.group(2), []))
        elif current is not None and "\t" in line:
            current[1].append(line.split("\t", 1)[1].strip())
    return out


AVX_COPY = re.compile(r"::AVX(2|512)::")  # hyperdml::AVX2::..., at::vec::AVX512::Vectorized<...>
# VEX/EVEX-encoded instructions (AVX, AVX2, FMA, F16C, AVX512) and AVX512 mask registers.
AVX_INSTRUCTION = re.compile(r"^(v\w+|k\w+\s+%k)|%[yz]mm\d|%k[0-7]")


@requires_extension
def test_no_avx_instruction_outside_the_avx_copies():
    """Code that runs whatever the chosen set (load-time initialisers, the inline functions that
    several objects define and of which the linker keeps one copy, and everything they call)
    must run on any x86-64 CPU: only functions of the AVX2/AVX512 copies may use AVX."""
    objdump, nm = shutil.which("objdump"), shutil.which("nm")
    if objdump is None or nm is None:
        pytest.skip("binutils (objdump, nm) not installed")
    library = sys.modules["hyperdml._C"].__file__
    functions = _functions(subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", library],
                                          capture_output=True, text=True, check=True).stdout)
    symbols = subprocess.run([nm, "--defined-only", library], capture_output=True, text=True, check=True).stdout
    shared = {int(a, 16) for a, kind, *_ in (line.split() for line in symbols.splitlines()) if kind in "TWi"}
    starts = sorted(functions)

    def function_at(address: int) -> int | None:
        import bisect

        i = bisect.bisect_right(starts, address) - 1
        return starts[i] if i >= 0 else None

    # Roots: global and weak functions and the load-time initialisers; then what they call or jump to.
    todo = [a for a, (name, _) in functions.items() if a in shared or name.startswith("_GLOBAL__sub_I")]
    seen, offenders = set(todo), []
    while todo:
        address = todo.pop()
        name, instructions = functions[address]
        if AVX_COPY.search(name):
            continue  # runs only when the dispatch chose that copy
        if any(AVX_INSTRUCTION.search(ins) for ins in instructions):
            offenders.append(name)
        for ins in instructions:
            target = re.match(r"^(call|jmp|j\w+)\s+([0-9a-f]+) <", ins)
            callee = function_at(int(target.group(2), 16)) if target else None
            if callee is not None and callee not in seen:
                seen.add(callee)
                todo.append(callee)
    assert len(seen) > 100 and any(AVX_COPY.search(functions[a][0]) for a in seen)  # the walk found the library
    assert not offenders, f"AVX code reachable outside the AVX copies: {offenders[:10]}"
