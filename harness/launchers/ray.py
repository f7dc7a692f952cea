"""``--launcher ray``: the tasks as Ray tasks on a cluster (``--ray-address``) or on a Ray
started on this machine for the command.

Each task asks Ray for its CPUs and GPUs (fractions of a GPU pack several runs on one). Workers
get this shell's ``HARNESS_*`` settings (the feature cache) through the job's runtime
environment. A worker that dies is retried by Ray, and the run resumes from its last epoch; the
submitting command waits and prints each run as it ends (Ctrl-C ends the Ray job and its tasks;
the next submission resumes them).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import ConfigError
from harness.launchers.task import Launcher, Task, failed, outcome, worker_environment
from harness.launchers.worker import execute

#: Ray's default ports: the GCS of ``ray start --head``, the Ray Client server.
GCS_PORT = 6379
CLIENT_PORT = 10001
#: Times Ray starts a task again after its worker died.
MAX_RETRIES = 2


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--launcher ray needs Ray: pip install 'harness[ray]'") from exc
    return ray


def host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``ray://HOST[:PORT]`` → (host, port)."""
    client = address.startswith("ray://")
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--ray-address {address!r}: bad port ({exc})") from exc
    if not parts.hostname:
        raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT (the head's `ray start --head` address) or ray://HOST:PORT")
    return parts.hostname, port or (CLIENT_PORT if client else GCS_PORT)


@dataclass
class RayLauncher(Launcher):
    name = "ray"
    address: str | None = None

    def resources(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a Ray started on this machine"
        gpus = f", {self.gpus:g} GPU" if self.gpus else ""
        return f"one Ray task each on {where}: {self.cpus} CPU{gpus}"

    def check(self) -> None:
        _ray()
        if not self.address or self.address == "auto":
            return
        host, port = host_port(self.address)
        try:
            socket.create_connection((host, port), timeout=10).close()
        except OSError as exc:
            raise ConfigError(f"--ray-address {self.address}: unreachable ({exc.strerror or exc}); "
                              "is `ray start --head` running there?") from exc

    def run(self, tasks: list[Task], results: Path, *, progress: bool = True) -> list[dict[str, Any]]:
        ray = _ray()
        env = worker_environment()
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs.update(include_dashboard=False, num_cpus=os.cpu_count() or 1)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--ray-address {self.address or '(local)'}: cannot connect to Ray ({' '.join(str(exc).split())[:300]})") from exc
        try:
            remote = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=MAX_RETRIES)(execute)
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            refs = {remote.remote(t, str(Path(results).resolve()), self.cpus): t for t in tasks}
            print(f"ray: {len(refs)} task(s) on {where} ({ray.cluster_resources().get('CPU', 0):g} CPUs)", flush=True)
            out = []
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        summary = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died more often than Ray retries
                        summary = failed(task, f"Ray task failed: {str(exc).strip().splitlines()[0]}")
                    out.append(summary)
                    print(outcome(task.label, summary), flush=True)
            return out
        finally:
            ray.shutdown()


LAUNCHER = RayLauncher
