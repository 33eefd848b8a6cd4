"""The python examples of the docs pages that hold runnable examples (the ops, the data sets and
metrics) run as written, each in a fresh namespace and a fresh folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("docs/ops.md", "docs/data.md")


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        found += [(page, code) for code in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)]
    return found


def test_the_pages_hold_examples():
    pages = {page for page, _ in _blocks()}
    assert pages == set(PAGES), f"no python example in {set(PAGES) - pages}"


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_every_docs_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page, code = _blocks()[index]
    namespace = {"__name__": "__docs__"}
    exec(compile(code, f"{page}[python block {index}]", "exec"), namespace)
    tensors = [v for v in namespace.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert all(torch.isfinite(t).all() for t in tensors)
