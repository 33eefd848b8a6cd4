"""The figures of README.md and docs/: every one is a file in docs/images written by a command of
the project (``make docs-images`` → ``hyperdml demo --images docs/images``), which says so in its
PNG text; every file there is shown somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from hyperdml.commands.demo import DOC_IMAGES, write_doc_images

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def _linked_images() -> dict[Path, list[str]]:
    found: dict[Path, list[str]] = {}
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            found.setdefault((page.parent / target).resolve(), []).append(page.name)
    return found


def test_every_figure_is_a_file_in_docs_images_and_every_file_is_shown():
    linked = _linked_images()
    assert linked, "README.md and docs/ show no figure"
    for path, pages in linked.items():
        assert path.parent == IMAGES.resolve(), f"{pages} show {path}, outside docs/images"
        assert path.is_file(), f"{pages} show {path.name}, which docs/images lacks"
    on_disk = {p.resolve() for p in IMAGES.iterdir() if p.is_file()}
    assert on_disk <= set(linked), f"not shown anywhere: {sorted(p.name for p in on_disk - set(linked))}"


@pytest.mark.parametrize("name", sorted(p.name for p in IMAGES.glob("*")))
def test_every_image_names_the_command_that_made_it(name):
    assert name in DOC_IMAGES.values(), f"{name} is not one of the demo's figures {sorted(DOC_IMAGES.values())}"
    with Image.open(IMAGES / name) as im:
        source = im.text.get("Source", "")
    assert source.startswith("hyperdml demo") and "--images docs/images" in source, source


def test_write_doc_images_copies_the_figures_with_their_command(tmp_path):
    src = {}
    for key in DOC_IMAGES:
        src[key] = str(tmp_path / f"{key}.png")
        Image.new("RGB", (8, 6), (10, 20, 30)).save(src[key])
    written = write_doc_images(src, str(tmp_path / "out"), "hyperdml demo --seed 3")
    assert set(written) == set(DOC_IMAGES)
    for key, path in written.items():
        with Image.open(path) as im:
            assert im.size == (8, 6) and im.getpixel((0, 0)) == (10, 20, 30)
            assert im.text["Source"] == f"hyperdml demo --seed 3 --images {tmp_path / 'out'}"
