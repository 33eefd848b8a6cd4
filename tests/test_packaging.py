"""The source distribution (``python -m build --sdist``): every tracked source, including the
extension's headers and CUDA files, so that a wheel builds from it; the LICENSE; complete
metadata (faiss-cpu only as an extra); no build outputs. The wheel built from it is installed and
smoke-tested in a fresh virtual environment by tools/package_test.sh (CI)."""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
import tarfile

import pytest
import torch

import hyperdml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_SHIPPED = {".ci/run", ".gitignore"}  # CI and git machinery only


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> dict[str, bytes]:
    """{path inside the sdist (without its top folder): content} of a freshly built sdist."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), ROOT],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (archive,) = out.glob("hyperdml-*.tar.gz")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        top = {m.name.split("/", 1)[0] for m in members}
        assert top == {f"hyperdml-{hyperdml.__version__}"}
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in members}


def _tracked_files() -> list[str]:
    proc = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout:
        pytest.skip("not a git checkout")
    return proc.stdout.split()


def test_sdist_has_every_tracked_file(sdist):
    missing = sorted(set(_tracked_files()) - NOT_SHIPPED - set(sdist))
    assert not missing, f"tracked files missing from the sdist: {missing}"


def test_every_include_of_the_extension_resolves_in_the_sdist(sdist):
    """Each ``#include "..."`` of the C++/CUDA sources names a file of the sdist (next to the
    including file or under csrc/, the include path of setup.py)."""
    sources = [p for p in sdist if p.startswith("csrc/") and p.endswith((".cpp", ".cu", ".h"))]
    assert any(p.endswith(".cu") for p in sources) and any(p.endswith(".h") for p in sources)
    unresolved, count = [], 0
    for path in sources:
        for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', sdist[path].decode(), flags=re.M):
            count += 1
            candidates = (os.path.normpath(os.path.join(os.path.dirname(path), name)), f"csrc/{name}")
            if not any(c in sdist for c in candidates):
                unresolved.append(f"{path}: {name}")
    assert count >= 10 and not unresolved, unresolved


def test_sdist_has_no_build_outputs(sdist):
    outputs = [p for p in sdist if p.endswith((".so", ".o", ".pyc")) or "__pycache__" in p
               or p.split("/")[0] in ("build", "dist", ".venv", "runs")]
    assert not outputs, outputs


def test_license_and_metadata(sdist):
    assert sdist["LICENSE"].decode().startswith("MIT License")
    meta = email.parser.Parser().parsestr(sdist["PKG-INFO"].decode())
    assert meta["Name"] == "hyperdml" and meta["Version"] == hyperdml.__version__
    assert meta["Summary"] and meta["Author"] and meta["License"] == "MIT" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.10"
    assert "Programming Language :: Python :: 3" in meta.get_all("Classifier")
    assert meta["Description-Content-Type"] == "text/markdown" and "# hyperdml" in meta.get_payload()
    requires = meta.get_all("Requires-Dist")
    # the wheel's compiled extension needs the torch release it was built with
    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    assert f"torch=={major_minor}.*" in requires
    # faiss-cpu only on request, so that hyperdml installs beside faiss-gpu
    faiss = [r for r in requires if r.startswith("faiss")]
    assert faiss and all("extra ==" in r for r in faiss), faiss
    assert {"faiss", "pml", "vit", "test", "all"} <= set(meta.get_all("Provides-Extra"))
    assert 'pytorch-metric-learning>=2.9; extra == "pml"' in requires
