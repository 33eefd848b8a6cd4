"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never half.

Every writer puts the data in a temporary file in the destination's folder, flushes and fsyncs
it, renames it over the destination with ``os.replace`` (atomic on POSIX and Windows), then
fsyncs the folder where the OS allows, so that the rename itself survives a power cut. On any
error the temporary file is removed and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Iterator

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; the rename is durable there on its own
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """``with atomic_open(path) as f: ...`` writes ``path`` atomically (``mode`` ``"wb"`` or ``"w"``).

    ``f`` is a temporary file beside ``path`` (hidden name ``.<name>.<random>.tmp``); when the
    block ends without an exception it is flushed, fsynced and renamed over ``path``. When the
    block raises, the temporary file is removed, ``path`` is untouched and the exception goes on.
    The folder of ``path`` must exist.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        kwargs = {"encoding": encoding or "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, **dumps_kwargs) -> None:
    """Write ``obj`` as JSON (``json.dumps(obj, indent=indent, **dumps_kwargs)`` and a newline) to
    ``path`` atomically. The text is made before the file is touched, so an object that JSON cannot
    encode raises ``TypeError`` / ``ValueError`` with ``path`` left as it was."""
    atomic_write_text(path, json.dumps(obj, indent=indent, **dumps_kwargs) + "\n")
