"""``harness grid``: run every Table 1 configuration that is not stored yet."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace

from tabulate import tabulate

from harness.errors import ConfigError
from harness.flags import add_run_options, open_data
from harness.grids.file import dump_grid, read_grid, variant_configs
from harness.launchers.options import add_launcher_options, launcher_from_args
from harness.options import number_type
from harness.packing import jobs_type
from harness.paths import results_dir


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def cmd_grid(args: argparse.Namespace) -> int:
    from harness.data.splits import LOCO, loco_specs
    from harness.grids.run import (bind_teachers, fold_splits, grid_points, pending, run_distributed, run_local,
                                   select_variants, worker_plan)
    from harness.launchers.grid import collect, grid_tasks
    from harness.results.store import ResultsStore

    grid = read_grid(args)
    args = grid.args
    if args.dump_config:
        print(dump_grid(grid), end="")
        return 0
    if args.table == "2":
        raise ConfigError("--table 2 needs no training: run `harness table --table 2`")
    if args.jobs != "auto" and args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    launcher = launcher_from_args(args, job_name="harness-grid")
    if args.storage and launcher.name != "local":
        raise ConfigError(f"--storage shares a grid between workers started by hand; --launcher {launcher.name} "
                          "starts the workers itself: give one of them")
    loco = args.split == LOCO
    if loco and args.folds:
        raise ConfigError("--split loco and --folds are two fold protocols; give one")
    variants = select_variants(grid.variants, args.variants.split(",") if args.variants else None,
                               extra=not args.no_extra)
    configs = variant_configs(grid, variants)
    for _, cfg in configs:
        cfg.resolved()  # every row's options are checked before any data is read
    subsets = [s.strip() for s in args.subset.split(",") if s.strip()] if args.subset else [None]
    datasets = [open_data(args, announce=i == 0, subset=s) for i, s in enumerate(subsets)]  # missing or broken split files fail here
    points, splits = [], None
    for ds in datasets:
        bound = [(v, replace(cfg, split=None if loco else args.split).for_dataset(ds)) for v, cfg in configs]  # a bad split fails here
        splits = loco_specs(ds) if loco else fold_splits(ds, args.folds)
        points += grid_points(bound, args.mels or [None], list(range(args.seeds)), splits)
    points.sort(key=lambda p: p.cfg.seed)  # stable: seeds slowest, across subsets too
    store = ResultsStore(results_dir(args.results))
    points, waiting = bind_teachers(points, store)
    todo = pending(points, store)
    folds = f" × {len(splits)} held-out domains" if loco else (f" × {len(splits)} folds" if splits else "")
    mels = f"{len(args.mels)} mel settings" if args.mels else "each front end's mel bands"
    per_subset = f" × {len(subsets)} subsets" if len(subsets) > 1 else ""
    print(f"grid: {len(points) + len(waiting)} runs ({len(variants)} variants × {mels}{per_subset} × {args.seeds} seeds{folds}), "
          f"{len(points) - len(todo)} already stored, {len(todo)} to run", flush=True)
    if waiting:
        names = sorted({p.variant.name for p in waiting})
        teachers = sorted({t for p in waiting for t in p.cfg.teachers if t.startswith("best:")})
        print(f"grid: {len(waiting)} run(s) of {', '.join(names)} wait for a complete stored teacher "
              f"({', '.join(teachers)}); looked for again after the other runs", flush=True)
    if args.dry_run:
        rows = [[p.variant.name, p.cfg.n_mels, p.cfg.seed, p.cfg.split, p.run_id] for p in todo]
        rows += [[p.variant.name, p.cfg.n_mels, p.cfg.seed, p.cfg.split, "(waits for " + ", ".join(p.cfg.teachers) + ")"]
                 for p in waiting]
        print(tabulate(rows, headers=["variant", "mels", "seed", "split", "run id"], tablefmt="simple"))
        if launcher.name != "local":
            print(f"launcher {launcher.name}: would submit {len(todo)} task(s), {launcher.resources()}; each runs:")
            print("\n".join(t.shell() for t in grid_tasks(todo, store.root)))
        return 0
    launcher.check()  # no SLURM, an unknown partition, an unreachable Ray: one line, before any work
    # Features once, here, with every core: the workers then only read the cache instead of
    # extracting the same features side by side.
    from harness.features.cache import load_features

    sizes = {}  # (dataset, features) → what --jobs auto needs to estimate a run's GPU memory
    for ds in datasets:  # subsets of one dataset share the cache: extracted for the first, then cache hits
        wanted = {p.cfg.feature_config() for p in (points if args.storage else todo) if p.cfg.dataset_identity == ds.identity}
        for features in sorted(wanted, key=repr):
            feats = load_features(ds, features, progress=not args.no_progress)
            sizes[(ds.identity, features)] = (feats.nbytes, tuple(feats.shape[1:]), len(ds.classes))
    if args.storage:
        n = run_distributed(points, store.root, args.storage, progress=not args.no_progress)
        print(f"grid study has {n} trials; this worker found no more grid points")
        return 0
    plan = worker_plan(todo, args.jobs, sizes) if launcher.name == "local" else None
    if todo and plan and args.jobs == "auto":
        print(f"grid: {plan.jobs} worker(s) ({plan.why})", flush=True)

    def launch(todo: list) -> list:
        if launcher.name == "local":
            return run_local(todo, store.root, progress=not args.no_progress, plan=plan)
        return collect(launcher.run(grid_tasks(todo, store.root), store.root, progress=not args.no_progress), store)

    summaries = launch(todo)
    if waiting:  # distillation rows whose teacher was not stored at the start: it may be now
        ready, still = bind_teachers(waiting, store)
        summaries += launch(pending(ready, store))
        summaries += [{"run_id": p.label(), "status": "failed",
                       "error": f"no complete stored teacher for {', '.join(p.cfg.teachers)} on this dataset and split"}
                      for p in still]
    failed = [s for s in summaries if s.get("status") != "complete"]
    for s in failed:
        print(f"failed: {s['run_id']}: {s.get('error', '')}")
    print("next: harness table" + (f" --table {args.table}" if args.table != "1" else "")
          + (f" --results {shlex.quote(args.results)}" if args.results else ""))
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grid", help="run every Table 1 configuration not stored yet",
        description="Train every configuration of the paper's Table 1 (SubSpectralNet, FCNN, FCNN-mixup, FCNN-spec, "
                    "FCNN-mixup-spec, FCNN-triplet, FCNN-triplet-spec, plus the DCASE baseline and FCNN-triplet-random) "
                    "for each mel setting and seed. Completed runs are skipped, killed runs resume. Several runs share "
                    "the machine with --jobs; several machines share the grid with --storage.")
    p.add_argument("--table", default="1", choices=["1", "2", "methods", "subsets"],
                   help="which shipped grid to run without --config: 1 = the paper's Table 1 (harness/grids/table1.toml); "
                        "methods = FCNN with CE, triplet-city, Frequency-MixStyle, DIR, FMS + triplet, KD and KD + triplet "
                        "from the best stored SubSpectralNet run (harness/grids/methods.toml); subsets = the DCASE 2024 comparison: the "
                        "DCASE 2024 baseline, DCASE 2019 baseline, SubSpectralNet, FCNN and FCNN-triplet-device on each "
                        "TAU 2022 Mobile subset 5,10,25,50,100 (harness/grids/dcase2024.toml) (default: 1)")
    p.add_argument("--mels", type=_ints, help="comma-separated mel settings (default: the grid file's, 40,200 for Table 1; "
                                              "without one each row's front end's bands)")
    p.add_argument("--seeds", type=number_type(integer=True, minimum=1), default=2, help="seeds per configuration, 0..N-1 (default: 2, as the paper)")
    p.add_argument("--variants", help="comma-separated names of the grid's variants to run (default: all rows)")
    p.add_argument("--no-extra", action="store_true", help="only the paper's rows (skip DCASE baseline and FCNN-triplet-random)")
    p.add_argument("--split",
                   help="the dataset's default (fold1 on TAU, the paper's protocol; fold:1 on cross-validation data), loco "
                        "(every domain held out in turn: one run per city or device trained on the others' official "
                        "training rows and scored on all clips of the held-out one; `harness table --split loco` pools "
                        "the folds), or one split as in `harness run --split` (default: the dataset's default)")
    add_run_options(p, only=("preset", "epochs", "batch_size", "lr", "device", "precision", "unseen"),
                    helps={"device": "auto | cpu | cuda | cuda:N; auto spreads jobs over all GPUs (default: auto)"})
    p.add_argument("--folds", metavar="all|K,K", help="cross-validation data: run every configuration on these folds "
                                                    "(--split fold:K each); `harness table` pools them (mean ± std over folds)")
    p.add_argument("--jobs", type=jobs_type, default=1,
                   help="runs at once on this machine, each in its own process; auto = as many as fit: on a GPU from its "
                        "free memory and each run's estimated footprint, spread over the GPUs with --device auto "
                        "(docs/gpu.md); on a CPU 2 (default: 1)")
    p.add_argument("--storage", help="Optuna RDB URL (e.g. postgresql://user@host/db) shared by workers on several machines")
    p.add_argument("--dry-run", action="store_true", help="list the runs that would be trained, train nothing")
    add_launcher_options(p)
    p.add_argument("--config", metavar="FILE",
                   help="grid file listing the variants (TOML; default: the shipped Table 1 grid, harness/grids/table1.toml); "
                        "flags on the command line override it")
    p.add_argument("--dump-config", action="store_true",
                   help="print the grid in effect as a grid file to copy and edit, and exit")
    p.set_defaults(func=cmd_grid)
