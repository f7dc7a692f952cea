"""``--launcher local``: this machine, as without a launcher.

``harness grid`` keeps its own pool for local runs (``harness.grids.run.run_local``: devices spread
over the GPUs); this launcher runs any task list the same way, ``jobs`` processes at a time."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harness.launchers.task import Launcher, Task, outcome
from harness.launchers.worker import execute


@dataclass
class LocalLauncher(Launcher):
    name = "local"
    jobs: int = 1

    def __post_init__(self) -> None:
        self.cpus = max(1, (os.cpu_count() or 1) // max(1, self.jobs))

    def resources(self) -> str:
        return f"{self.jobs} at once on this machine, {self.cpus} CPU thread(s) each"

    def run(self, tasks: list[Task], results: Path, *, progress: bool = True) -> list[dict[str, Any]]:
        out = []
        with ProcessPoolExecutor(max(1, min(self.jobs, len(tasks) or 1)), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(execute, t, str(results), self.cpus): t for t in tasks}
            for fut in as_completed(futures):
                out.append(fut.result())
                print(outcome(futures[fut].label, out[-1]), flush=True)
        return out


LAUNCHER = LocalLauncher
