"""SIGTERM (``kill``, a batch scheduler's stop) handled as Ctrl-C, so interrupted work is marked and resumable.

A worker process (a grid run, a tuning trial) takes both signals through :class:`Interrupts`: the
signal stops the work in progress (raised as ``KeyboardInterrupt``, or ``Terminated`` for SIGTERM,
so the run is marked failed and resumes later) and no new work starts after it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from harness.errors import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


@contextmanager
def ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored for the block: while a command stops its workers, an impatient
    second Ctrl-C (or a scheduler's SIGTERM after SIGINT) must not cut the stopping short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def starting_workers() -> Iterator[None]:
    """Worker processes started in the block begin with SIGINT ignored (an ignored signal stays
    ignored across exec, and Python then installs no KeyboardInterrupt handler) until they route it
    to their own ``Interrupts``: a Ctrl-C that reaches the whole process group while a worker is
    still importing must not end it with a traceback. The command stops its workers itself
    (:func:`harness.processes.stop_signal`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def exception_for(signum: int | None) -> KeyboardInterrupt:
    """What a signal raises: ``Terminated`` for SIGTERM, ``KeyboardInterrupt`` for Ctrl-C."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@dataclass
class Interrupts:
    """Per-process interrupt state of a worker: raise only inside the work (``trial``), so an interrupt
    never lands in the bookkeeping around it (a queue read, a storage write); between pieces of work
    it only asks the worker to take no more (``requested``). Repeated signals are ignored."""

    requested: bool = False
    in_trial: bool = False
    signum: int | None = None
    on_request: Callable[[], None] | None = None  # called once, at the first signal

    def exception(self) -> KeyboardInterrupt:
        return exception_for(self.signum)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            return
        self.requested, self.signum = True, signum
        if self.on_request is not None:
            self.on_request()
        if self.in_trial:
            raise self.exception()

    def install(self, on_request: Callable[[], None] | None = None) -> None:
        """Route SIGINT/SIGTERM here for the rest of the process (a pool worker's initializer)."""
        self.requested, self.in_trial, self.signum, self.on_request = False, False, None, on_request
        for s in SIGNALS:
            signal.signal(s, self._handle)

    @contextmanager
    def installed(self) -> Iterator["Interrupts"]:
        """Route SIGINT/SIGTERM here for the ``with`` block (main thread only; a no-op elsewhere)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self.requested, self.in_trial, self.signum = False, False, None
        old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    @contextmanager
    def trial(self) -> Iterator[None]:
        """The work an interrupt may cut short (a run; Optuna then marks its trial FAIL)."""
        if self.requested:
            raise self.exception()
        self.in_trial = True
        try:
            yield
        finally:
            self.in_trial = False

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """A storage write inside the work (reporting an epoch's value): an interrupt that lands in it
        would leave the journal's file lock half released, so it is held until the write is done."""
        was, self.in_trial = self.in_trial, False
        try:
            yield
        finally:
            self.in_trial = was
        if was and self.requested:
            raise self.exception()

    def stop_callback(self, study: Any, trial: Any) -> None:
        """Optuna callback: after a trial, stop the loop if an interrupt came in meanwhile."""
        if self.requested:
            study.stop()
