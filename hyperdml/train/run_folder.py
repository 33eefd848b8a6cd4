"""The run folder (``--out``): one run at a time, never two runs' files mixed, clear I/O errors.

A run folder holds :data:`RUN_FILES`: ``last.pt`` (the checkpoint), ``log.jsonl`` (one JSON
record per line), ``metrics.json`` and ``config.json``. :meth:`RunFolder.open` makes it safe to
write:

- the folder is created (its parents too); ``--out`` that is a file, lies under a file, or cannot
  be written (permissions, a read-only or full file system) is a one-line error naming it;
- a lock (``.hyperdml.lock``, an OS file lock released when the process ends, even when it is
  killed) keeps a second run out while one writes there;
- a new run refuses a folder that already holds a run's files, unless asked to ``overwrite`` it
  (the old run files are removed first) or it continues that very run (``resume``).

Files are written atomically (:mod:`hyperdml._atomic`); an ``OSError`` while writing one becomes
a :class:`RunFolderError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

from hyperdml._atomic import atomic_write_json, atomic_write_text
from hyperdml.errors import ConfigError, HyperdmlError

__all__ = ["RUN_FILES", "LOCK_NAME", "RunFolder", "RunFolderError", "JsonLog", "make_out_folder", "writing"]

RUN_FILES = ("last.pt", "log.jsonl", "metrics.json", "config.json")
LOCK_NAME = ".hyperdml.lock"


class RunFolderError(HyperdmlError):
    """A run folder that cannot be created, locked or written."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into a :class:`RunFolderError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise RunFolderError(f"cannot write {path}: {_reason(exc)}") from exc


def make_out_folder(path: str) -> None:
    """Create the folder ``path`` (an ``--out``); :class:`ConfigError` when it is a file or lies under one."""
    if os.path.isfile(path):
        raise ConfigError(f"--out {path} is a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        parent = path
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        raise ConfigError(f"--out {path} cannot be a folder: {parent or path} is a file") from None
    except OSError as exc:
        raise RunFolderError(f"cannot create the run folder {path}: {_reason(exc)}") from None


class RunFolder:
    """An open, locked run folder (see the module docstring); :meth:`close` releases the lock."""

    def __init__(self, path: str, lock):
        self.path, self._lock = path, lock

    @classmethod
    def open(cls, path: str | os.PathLike, *, resume_from: str | None = None, overwrite: bool = False) -> RunFolder:
        """Create and lock the run folder ``path`` for a new run (``resume_from=None``) or for the
        continuation of the run whose checkpoint is ``resume_from``.

        Raises :class:`~hyperdml.errors.ConfigError` when ``path`` is a file or lies under one, when
        another process holds the folder, or when it holds another run's files and ``overwrite`` is
        false (a resumed run may write into its own checkpoint's folder); :class:`RunFolderError`
        when the folder cannot be created or written.
        """
        path = os.fspath(path)
        make_out_folder(path)
        lock = _acquire(path)
        try:
            existing = [name for name in RUN_FILES if os.path.lexists(os.path.join(path, name))]
            own = resume_from is not None and os.path.samefile(os.path.dirname(os.path.abspath(resume_from)), path)
            if existing and not own:
                if not overwrite:
                    files = ", ".join(existing)
                    if resume_from:
                        raise ConfigError(f"{path} already holds another run ({files}), and --resume writes the "
                                          "continued run to --out: replace it with --overwrite, or choose another --out")
                    hint = f"continue it with --resume {path}, " if "last.pt" in existing else ""
                    raise ConfigError(f"{path} already holds a run ({files}): {hint}replace it with --overwrite, "
                                      "or choose another --out")
                for name in existing:
                    with writing(os.path.join(path, name)):
                        os.remove(os.path.join(path, name))
            with writing(path):  # the folder takes new files (permissions, a read-only file system)
                probe = os.path.join(path, f".{LOCK_NAME}.probe")
                with open(probe, "w"):
                    pass
                os.remove(probe)
        except BaseException:
            lock.release()
            raise
        return cls(path, lock)

    def file(self, name: str) -> str:
        """The path of ``name`` in the folder."""
        return os.path.join(self.path, name)

    def write_json(self, name: str, obj) -> None:
        """Write ``obj`` as ``<folder>/<name>`` atomically (RunFolderError naming it on failure)."""
        with writing(self.file(name)):
            atomic_write_json(self.file(name), obj)

    def close(self) -> None:
        """Release the folder's lock (the lock file stays; it is empty and harmless)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _acquire(path: str):
    from filelock import FileLock, Timeout

    lock_path = os.path.join(path, LOCK_NAME)
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"another run is writing to {path} (it holds {lock_path}); wait for it to end or choose "
                          "another --out") from None
    except OSError as exc:
        raise RunFolderError(f"cannot write in the run folder {path}: {_reason(exc)}") from None
    return lock


class JsonLog:
    """``log.jsonl`` appender: one JSON object per line, flushed after each record.

    Args:
        path: the log file, or None (a process that does not write: every record is dropped).
        truncate_after_step: when resuming, the checkpoint's step: the records of later steps
            (written after the checkpoint by the interrupted run, and about to be redone) are
            removed first, so the log holds each step once.
    """

    def __init__(self, path: str | None, truncate_after_step: int | None = None):
        self.path = path
        if path is None or truncate_after_step is None or not os.path.exists(path):
            return
        keep = []
        with writing(path), open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    step = int(rec.get("step", 0))
                except (ValueError, TypeError, AttributeError):
                    continue  # a line cut short by a crash
                if step <= truncate_after_step:
                    keep.append(line if line.endswith("\n") else line + "\n")
        with writing(path):
            atomic_write_text(path, "".join(keep))

    def write(self, record: dict) -> None:
        """Append ``record`` as one line (RunFolderError naming the file when it cannot be written)."""
        if self.path is None:
            return
        with writing(self.path), open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
