"""A grid file read against the command line: the grid's own flags, the ``harness run`` keys its
rows share, its ``[[variant]]`` rows, and each row's run configuration."""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.experiment import canonical_key, dump_values, dumps, flag_keys, merge, read_file, unknown_key_error
from harness.flags import config_from_args, recipe_parser
from harness.grids.variants import GRIDS, TABLE1_GRID, Variant, read_variants
from harness.launchers.options import ENGINE_FLAGS


#: Grid flags that say how and where to run, not what: left out of ``--dump-config``.
EXECUTION_FLAGS = ("jobs", "storage", "results", "dry_run", "no_progress", "variants", "no_extra", "launcher",
                   *(f for flags in ENGINE_FLAGS.values() for f in flags))
#: Grid flags that are the grid's axes, not a run's setting (``--mels`` is a list here, ``--split``
#: may be ``loco``: every domain held out in turn).
AXES = ("mels", "seed", "seeds", "split")


@dataclass
class GridFile:
    """A grid file read against the parsers: the grid's flags, run keys shared by every row, the rows."""

    args: argparse.Namespace
    shared: dict[str, Any]
    variants: tuple[Variant, ...]
    source: str


def read_grid(args: argparse.Namespace) -> GridFile:
    """``--config FILE`` (default: the shipped Table 1 grid) merged under the command line."""
    shipped = GRIDS.get(str(args.table), TABLE1_GRID)
    source = str(args.config or shipped)
    data = read_file(args.config) if args.config else tomllib.loads(shipped.read_text())
    rows = data.pop("variant", None)
    grid_keys, run_keys = flag_keys(args.command_parser), flag_keys(recipe_parser())
    own = {k: v for k, v in data.items() if canonical_key(k) in grid_keys}
    shared = {k: v for k, v in data.items() if k not in own}
    for key in shared:
        if canonical_key(key) not in run_keys or canonical_key(key) in AXES:
            raise unknown_key_error(key, [*grid_keys, *run_keys, "variant"], source)
    variants = read_variants(rows, source) if rows is not None else read_variants(
        tomllib.loads(shipped.read_text())["variant"], str(shipped))
    for v in variants:
        for key in v.settings:
            if canonical_key(key) in AXES:
                raise ConfigError(f"variant {v.name!r}: {key!r} is an axis of the grid; set it at the top level", source)
            if canonical_key(key) not in run_keys:
                raise unknown_key_error(key, [*run_keys, "name", "paper", "baseline", "extra"], source)
    return GridFile(merge(args.command_parser, args, args.given, own, source), shared, variants, source)


def variant_configs(grid: GridFile, variants: list[Variant]) -> list[tuple[Variant, Any]]:
    """Each row's run configuration: ``harness run``'s defaults < the file's shared keys and the
    grid's own flags < the row's keys < flags given on the command line."""
    parser = recipe_parser()
    run_keys = flag_keys(parser)
    grid_keys = flag_keys(grid.args.command_parser)
    both = [k for k in grid_keys if k in run_keys and k not in AXES]
    common = {k: getattr(grid.args, grid_keys[k].dest) for k in both}
    given = {k: v for k, v in common.items() if grid_keys[k].dest in grid.args.given}
    out = []
    for v in variants:
        values = {**grid.shared, **{k: x for k, x in common.items() if x is not None},
                  "arch": v.arch, "loss": v.loss, "aug": v.aug, **v.settings, **given}
        ns = merge(parser, parser.parse_args([]), set(), values, f"{grid.source}: variant {v.name!r}")
        out.append((v, config_from_args(ns)))
    return out


def dump_grid(grid: GridFile) -> str:
    values = {**dump_values(grid.args, grid.args.command_parser, skip=EXECUTION_FLAGS), **grid.shared}
    rows = []
    for v in grid.variants:
        row: dict[str, Any] = {"name": v.name, "arch": v.arch, "loss": v.loss, "aug": v.aug, **v.settings}
        row.update({k: x for k, x in (("paper", v.paper_key), ("baseline", v.baseline)) if x})
        if v.extra:
            row["extra"] = True
        rows.append(row)
    return dumps({**values, "variant": rows},
                 "harness grid: top-level keys are flags of `harness grid`, or of `harness run` shared by every "
                 "variant;\neach [[variant]] is a row: a name and its `harness run` keys "
                 "(see harness/grids/table1.toml)\nrun it with: harness grid --config FILE")
