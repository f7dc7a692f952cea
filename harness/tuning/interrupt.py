"""Ctrl-C and SIGTERM during a search: the running trial is marked FAIL, never left RUNNING.

Optuna marks a trial FAIL when ``KeyboardInterrupt`` leaves the objective, but an interrupt that
lands in Optuna's own bookkeeping (asking for the next trial, telling a result) can leave a trial
RUNNING. So a worker raises ``KeyboardInterrupt`` (``Terminated`` for SIGTERM) only while a trial
trains; between trials it just stops before the next one. Repeated signals (the terminal's Ctrl-C
reaches every process of the group and the parent forwards it too; a scheduler's SIGTERM after
SIGINT) are ignored so the FAIL is always written. The mechanism is :class:`harness.signals.Interrupts`.
"""

from __future__ import annotations

from harness.signals import Interrupts

#: The worker's interrupt state (one per process: signals are per process).
INTERRUPTS = Interrupts()
