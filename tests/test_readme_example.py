"""The README's "use the losses in your own loop" examples run.

The code blocks come from ``README.md`` when it holds the ``<!-- losses-example -->`` marker,
otherwise from ``docs/losses.md`` (where the section is written before it is pasted into the
README): every ```` ```python ```` block between ``<!-- losses-example -->`` and
``<!-- /losses-example -->``, each run on its own in a fresh namespace.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- losses-example -->", "<!-- /losses-example -->"


def _source() -> Path:
    readme = ROOT / "README.md"
    if readme.exists() and START in readme.read_text(encoding="utf-8"):
        return readme
    return ROOT / "docs" / "losses.md"


def _blocks() -> list[str]:
    text = _source().read_text(encoding="utf-8")
    assert START in text and END in text, f"{_source()} lacks the {START} … {END} markers"
    section = text.split(START, 1)[1].split(END, 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_section_has_the_three_examples():
    blocks = _blocks()
    assert len(blocks) == 3
    assert "ProxyAnchor" in blocks[0] and "PoincareSpace" in blocks[1] and "CHEST" in blocks[2]


@pytest.mark.parametrize("index", range(3), ids=["euclidean", "hyperbolic", "chest"])
def test_example_runs(index, capsys):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = _blocks()[index]
        exec(compile(code, f"{_source().name}[python block {index}]", "exec"), {"__name__": "__readme__"})
    finally:
        torch.set_num_threads(n)
    out = capsys.readouterr().out
    assert "loss" in out or "total" in out
    assert "nan" not in out.lower()


def _all_readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(_all_readme_blocks())))
def test_every_readme_block_runs(index, tmp_path, monkeypatch):
    """Every python block of the README (ops, hierarchy, ...) runs as written, in a fresh folder (a
    block that trains writes its run folder there, not into the repository)."""
    monkeypatch.chdir(tmp_path)
    code = _all_readme_blocks()[index]
    namespace = {"__name__": "__readme__"}
    exec(compile(code, f"README.md[python block {index}]", "exec"), namespace)
    tensors = [v for v in namespace.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert all(torch.isfinite(t).all() for t in tensors)
