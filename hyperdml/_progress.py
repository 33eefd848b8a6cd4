"""Progress of the long loops (training epochs, embedding passes): a tqdm bar on a terminal, a
plain line every few seconds when stderr is a file or a pipe (a log, a batch job), or nothing.

Library calls are silent unless asked (``progress=True``); the commands turn progress on for
everything they run with :func:`progress_enabled`. The interval of the plain lines is
``HYPERDML_PROGRESS_INTERVAL`` seconds (default 30; 0 prints a line per step).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from typing import Iterable, Iterator

__all__ = ["Progress", "progress_enabled", "progress_default"]

_ENABLED = contextvars.ContextVar("hyperdml_progress", default=False)
DEFAULT_INTERVAL_S = 30.0


@contextlib.contextmanager
def progress_enabled(enabled: bool = True) -> Iterator[None]:
    """Within the block, loops whose ``progress`` is ``None`` show progress (or not)."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def progress_default() -> bool:
    """Whether a loop given ``progress=None`` shows progress here (see :func:`progress_enabled`)."""
    return _ENABLED.get()


def _interval() -> float:
    text = os.environ.get("HYPERDML_PROGRESS_INTERVAL", "")
    try:
        return max(float(text), 0.0) if text else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


class Progress:
    """Iterate over ``iterable`` (``total`` items) and show how far it got.

    Args:
        iterable: what to iterate over.
        total: its length (shown as ``n/total``).
        desc: what is running, e.g. ``"epoch 2/10"``.
        enabled: ``True``/``False``, or ``None`` for :func:`progress_default`.
        unit: the items' name in the plain lines (``"steps"``, ``"batches"``).
        stream: where to write (default ``sys.stderr``); a terminal gets a tqdm bar, anything else
            a line ``"<desc>: <n>/<total> <unit> (<seconds> s, <postfix>)"`` every interval.
    """

    def __init__(self, iterable: Iterable, total: int, desc: str, enabled: bool | None = None, unit: str = "batches",
                 stream=None):
        self.iterable, self.total, self.desc, self.unit = iterable, int(total), desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = progress_default() if enabled is None else bool(enabled)
        self.bar = None
        self.postfix: dict = {}
        self.count = 0
        if self.enabled and _isatty(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, leave=False, dynamic_ncols=True, file=self.stream)
        self.start = self.last = time.monotonic()
        self.interval = _interval()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.count += 1
            if self.bar is not None:
                self.bar.update(1)
            elif self.enabled:
                now = time.monotonic()
                if now - self.last >= self.interval:
                    self.last = now
                    self._line(now)

    def set_postfix(self, **values) -> None:
        """Values shown beside the count (e.g. ``loss="1.2345"``)."""
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def _line(self, now: float) -> None:
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {self.count}/{self.total} {self.unit} ({now - self.start:.0f} s{extra})",
              file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the bar (plain lines need no closing)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
