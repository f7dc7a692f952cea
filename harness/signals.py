"""SIGTERM (``kill``, a batch scheduler's stop) handled as Ctrl-C, so interrupted work is marked and resumable."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def sigterm_raises(exc_type: type[BaseException]) -> Iterator[None]:
    """Raise ``exc_type`` on SIGTERM for the ``with`` block (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise exc_type()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
