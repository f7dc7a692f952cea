"""Where ``harness grid`` and ``harness tune`` run their work: this machine, SLURM, or a Ray cluster.

A launcher takes the missing runs as :class:`~harness.launchers.task.Task` objects (a run
configuration, or a ``harness`` command line) and the resources each asks for, runs them on its
engine, and returns one summary per task. Every engine writes into the one results folder, so
what a launcher does not finish, the next submission of the same command finds and resumes.
"""

from __future__ import annotations

import importlib

from harness.errors import ConfigError
from harness.launchers.task import Launcher, Task

#: Launcher name → module defining ``LAUNCHER`` (a :class:`Launcher` subclass).
LAUNCHERS = {"local": "harness.launchers.local", "slurm": "harness.launchers.slurm", "ray": "harness.launchers.ray"}


def launcher_class(name: str) -> type[Launcher]:
    if name not in LAUNCHERS:
        raise ConfigError(f"--launcher {name!r}: choose one of {', '.join(LAUNCHERS)}")
    return importlib.import_module(LAUNCHERS[name]).LAUNCHER


__all__ = ["LAUNCHERS", "Launcher", "Task", "launcher_class"]
