"""What a launcher runs (a task), what it asks for, and the summary each task comes back as."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.runner.config import RunConfig


@dataclass(frozen=True)
class Task:
    """One unit of work: a resolved run configuration (a grid point) or a ``harness`` command
    line (a tuning worker). ``command`` is what a user would type for it: ``--dry-run`` shows it."""

    label: str
    command: tuple[str, ...]
    cfg: RunConfig | None = None
    run_id: str | None = None

    def shell(self) -> str:
        return shlex.join(self.command)


@dataclass
class Launcher:
    """Runs tasks somewhere and says what each one needs. Subclasses set ``name`` and implement
    :meth:`check` (fail in one line before anything is submitted) and :meth:`run`."""

    name = "?"
    cpus: int = 1
    gpus: float = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def resources(self) -> str:
        """One line: what each task asks for."""
        gpus = f", {self.gpus:g} GPU" if self.gpus else ""
        return f"{self.cpus} CPU{gpus} per task"

    def check(self) -> None:
        """Raise a one-line :class:`~harness.errors.ConfigError` if the engine cannot take tasks."""

    def run(self, tasks: list[Task], results: Path, *, progress: bool = True) -> list[dict[str, Any]]:
        raise NotImplementedError


def worker_environment() -> dict[str, str]:
    """What a worker on another machine needs from this shell: the harness's own settings
    (``HARNESS_CACHE``, ``HARNESS_RESULTS``, …) and where this harness is importable from."""
    env = {k: v for k, v in os.environ.items() if k.startswith("HARNESS_")}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def outcome(label: str, summary: dict[str, Any]) -> str:
    """The line printed when a task ends (the same as ``--jobs`` prints for a local run)."""
    state = summary.get("status")
    acc = summary.get("acc_score")
    note = f"{100 * acc:.2f}%" if state == "complete" and acc is not None else summary.get("error", state)
    return f"{label}: {note}"


def failed(task: Task, error: str) -> dict[str, Any]:
    return {"run_id": task.run_id or task.label, "status": "failed", "error": " ".join(error.split())}


def absolute(path: str) -> str:
    """A path as every worker sees it from its own working directory ("synthetic" stays a name)."""
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def python_command() -> list[str]:
    """How this harness is started on a worker: the same interpreter, as a module."""
    return [sys.executable, "-m", "harness.cli"]
