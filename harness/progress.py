"""Progress for long work, shaped by where it is written.

On a terminal: a tqdm bar. Anywhere else (a log file, CI, a pipe): a few plain lines per stage
(start, every quarter, done with the elapsed time) instead of thousands of carriage-return frames.
Every stage of the harness (dataset synthesis, feature extraction, the grid, training batches)
takes its bar from :func:`progress`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

from tqdm import tqdm


class PlainProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` interface, printing a line at each quarter."""

    def __init__(self, iterable: Iterable[Any] | None, total: int | None, desc: str, unit: str,
                 stream: TextIO, steps: int = 4):
        self.iterable, self.desc, self.unit, self.stream = iterable, desc, unit, stream
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.steps, self.shown = total, 0, steps, 0
        self.start = time.perf_counter()
        self.closed = False
        self._line(f"{desc}: {total if total is not None else '?'} {unit}s")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.total:
            return
        step = min(self.steps, self.n * self.steps // self.total)
        if self.shown < step < self.steps:
            self.shown = step
            self._line(f"{self.desc}: {self.n}/{self.total} {self.unit}s ({100 * self.n // self.total}%)")

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(f"{self.desc}: {self.n}/{self.total if self.total is not None else self.n} {self.unit}s "
                       f"done in {time.perf_counter() - self.start:.1f}s")

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()


class _Silent(PlainProgress):
    def _line(self, text: str) -> None:
        pass


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, plain: bool = True, leave: bool = True, stream: TextIO | None = None) -> Any:
    """A progress bar: tqdm on a terminal, :class:`PlainProgress` lines elsewhere.

    ``enabled=False`` shows nothing; ``plain=False`` shows nothing off a terminal either (for a
    stage too short or too frequent to be worth lines in a log, such as one epoch's batches).
    """
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    if enabled and tty:
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True)
    cls = PlainProgress if enabled and plain else _Silent
    return cls(iterable, total, desc, unit, stream)
