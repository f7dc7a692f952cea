"""``harness tune --launcher slurm|ray``: the study's trial workers as launcher tasks.

Each task is the same ``harness tune`` as the submitting command, read from a file written beside
the study (``results/studies/<study>/worker.toml``) with the study's name and storage spelled
out: the default study name hashes the dataset's file times, which may differ between machines,
and the default journal must be the one in the shared results folder. ``--trials`` is the size of
the study, so the workers share the trials between them as workers started by hand do.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.atomic import write_text
from harness.launchers.options import ENGINE_FLAGS
from harness.launchers.task import Launcher, Task, absolute

#: Flags of the submitting command that a worker must not repeat.
SUBMITTER_ONLY = ("launcher", "final", "dump_config", "config", "no_progress", "n_jobs", "study", "storage",
                  "results", *(f for flags in ENGINE_FLAGS.values() for f in flags))
WORKER_FILE = "worker.toml"


def worker_task(spec: Any, args: argparse.Namespace, n: int) -> list[Task]:
    """``n`` identical worker tasks: ``harness tune --config <study>/worker.toml``."""
    from harness.experiment import dump_values, dumps
    from harness.tuning.storage import JOURNAL_NAME, is_url

    values = dump_values(args, args.command_parser, skip=SUBMITTER_ONLY)
    if "data" in values:
        values["data"] = absolute(str(values["data"]))
    results = Path(spec.results).resolve()
    storage = spec.storage if spec.storage and is_url(spec.storage) else str(
        Path(spec.storage).resolve() if spec.storage else (results / "studies" / spec.study_name / JOURNAL_NAME))
    values.update({"study": spec.study_name, "storage": storage, "results": str(results), "n-jobs": 1})
    path = results / "studies" / spec.study_name / WORKER_FILE
    write_text(path, dumps(values, "harness tune: one trial worker of the study, as submitted by "
                                   "`harness tune --launcher`\nrun it with: harness tune --config FILE"))
    command = ("harness", "tune", "--config", str(path), "--no-progress")
    return [Task(label=f"{spec.study_name} worker {i + 1}", command=command) for i in range(n)]


def launch_study(spec: Any, args: argparse.Namespace, launcher: Launcher, *, progress: bool = True):
    """Create or continue the study here (a mismatched old study fails before any submission),
    run ``spec.n_jobs`` workers through ``launcher``, and return the study as they left it."""
    from harness.tuning.study import open_study
    from harness.tuning.storage import fail_dead_trials

    study = open_study(spec, create=True)
    failed = fail_dead_trials(study)
    if failed:
        print(f"marked trial(s) {', '.join(map(str, failed))} FAIL: their worker process died; queued again")
    tasks = worker_task(spec, args, spec.n_jobs)
    print(f"{launcher.name}: {len(tasks)} trial worker(s), {launcher.resources()}; each runs {tasks[0].shell()}", flush=True)
    launcher.run(tasks, Path(spec.results), progress=progress)
    return open_study(spec)
