"""``hyperdml bench``: the quick mode end to end, like-for-like competitors, timing, errors; and the
repository's targets and README tables (``benchmarks/targets.py``, ``benchmarks/report.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

import hyperdml
from hyperdml import cli
from hyperdml.bench import cdist, hyphc, results, runner, timing
from hyperdml.bench.competitors import COMPETITORS, matmul_forward_backward
from hyperdml.bench.markdown import format_ms
from hyperdml.ops.reference import poincare_cdist_reference

from conftest import requires_cuda

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import report  # noqa: E402  (benchmarks/report.py)
import targets  # noqa: E402  (benchmarks/targets.py)
CASE_KEYS = {"op", "competitor", "shape", "mode", "sweep", "status"}
OK_KEYS = {"median_ms", "iqr_ms", "repeats", "number", "first_call_s", "peak_bytes", "memory_method"}


def _bench_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "hyperdml", "bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _check_results_file(out, op, shape_keys, competitors):
    files = [f for f in os.listdir(out) if f.endswith("-quick.json")]
    assert len(files) == 1, os.listdir(out)
    key = files[0][: -len("-quick.json")]
    assert key.startswith("cpu-")
    with open(os.path.join(out, files[0])) as f:
        data = json.load(f)
    assert data["format"] == "hyperdml-bench" and data["device"] == key
    assert {"device_name", "cpu", "cores", "torch", "extension"} <= set(data["machine"])
    run = data["runs"][op]
    assert run["quick"] is True and run["torch"] == torch.__version__ and run["date"]
    assert {"device", "dtype", "threads"} <= set(run["settings"])
    assert run["shape_keys"] == list(shape_keys)
    got = {c["competitor"] for c in run["cases"]}
    assert got == set(competitors)
    for case in run["cases"]:
        assert CASE_KEYS <= set(case)
        assert case["status"] == "ok", case
        assert OK_KEYS <= set(case) and case["median_ms"] > 0 and case["iqr_ms"] >= 0
        if COMPETITORS[op][case["competitor"]].comparable and case["competitor"] != "hyperdml":
            assert case["max_rel_diff"] < 1e-4, case  # float32: the competitor computes the op's quantity
    modes = {(tuple(sorted(c["shape"].items())), c["mode"]) for c in run["cases"]}
    assert len(run["ratios"]) == len(modes) * (len(competitors) - 1)
    for r in run["ratios"]:
        assert r["speedup"] == pytest.approx(1 / r["op_over_competitor"])
    assert "targets" not in run and targets.evaluate_targets(run) == []  # no verdicts on toy shapes
    assert any(c["sweep"] for c in run["cases"])
    with open(os.path.join(out, f"{key}-quick-{op}.md")) as f:
        md = f.read()
    assert "| pass | hyperdml op |" in md
    assert "|---|" in md and "Targets" not in md
    assert os.path.getsize(os.path.join(out, f"{key}-quick-{op}-sweep.png")) > 1000
    return key, run


def test_quick_cli_both_ops_and_report(tmp_path):
    out = tmp_path / "res"
    proc = _bench_cli("cdist", "--quick", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (cdist ran its cases in worker processes; hyphc runs them in the command's process: faster)
    proc = _bench_cli("hyphc", "--quick", "--isolate", "none", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    key, run = _check_results_file(out, "cdist", ("B", "N", "D"), ["hyperdml", "matmul", "torch", "geoopt"])
    _check_results_file(out, "hyphc", ("P", "D", "T"), ["hyperdml", "eager", "closed"])
    assert run["options"]["out"] == "res"  # --out was absolute: recorded relative to the working folder
    # the report regenerates only the text between the markers, from the JSON files
    readme = tmp_path / "README.md"
    readme.write_text(f"# intro\n\n{report.BEGIN}\nold table\n{report.END}\n\nfooter\n")
    assert report.main(["--results", str(out), "--readme", str(readme), "--include-quick"]) == 0
    text = readme.read_text()
    assert text.startswith("# intro") and text.endswith("footer\n") and "old table" not in text
    assert "`poincare_cdist` (quick mode)" in text and "`hyphc_triplet_loss` (quick mode)" in text
    assert f"](res/{key}-quick-cdist-sweep.png)" in text  # the plot's link works from the README's folder
    op_ms = next(c["median_ms"] for c in run["cases"] if c["competitor"] == "hyperdml" and c["mode"] == "fwd")
    assert format_ms(op_ms) in text  # the table shows the JSON's numbers
    capability = hyperdml.extension_info()["cpu_capability"]
    assert capability in ("AVX512", "AVX2", "DEFAULT")
    assert f"CPU kernels: {capability}" in text  # which vector maths was measured
    # without --include-quick, quick files are not results
    assert report.main(["--results", str(out), "--readme", str(readme)]) == 0
    assert "quick mode" not in readme.read_text() and "No results yet" in readme.read_text()


SETTINGS = {"c": 0.3, "tau": 0.1, "compile_backend": "aot_eager", "compile_mode": None}


@pytest.mark.parametrize("competitor", [c for c in COMPETITORS["cdist"] if c != "matmul"])
def test_cdist_competitors_compute_the_op(competitor):
    """Same inputs, same outputs and gradients (float64), and an independent oracle agrees too.

    (``compile`` runs with the aot_eager backend here to keep the test fast; every benchmark case
    records the inductor-compiled output's difference from the op's as ``max_rel_diff``.)
    """
    inputs = cdist.make_inputs({"B": 7, "N": 13, "D": 5}, "cpu", torch.float64, seed=3)
    want = cdist.outputs("hyperdml", inputs, SETTINGS, grad=True)
    got = cdist.outputs(competitor, inputs, SETTINGS, grad=True)
    tol = 1e-6 if competitor == "geoopt" else 1e-9  # geoopt clamps inside its artanh
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol / 10)
    torch.testing.assert_close(got[0], poincare_cdist_reference(inputs["x"], inputs["y"], 0.3))
    fn = cdist.build(competitor, inputs, "fwdbwd", SETTINGS)
    gx, gy = fn()
    torch.testing.assert_close(gx, want[1])
    torch.testing.assert_close(gy, want[2])
    torch.testing.assert_close(cdist.build(competitor, inputs, "fwd", SETTINGS)(), want[0])


def test_matmul_roofline_has_the_op_shapes():
    inputs = cdist.make_inputs({"B": 7, "N": 13, "D": 5}, "cpu", torch.float32)
    x, y, g = inputs["x"], inputs["y"], inputs["g"]
    out, gx, gy = matmul_forward_backward(x, y, g)
    assert out.shape == (7, 13) and gx.shape == x.shape and gy.shape == y.shape
    torch.testing.assert_close(gy, torch.einsum("bn,bd->nd", g, x))
    torch.testing.assert_close(cdist.build("matmul", inputs, "fwd", SETTINGS)(), x @ y.T)


@pytest.mark.parametrize("competitor", ["eager", "compile", "closed", "closed_compile"])
def test_hyphc_competitors_compute_the_op(competitor):
    inputs = hyphc.make_inputs({"P": 20, "D": 4, "T": 300}, "cpu", torch.float64, seed=1)
    want = hyphc.outputs("hyperdml", inputs, SETTINGS, grad=True)
    got = hyphc.outputs(competitor, inputs, SETTINGS, grad=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    (grad,) = hyphc.build(competitor, inputs, "fwdbwd", SETTINGS)()
    torch.testing.assert_close(grad, want[1], rtol=1e-8, atol=1e-10)


def test_measure_times_and_counts_memory():
    t = timing.measure(lambda: time.sleep(0.004), "cpu", min_run_time=0.05, min_repeats=3)
    assert t.repeats >= 3 and 3.9 <= t.median_ms <= 30 and t.iqr_ms >= 0

    def allocate():  # 64 MiB touched, then freed
        return float(torch.ones(16 * 2**20).sum())

    peak, method, _ = timing.peak_memory(allocate, "cpu")
    if method == "rss high-water (reset)":
        assert 60 * 2**20 <= peak <= 100 * 2**20, peak / 2**20
    peak_small, _, _ = timing.peak_memory(lambda: None, "cpu")
    assert peak_small < 8 * 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_thresholds_are_accepted():
    """glibc takes both settings (it refuses an mmap threshold above 32 MiB, for one)."""
    assert timing.fix_malloc_thresholds()


def test_targets_and_ratios_are_computed_from_cases():
    shape = {"B": 256, "N": 2000, "D": 128}

    def case(comp, mode, ms, peak=0):
        return {"competitor": comp, "shape": shape, "mode": mode, "status": "ok", "median_ms": ms, "peak_bytes": peak}

    cases = [case("hyperdml", "fwdbwd", 3.0, peak=256 * 2000 * 4 * 2), case("matmul", "fwdbwd", 2.5),
             case("compile", "fwdbwd", 6.0), case("hyperdml", "fwd", 1.0), case("compile", "fwd", 4.0),
             {"competitor": "geoopt", "shape": shape, "mode": "fwd", "status": "skipped", "reason": "x"}]

    def run(op="cdist", device="cpu", dtype="float32", shapes=(shape,), cases=cases, quick=False):
        return {"op": op, "quick": quick, "settings": {"device": device, "dtype": dtype, "threads": 1},
                "shapes": list(shapes), "cases": cases, "shape_keys": list(shapes[0])}

    rows = targets.evaluate_targets(run())
    by = {(r["kind"], r["mode"]): r for r in rows}
    assert by[("op_over", "fwdbwd")]["measured"] == pytest.approx(1.2) and by[("op_over", "fwdbwd")]["met"]
    assert by[("speedup", "fwdbwd")]["measured"] == pytest.approx(2.0) and by[("speedup", "fwdbwd")]["met"] is False
    assert by[("speedup", "fwd")]["met"] is True
    # a missed speed-up names the best any op as fast as its matmuls could reach: compiled ÷ matmuls
    assert "at most 2.4×" in by[("speedup", "fwdbwd")]["note"]
    assert by[("memory", "fwdbwd")]["measured"] == pytest.approx(2.0) and by[("memory", "fwdbwd")]["met"]
    assert "alone are 1.56·B·N" in by[("memory", "fwdbwd")]["note"]  # 1 + (256 + 2000)·128 / (256·2000)
    cuda_rows = targets.evaluate_targets(run(device="cuda"))
    assert {r["limit"] for r in cuda_rows} == {1.3, 1.5, 2.0}
    assert any(r["met"] is None for r in cuda_rows)  # no fwd matmul case: not measured, not "met"
    assert targets.evaluate_targets(run(dtype="float64")) == [] == targets.evaluate_targets(run(quick=True))
    ratios = results.compute_ratios(cases)
    assert {(r["competitor"], r["mode"]) for r in ratios} == {("matmul", "fwdbwd"), ("compile", "fwdbwd"),
                                                               ("compile", "fwd")}
    h = {"P": 2000, "D": 64, "T": 10**5}
    hyphc_rows = targets.evaluate_targets(run("hyphc", shapes=(h,), cases=[]))
    assert {r["target"] for r in hyphc_rows} == {t[6] for t in targets.TARGETS if t[:2] == ("hyphc", "cpu")} - {
        "≥ 20× faster than the eager formulation, forward+backward"}  # T = 10⁶ only
    assert all(r["met"] is None for r in hyphc_rows)
    lines = targets.target_lines(run())
    assert any("**missed**" in line for line in lines) and any("**met**" in line for line in lines)


def test_memory_budget_skips_with_the_needed_size():
    case = {"op": "cdist", "competitor": "geoopt", "shape": {"B": 256, "N": 113180, "D": 512}, "mode": "fwdbwd",
            "sweep": False}
    settings = {"device": "cpu", "dtype": "float32", "min_run_time": 0, "min_repeats": 1,
                "memory_budget_bytes": 2**30, "c": 0.1}
    res = runner.run_case(case, settings)
    assert res["status"] == "skipped" and "would need" in res["reason"] and "GiB" in res["reason"]


@pytest.mark.parametrize("args, message", [
    (["cdist", "--N", "abc"], "--N expects comma-separated positive integers"),
    (["cdist", "--D", "0"], "--D expects"),
    (["cdist", "--competitors", "hyperdml,nope"], "unknown competitor(s) nope"),
    (["hyphc", "--competitors", "geoopt"], "unknown competitor(s) geoopt for hyphc"),
    (["cdist", "--dtype", "float16"], "--dtype must be float32 or float64"),
    (["cdist", "--mode", "backward"], "unknown pass(es) backward"),
    (["hyphc", "--c", "-1"], "--c must be > 0"),
    (["hyphc", "--tau", "0"], "--tau must be > 0"),
    (["hyphc", "--T", "1e6,2.5"], "--T expects comma-separated positive integers"),
    (["cdist", "--device", "tpu"], "--device must be 'cpu' or 'cuda"),
    pytest.param(["cdist", "--device", "cuda"], "no CUDA device is available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
])
def test_bad_options_give_one_clear_line(args, message, tmp_path, capsys):
    assert cli.main(["bench", *args, "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hyperdml bench: error:") and message in err and "Traceback" not in err
    assert not os.listdir(tmp_path)


def test_command_options_match_the_bench_modules():
    """``hyperdml.commands.bench`` repeats the modules' facts (it imports only the stdlib): they agree."""
    from hyperdml.commands import bench as command

    for op, mod in runner.OPS.items():
        spec = command._OP_ARGS[op]
        assert spec["dims"] == mod.SHAPE_KEYS and spec["sweep"] == mod.SWEEP_KEY
        assert spec["competitors"].split(", ") == list(COMPETITORS[op])


def test_report_needs_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        report.main(["--results", str(tmp_path), "--readme", str(readme)])
    with pytest.raises(SystemExit):
        cli.main(["bench", "cdist", "--isolate", "sometimes"])


@requires_cuda
def test_quick_cli_cuda(tmp_path):
    proc = _bench_cli("cdist", "--quick", "--device", "cuda", "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(next(p for p in tmp_path.glob("*-quick.json")).read_text())
    assert all(c["status"] == "ok" and c["memory_method"].startswith("cuda") for c in data["runs"]["cdist"]["cases"])
