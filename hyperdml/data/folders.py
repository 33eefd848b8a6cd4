"""Finding a benchmark's folder and reading its text lists, with errors that name the file.

A root is accepted either as the data set's folder itself or as its parent, when exactly one
child folder holds the data set's marker file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from hyperdml.errors import DatasetError

__all__ = ["resolve_root", "read_rows", "require_file", "to_int", "unique_ids", "entry_path", "check_regular_file"]


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


def check_regular_file(path, what: str) -> None:
    """DatasetError unless ``path`` is a regular file (or a link to one): a missing path, a folder,
    a FIFO or a device is named. Opening a FIFO would wait forever for a writer."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DatasetError(f"{what}: expected {path}, not found") from None
    except OSError as exc:
        raise DatasetError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise DatasetError(f"{what}: {path} is {kind}, not a file; refused")


def require_file(path: Path, dataset: str) -> Path:
    """``path`` if it is a regular file, else a :class:`DatasetError` naming it."""
    check_regular_file(path, dataset)
    return path


def read_rows(path: Path, dataset: str, ncols: int, skip: int = 0) -> list[list[str]]:
    """Whitespace-separated rows of a UTF-8 text list, the first ``skip`` lines dropped; every row
    must have at least ``ncols`` fields (DatasetError naming the file and line otherwise, and for a
    line that is not UTF-8)."""
    require_file(path, dataset)
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{dataset}: line {lineno} of {path} is not UTF-8 text "
                                   f"(byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
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


def unique_ids(pairs, path: Path, dataset: str, what: str = "id") -> dict:
    """``{id: value}`` of ``(id, value)`` pairs read from ``path``; a DatasetError naming the id
    when one is listed twice (the second entry would otherwise replace the first unseen)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise DatasetError(f"{dataset}: {what} {key} is listed twice in {path}")
        out[key] = value
    return out


def entry_path(folder: Path, entry: str, listed_in: Path, dataset: str) -> str:
    """``folder / entry`` for an image path read from a list file, refused (DatasetError naming the
    entry) when it is absolute or climbs out of ``folder`` with ``..``: a list file names images
    inside its data set, never elsewhere on the machine."""
    for pure in (PurePosixPath(entry), PureWindowsPath(entry)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            raise DatasetError(f"{dataset}: entry {entry!r} of {listed_in} points outside the data folder "
                               f"{folder}; refused")
    return str(Path(folder) / entry)
