"""Finding a benchmark's folder and reading its text lists, with errors that name the file.

A root is accepted either as the data set's folder itself or as its parent, when exactly one
child folder holds the data set's marker file.
"""

from __future__ import annotations

from pathlib import Path

from hyperdml.errors import DatasetError

__all__ = ["resolve_root", "read_rows", "require_file"]


def resolve_root(root, marker: str, dataset: str, names: tuple[str, ...] = ()) -> Path:
    """The folder ``d`` with ``d / marker`` a file: ``root`` itself, else ``root/<name>`` for one of
    ``names`` (the published folder names), else the single child of ``root`` that has it.

    Raises :class:`DatasetError` naming ``marker`` and where it was looked for.
    """
    if root is None:
        raise DatasetError(f"{dataset} needs a data root (--data-root DIR holding {marker})")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{dataset} data root {root} is not a folder (expected {root / marker})")
    if (root / marker).is_file():
        return root
    for name in names:
        if (root / name / marker).is_file():
            return root / name
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / marker).is_file())
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DatasetError(
            f"{dataset}: several folders under {root} hold {marker} ({', '.join(p.name for p in found)}); "
            "pass the one to use as the data root"
        )
    hint = f" or {root / names[0] / marker}" if names else ""
    raise DatasetError(f"{dataset}: expected {root / marker}{hint}, not found")


def require_file(path: Path, dataset: str) -> Path:
    """``path`` if it is a file, else a :class:`DatasetError` naming it."""
    if not path.is_file():
        raise DatasetError(f"{dataset}: expected {path}, not found")
    return path


def read_rows(path: Path, dataset: str, ncols: int, skip: int = 0) -> list[list[str]]:
    """Whitespace-separated rows of a text list, the first ``skip`` lines dropped; every row must
    have at least ``ncols`` fields (DatasetError naming the file and line otherwise)."""
    require_file(path, dataset)
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if lineno <= skip or not line.strip():
                continue
            fields = line.split()
            if len(fields) < ncols:
                raise DatasetError(
                    f"{dataset}: malformed line {lineno} of {path} (expected {ncols} fields): {line.strip()!r}"
                )
            rows.append(fields)
    if not rows:
        raise DatasetError(f"{dataset}: {path} lists no images")
    return rows


def to_int(value: str, path: Path, dataset: str) -> int:
    """``int(value)``, or a DatasetError naming the file."""
    try:
        return int(value)
    except ValueError:
        raise DatasetError(f"{dataset}: malformed {path}: {value!r} is not an integer id") from None
