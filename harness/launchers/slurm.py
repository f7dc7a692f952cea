"""``--launcher slurm``: the tasks as one SLURM job array, submitted through submitit.

Every array task runs one grid point (or one tuning worker) with the CPUs and GPUs it asked for
and writes into the shared results folder. The submitting command waits and prints each run as
it ends; Ctrl-C stops the waiting, not the jobs. Which tasks ended is read from ``squeue`` and
submitit's result files, not from ``sacct``, so clusters without accounting work too. A task that
reaches ``--slurm-time`` (or is preempted) is requeued by submitit and resumes from its last
epoch; one that was killed is reported failed, and the next submission of the same command
resumes it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.launchers.task import Launcher, Task, failed, outcome
from harness.launchers.worker import execute

#: Seconds between looks at the queue: short at first (short runs), then at most this.
POLL_MAX = 15.0


def parse_time(text: str) -> int:
    """``--slurm-time`` in SLURM's forms (``90`` minutes, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``,
    ``D-H:M:S``) → whole minutes, rounded up."""
    text = str(text).strip()
    days, _, rest = text.rpartition("-") if "-" in text else ("", "", text)
    parts = rest.split(":")
    if ("-" in text and not days.isdigit()) or not all(re.fullmatch(r"\d+", p) for p in parts) or len(parts) > 3:
        raise ConfigError(f"--slurm-time {text!r}: give minutes (90) or SLURM's H:M:S, D-H, D-H:M (1:30:00)")
    n = [int(p) for p in parts]
    if days:  # D-H, D-H:M, D-H:M:S
        n += [0] * (3 - len(n))
        seconds = int(days) * 86400 + n[0] * 3600 + n[1] * 60 + n[2]
    else:  # M, M:S, H:M:S
        seconds = {1: lambda: n[0] * 60, 2: lambda: n[0] * 60 + n[1], 3: lambda: n[0] * 3600 + n[1] * 60 + n[2]}[len(n)]()
    if seconds < 60:
        raise ConfigError(f"--slurm-time {text!r}: must be at least one minute")
    return -(-seconds // 60)


def parse_options(items: list[str] | None) -> dict[str, str]:
    """``--slurm-opt KEY=VALUE`` (any sbatch long option: account=lab, mem=16G, qos=high)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not key:
            raise ConfigError(f"--slurm-opt {item!r}: expected KEY=VALUE (an sbatch option such as mem=16G)")
        out[key] = value.strip() if sep else True
    return out


def _first_line(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _submitit():
    try:
        import submitit
    except ImportError as exc:
        raise ConfigError("--launcher slurm needs submitit: pip install 'harness[slurm]'") from exc
    return submitit


@dataclass
class SlurmLauncher(Launcher):
    name = "slurm"
    cpus: int = 2
    partition: str | None = None
    time_min: int = 60
    options: dict[str, str] = field(default_factory=dict)
    job_name: str = "harness"

    def resources(self) -> str:
        where = f"partition {self.partition}" if self.partition else "the default partition"
        opts = "".join(f", --{k.replace('_', '-')}={v}" for k, v in self.options.items())
        gpus = f", {self.gpus:g} GPU" if self.gpus else ""
        return f"one SLURM array task each on {where}: {self.cpus} CPU{gpus}, {self.time_min} min{opts}"

    def check(self) -> None:
        _submitit()
        if shutil.which("sbatch") is None:
            raise ConfigError("--launcher slurm: no SLURM on this machine (sbatch not found on PATH); "
                              "submit from a login node of the cluster")
        if self.gpus and float(self.gpus) != int(self.gpus):
            raise ConfigError(f"--slurm-gpus-per-task {self.gpus:g}: SLURM gives whole GPUs")
        try:
            done = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"--launcher slurm: sinfo failed ({exc})") from exc
        if done.returncode:
            raise ConfigError(f"--launcher slurm: sinfo failed: {_first_line(done.stderr)}")
        partitions = sorted(set(done.stdout.split()))
        if self.partition and self.partition not in partitions:
            raise ConfigError(f"--slurm-partition {self.partition!r}: no such partition; this cluster has "
                              f"{', '.join(partitions) or 'none'}")

    def run(self, tasks: list[Task], results: Path, *, progress: bool = True) -> list[dict[str, Any]]:
        submitit = _submitit()
        folder = Path(results).resolve() / "slurm" / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=10)
        params: dict[str, Any] = {"job_name": self.job_name, "time": self.time_min, "cpus_per_task": self.cpus,
                                  "additional_parameters": dict(self.options)}
        if self.partition:
            params["partition"] = self.partition
        if self.gpus:
            params["gpus_per_task"] = int(self.gpus)
        executor.update_parameters(**params)
        try:
            with executor.batch():
                jobs = [executor.submit(ArrayTask(), task, str(results), self.cpus) for task in tasks]
        except Exception as exc:  # sbatch refused (submitit raises its own or subprocess errors)
            raise ConfigError(f"--launcher slurm: sbatch refused the job array: {_first_line(getattr(exc, 'stderr', None) or str(exc))}") from exc
        array = jobs[0].job_id.split("_")[0]
        print(f"slurm: job array {array}, {len(jobs)} task(s); logs in {folder}", flush=True)
        try:
            return self.wait(dict(zip(jobs, tasks)))
        except KeyboardInterrupt:
            print(f"slurm: stopped waiting; job array {array} keeps running (squeue -j {array}; scancel {array} "
                  "stops it); run the same command again to see what is stored", flush=True)
            raise

    def wait(self, pending: dict[Any, Task]) -> list[dict[str, Any]]:
        """Until every job has a result or has left the queue without one."""
        out: list[dict[str, Any]] = []
        gone: dict[Any, int] = {}
        delay = 1.0
        while pending:
            queued = _queued({job.job_id.split("_")[0] for job in pending})
            for job, task in list(pending.items()):
                if job.paths.result_pickle.exists():
                    summary = _result(job, task)
                elif queued is not None and job.job_id not in queued:
                    gone[job] = gone.get(job, 0) + 1
                    if gone[job] < 3:  # a shared file system may show the result file a moment late
                        continue
                    summary = failed(task, f"SLURM job {job.job_id} ended without a result (killed, out of "
                                           f"memory or node lost?); its log: {job.paths.stderr}")
                else:
                    continue
                del pending[job]
                out.append(summary)
                print(outcome(task.label, summary), flush=True)
            if pending:
                time.sleep(delay)
                delay = min(POLL_MAX, delay * 1.5)
        return out


def _queued(arrays: set[str]) -> set[str] | None:
    """Ids (``ARRAY_TASK``) of the array tasks still queued or running; None if squeue failed."""
    try:
        done = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(arrays))],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode:
        # squeue refuses ids it no longer knows: then none of them is queued.
        return set() if "Invalid job id" in done.stderr else None
    return set(done.stdout.split())


def _result(job: Any, task: Task) -> dict[str, Any]:
    try:
        return job.result()
    except Exception as exc:  # the task raised on the node: submitit hands back its traceback
        return failed(task, f"SLURM job {job.job_id} failed: {_first_line(str(exc))}; its log: {job.paths.stderr}")


try:
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - without submitit this launcher refuses in check()
    _Checkpointable = object  # type: ignore[assignment,misc]


class ArrayTask(_Checkpointable):  # type: ignore[misc,valid-type]
    """One array task. Checkpointable: at ``--slurm-time`` or on preemption submitit requeues it
    with the same arguments, and the run resumes from its last complete epoch."""

    def __call__(self, task: Task, results: str, cpus: int) -> dict[str, Any]:
        return execute(task, results, cpus)


LAUNCHER = SlurmLauncher
