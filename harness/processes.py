"""Is a process that left something behind (a temporary cache folder, a RUNNING trial) still alive?

Both the feature cache and the tuning storage clean up after killed processes; they must never
take a live one for dead, and a recycled pid must not keep a dead one's leftovers forever.
"""

from __future__ import annotations

import os
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
