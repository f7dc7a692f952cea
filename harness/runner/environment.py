"""The training device and the software a run was made with (stored beside every result)."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from harness import __version__
from harness.errors import ConfigError, TrainingError
from harness.precision import cpu_bf16, cpu_model

PACKAGES = ("torch", "torchaudio", "timm", "numpy", "optuna", "pandas", "scipy", "soundfile")


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first GPU when there is one, else the CPU; a missing GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name} asked for CUDA but no GPU is available here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) present")
    elif device.type != "cpu":
        raise ConfigError(f"--device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def git_commit() -> dict[str, Any]:
    """The harness checkout's commit and whether it had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed package: site-packages is no checkout of the harness
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def environment_record(device: torch.device) -> dict[str, Any]:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "harness": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "packages": versions, "git": git_commit(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch_threads": torch.get_num_threads(), "cpu": cpu_model(), "cpu_bf16": cpu_bf16(),
    }
