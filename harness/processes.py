"""Is a process that left something behind (a temporary cache folder, a RUNNING trial) still alive? And
signalling worker processes that may already have exited.

Both the feature cache and the tuning storage clean up after killed processes; they must never
take a live one for dead, and a recycled pid must not keep a dead one's leftovers forever.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def start_ticks(pid: int) -> str | None:
    """The process start time in clock ticks (Linux ``/proc``), or None where unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """True if ``pid`` exists (and, given ``start``, is the same process: same start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is None:
        return True
    now = start_ticks(pid)
    return now is None or now == start


def signal_all(pids: list[int], signum: int) -> None:
    """Send ``signum`` to each process that still exists (one that exited meanwhile is skipped)."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def stop_signal(pids: list[int], signum: int) -> None:
    """Pass a stop on to worker processes: ``signum``, then SIGTERM after a Ctrl-C, which ends a
    worker still starting (it ignores SIGINT until its handler is in place: ``signals.starting_workers``)
    and which a started worker takes as a repeat and ignores."""
    signal_all(pids, signum)
    if signum != signal.SIGTERM:
        signal_all(pids, signal.SIGTERM)


def end_without_teardown(code: int = 0) -> None:
    """Have this process, when it ends, skip the interpreter's teardown (which takes seconds with
    torch loaded, on a busy machine): a worker stopped by a signal, whose work is already reported
    and whose records are already written, then leaves at once instead of seconds later."""
    import atexit
    import sys

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(code)

    atexit.register(leave)  # last registered, first run: before any other exit handler
