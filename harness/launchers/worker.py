"""What runs on a worker of any engine: one task, with the CPU threads its allocation gives it."""

from __future__ import annotations

import subprocess
from typing import Any

from harness.launchers.task import Task, failed, python_command


def execute(task: Task, results: str, cpus: int) -> dict[str, Any]:
    """Run ``task`` and return its summary; a failure is a summary too, never an exception, so
    the launcher reports it as the local grid does. A killed worker returns nothing: its run
    folder keeps the last complete epoch, which the next attempt resumes from."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    if task.cfg is not None:
        from harness.errors import HarnessError
        from harness.runner.train import run

        try:
            return run(task.cfg, results, progress=False)
        except HarnessError as exc:
            return failed(task, str(exc))
    done = subprocess.run([*python_command(), *task.command[1:]], check=False)
    if done.returncode:
        return failed(task, f"`{task.shell()}` exited with {done.returncode}")
    return {"run_id": task.label, "status": "complete"}
