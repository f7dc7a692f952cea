"""A grid's missing runs as launcher tasks, and the results index checked after remote workers."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.launchers.task import Task, absolute
from harness.results.store import ResultsStore


def point_task(point: Any, results: str | Path, run_parser: argparse.ArgumentParser) -> Task:
    """A grid point (``harness.grids.run.GridPoint``) as a task: its resolved configuration, which the
    worker trains under the same run id, and the ``harness run`` command that trains it alone."""
    from harness.experiment import flag_keys, to_argv
    from harness.rerun import record_flags

    cfg = replace(point.cfg, data=absolute(point.cfg.data),
                  data_paths={k: absolute(v) for k, v in point.cfg.data_paths.items()})
    defaults = vars(run_parser.parse_args([]))
    keys = flag_keys(run_parser)
    values = {k: v for k, v in record_flags(cfg, run_parser).items() if v != defaults.get(keys[k].dest)}
    argv = to_argv(values, keys, point.label())
    command = ("harness", "run", *argv, "--results", str(Path(results).resolve()), "--no-progress")
    return Task(label=point.label(), command=command, cfg=cfg, run_id=point.run_id)


def grid_tasks(points: list[Any], results: str | Path) -> list[Task]:
    """The grid points as tasks, each with the ``harness run`` command that trains it alone."""
    from harness.flags import recipe_parser

    parser = recipe_parser()
    return [point_task(p, results, parser) for p in points]


def collect(summaries: list[dict[str, Any]], store: ResultsStore) -> list[dict[str, Any]]:
    """The remote workers' summaries, with their runs in the index: each worker indexed its own
    run under the index lock, and this puts back any row a file system without working locks
    between hosts lost, from the run's ``summary.json``."""
    store.index_runs([s["run_id"] for s in summaries if s.get("status") == "complete"])
    return summaries
