"""``harness env``: what this machine offers a run: CPU, bf16 support, precision, fused kernels."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from tabulate import tabulate


def environment_rows() -> list[list[str]]:
    from architectures import fused
    from harness.precision import cpu_bf16, cpu_flags, cpu_model, resolve_precision

    flags = cpu_flags()
    rows = [["torch", f"{torch.__version__}, {torch.get_num_threads()} threads"],
            ["CPU", cpu_model()],
            ["CPU bf16 / AMX flags", ", ".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "none"],
            ["native bf16 unit", cpu_bf16() or "none"]]
    precision, why = resolve_precision("auto", torch.device("cpu"))
    rows.append(["--precision auto on cpu", f"{precision} ({why})"])
    if torch.cuda.is_available():
        precision, why = resolve_precision("auto", torch.device("cuda"))
        rows.append(["--precision auto on cuda", f"{precision} ({why}; {torch.cuda.get_device_name()})"])
    else:
        rows.append(["GPU", "none"])
    state = fused.status()
    rows.append(["fused FCNN kernels", "available" if state["available"] else f"unavailable: {state['reason']}"])
    if state["available"]:
        rows.append(["fused dropout", "torch's masks replayed in C" if state["dropout_replay"]
                     else "masks drawn by the dropout module (generator layout not recognised)"])
    return rows


def run(args: argparse.Namespace) -> int:
    print(tabulate(environment_rows(), tablefmt="simple"))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("env", help="show this machine's CPU, bf16 support, precision and fused kernels",
                              description="Show what a run gets on this machine: the CPU and its bf16/AMX flags, "
                                          "what --precision auto resolves to, and whether the fused FCNN kernels "
                                          "are available (they are built into the cache on first use) and, if "
                                          "not, why.")
    p.set_defaults(func=run)
    return p
