"""Ctrl-C and SIGTERM during a search: the running trial is marked FAIL, never left RUNNING.

Optuna marks a trial FAIL when ``KeyboardInterrupt`` leaves the objective, but an interrupt that
lands in Optuna's own bookkeeping (asking for the next trial, telling a result) can leave a trial
RUNNING. So a worker raises ``KeyboardInterrupt`` only while a trial trains; between trials it
just stops before the next one. Repeated signals (the terminal's Ctrl-C reaches every process of
the group and the parent forwards it too; a scheduler's SIGTERM after SIGINT) are ignored so the
FAIL is always written.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Interrupts:
    """Per-process interrupt state of a tuning worker."""

    requested: bool = False
    in_trial: bool = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            return
        self.requested = True
        if self.in_trial:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator["Interrupts"]:
        """Route SIGINT/SIGTERM here for the ``with`` block (main thread only; a no-op elsewhere)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self.requested = self.in_trial = False
        old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    @contextmanager
    def trial(self) -> Iterator[None]:
        """The part of a trial an interrupt may cut short (Optuna then marks it FAIL)."""
        if self.requested:
            raise KeyboardInterrupt
        self.in_trial = True
        try:
            yield
        finally:
            self.in_trial = False

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """A storage write inside a trial (reporting an epoch's value): an interrupt that lands in it
        would leave the journal's file lock half released, so it is held until the write is done."""
        was, self.in_trial = self.in_trial, False
        try:
            yield
        finally:
            self.in_trial = was
        if was and self.requested:
            raise KeyboardInterrupt

    def stop_callback(self, study: Any, trial: Any) -> None:
        """Optuna callback: after a trial, stop the loop if an interrupt came in meanwhile."""
        if self.requested:
            study.stop()


#: The worker's interrupt state (one per process: signals are per process).
INTERRUPTS = Interrupts()
