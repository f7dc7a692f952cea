"""``harness list``: every registered dataset, architecture, loss and augmentation, with its options and defaults."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from tabulate import tabulate

from harness.data.registry import DATASETS
from harness.options import kind_of
from harness.registry import ARCHITECTURES, AUGMENTATIONS, LOSSES, Registry


def format_options(params: dict[str, inspect.Parameter]) -> str:
    """``name: type = default`` per declared option, the type as values given on the command line are parsed."""
    out = []
    for name, p in params.items():
        default = None if p.default is p.empty else p.default
        out.append(f"{name}: {kind_of(p).label()} = {default!r}" if isinstance(default, str)
                   else f"{name}: {kind_of(p).label()} = {default}")
    return ", ".join(out) or "-"


def plugin_rows(registry: Registry) -> list[list[str]]:
    """One row per registered name: name, description, options (origin noted for third-party ones)."""
    registry.load()
    rows = []
    for name in registry.names():
        plugin = registry.plugins[name]
        builtin = plugin.module.startswith(registry.builtin_package.rsplit(".", 1)[0])
        desc = plugin.description if builtin else f"{plugin.description} [{plugin.module}]".strip()
        rows.append([name, desc, format_options(plugin.parameters(registry.hidden_args))])
    return rows


def render(kind: str = "all") -> str:
    parts: list[str] = []
    titles = {"data": "Datasets (--dataset NAME forces one; --data PATH detects the layout; options via --subset / --data-opt KEY=VALUE)",
              "arch": "Architectures (--arch, options via --arch-opt KEY=VALUE)",
              "loss": "Losses (--loss; alpha/gamma via --alpha/--gamma, others via --loss-opt KEY=VALUE)",
              "aug": "Augmentations (--aug NAME,NAME…, combinable; options via --aug-opt NAME.KEY=VALUE)"}
    for what, registry in (("data", DATASETS), ("arch", ARCHITECTURES), ("loss", LOSSES), ("aug", AUGMENTATIONS)):
        if kind not in (what, "all"):
            continue
        parts.append(titles[what])
        rows = plugin_rows(registry)
        if what == "data":
            rows = [r + [DATASETS.layouts[r[0]].looks_for if r[0] in DATASETS.layouts else "(use --dataset)"] for r in rows]
        headers = ["name", "description", "options (type = default)"] + (["detected from"] if what == "data" else [])
        parts.append(tabulate(rows, headers=headers))
        for prefix, plugin in sorted(registry.prefixes.items()):
            parts.append(f"{prefix}<model>: {plugin.description}; extra --arch-opt options go to timm.create_model"
                         if prefix == "timm/" else f"{prefix}<name>: {plugin.description}")
        parts.append("")
    parts.append("Third-party plugins register through the entry-point groups "
                 f"{DATASETS.entry_point_group!r}, {ARCHITECTURES.entry_point_group!r}, {LOSSES.entry_point_group!r} "
                 f"and {AUGMENTATIONS.entry_point_group!r}.")
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    print(render(args.kind))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("list", help="list datasets, architectures, losses and augmentations with their options",
                              description="List every registered dataset, architecture, loss and augmentation with its one-line "
                                          "description and its options (with defaults); datasets also say what "
                                          "their layout is detected from.")
    p.add_argument("--kind", choices=["data", "arch", "loss", "aug", "all"], default="all", help="what to list (default: all)")
    p.set_defaults(func=run)
    return p
