"""The ``--launcher`` flags shared by ``harness grid`` and ``harness tune``, and the launcher they pick."""

from __future__ import annotations

import argparse

from harness.errors import ConfigError
from harness.launchers import LAUNCHERS, Launcher, launcher_class
from harness.options import number_type

#: Flags of one engine: refused with another ``--launcher``.
ENGINE_FLAGS = {
    "slurm": ("slurm_partition", "slurm_time", "slurm_cpus_per_task", "slurm_gpus_per_task", "slurm_opt"),
    "ray": ("ray_address", "ray_cpus_per_task", "ray_gpus_per_task"),
}


def add_launcher_options(parser: argparse.ArgumentParser, what: str = "runs") -> None:
    g = parser.add_argument_group("launcher (where the work runs; see docs/cluster.md)")
    g.add_argument("--launcher", default="local", choices=list(LAUNCHERS),
                   help=f"local: this machine; slurm: the {what} as one SLURM job array through submitit; ray: as "
                        "Ray tasks on --ray-address (default: local)")
    g.add_argument("--slurm-partition", metavar="NAME", help="SLURM partition (default: the cluster's default)")
    g.add_argument("--slurm-time", metavar="TIME", help="time limit of each task: minutes or H:M:S; a task that "
                   "reaches it is requeued and resumes (default: 60)")
    g.add_argument("--slurm-cpus-per-task", type=number_type(integer=True, minimum=1), metavar="N", help="CPUs per task (default: 2)")
    g.add_argument("--slurm-gpus-per-task", type=number_type(integer=True, minimum=0), metavar="N", help="GPUs per task (default: 0)")
    g.add_argument("--slurm-opt", action="append", metavar="KEY=VALUE",
                   help="any further sbatch option, repeatable: account=lab, mem=16G, qos=high, constraint=a100")
    g.add_argument("--ray-address", metavar="HOST:PORT",
                   help="a running Ray cluster's head (HOST:PORT of `ray start --head`, or ray://HOST:10001) "
                        "(default: start a Ray on this machine for the command)")
    g.add_argument("--ray-cpus-per-task", type=number_type(integer=True, minimum=1), metavar="N", help="CPUs per task (default: 1)")
    g.add_argument("--ray-gpus-per-task", type=number_type(minimum=0), metavar="N",
                   help="GPUs per task; a fraction packs several runs on one GPU (default: 0)")


def launcher_from_args(args: argparse.Namespace, *, jobs: int = 1, job_name: str = "harness") -> Launcher:
    """The launcher the flags ask for, its flags checked (nothing contacted yet: see ``check``)."""
    name = args.launcher
    for engine, flags in ENGINE_FLAGS.items():
        given = [f for f in flags if getattr(args, f, None) is not None]
        if given and engine != name:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{flag} is a flag of --launcher {engine}, not of --launcher {name}")
    cls = launcher_class(name)
    if name == "slurm":
        from harness.launchers.slurm import parse_options, parse_time

        return cls(cpus=args.slurm_cpus_per_task or 2, gpus=args.slurm_gpus_per_task or 0,
                   partition=args.slurm_partition, time_min=parse_time(args.slurm_time or "60"),
                   options=parse_options(args.slurm_opt), job_name=job_name)
    if name == "ray":
        return cls(cpus=args.ray_cpus_per_task or 1, gpus=args.ray_gpus_per_task or 0, address=args.ray_address)
    if name == "local":
        return cls(jobs=jobs)
    raise ConfigError(f"--launcher {name!r}: choose one of {', '.join(LAUNCHERS)}")  # pragma: no cover
