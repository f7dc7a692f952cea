"""Real SLURM and Ray engines on this machine for the launcher tests, loopback and free ports.

``.ci/run`` starts both and sets ``HARNESS_TEST_SLURM_CONF`` and ``HARNESS_TEST_RAY_ADDRESS``;
without them each is started here (SLURM through ``.ci/slurm-up``, which needs Debian's
``slurm-wlm`` and ``munge`` and root) and stopped when the tests end. Where an engine cannot be
started, :class:`Unavailable` carries the reason the tests are skipped with.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CI = Path(__file__).resolve().parent.parent / ".ci"


class Unavailable(Exception):
    """Why an engine cannot be started here (the skip reason)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def slurm(folder: Path) -> Iterator[str]:
    """A single-node SLURM; yields its ``SLURM_CONF``."""
    if os.environ.get("HARNESS_TEST_SLURM_CONF"):
        yield os.environ["HARNESS_TEST_SLURM_CONF"]
        return
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch")
               if not shutil.which(c, path=os.environ.get("PATH", "") + ":/usr/sbin")]
    if missing:
        raise Unavailable(f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge; .ci/run does)")
    if os.geteuid() != 0:
        raise Unavailable("the single-node test SLURM runs its daemons as root; this is not root")
    folder = Path(folder)  # sockets and pid files live here: keep the path short
    done = subprocess.run([str(CI / "slurm-up"), str(folder)], capture_output=True, text=True, timeout=120)
    try:
        if done.returncode:
            raise Unavailable(f"the single-node SLURM did not start: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        yield str(folder / "slurm.conf")
    finally:
        subprocess.run([str(CI / "slurm-down"), str(folder)], check=False)


@contextmanager
def ray_head(folder: Path, cpus: int = 2) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray head (``ray start --head``, ``cpus`` CPUs, its own temp folder); yields its address and
    the environment a client needs. Ray listens on every interface of the machine whatever
    ``--node-ip-address`` says, so the head takes clients with its own random token only."""
    if os.environ.get("HARNESS_TEST_RAY_ADDRESS"):
        yield os.environ["HARNESS_TEST_RAY_ADDRESS"], {}
        return
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        raise Unavailable("Ray is not installed in this environment (pip install 'harness[ray]')")
    port = free_port()
    log = open(Path(folder) / "ray-head.log", "w")
    cmd = [str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", str(cpus), "--num-gpus", "0", "--temp-dir", str(folder), "--include-dashboard=false",
           "--disable-usage-stats", "--ray-client-server-port", str(free_port()),
           "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port())]
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **auth})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and head.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        if head.poll() is not None or time.time() >= deadline:
            tail = (Path(folder) / "ray-head.log").read_text().strip().splitlines()[-1:] or ["?"]
            raise Unavailable(f"`ray start --head` did not come up: {tail[0]}")
        yield f"127.0.0.1:{port}", auth
    finally:
        stop_group(head)
        log.close()


def stop_group(proc: subprocess.Popen, wait: float = 20) -> None:
    """SIGTERM the process group ``proc`` leads (the head and the Ray processes it started), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.wait()
                return
            proc.poll()
            time.sleep(0.2)
    proc.wait()


def holder_of(path: Path) -> int | None:
    """The pid of a process that has ``path`` open (the run's lock: the worker training it)."""
    target = str(path.resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == target:
                    return int(proc.name)
        except OSError:
            continue
    return None
