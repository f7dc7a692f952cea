"""``harness grid``: run every Table 1 configuration that is not stored yet."""

from __future__ import annotations

import argparse
import shlex

from tabulate import tabulate

from harness.errors import ConfigError
from harness.options import number_type
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
    from harness.commands.run import data_options, open_data
    from harness.data.splits import LOCO, loco_specs
    from harness.grid import fold_splits, grid_points, pending, run_distributed, run_local, select_variants
    from harness.results.store import ResultsStore
    from harness.runner.config import RunConfig

    if args.table != 1:
        raise ConfigError("--table 2 needs no training: run `harness table --table 2`")
    loco = args.split == LOCO
    base = RunConfig(data=args.data, dataset=args.dataset, data_options=data_options(args), preset=args.preset,
                     epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, precision=args.precision,
                     unseen=args.unseen, split=None if loco else args.split)
    base.resolved()  # bad values fail here, before any data is read or written
    ds = open_data(args)
    base = base.for_dataset(ds)  # a bad split fails here
    variants = select_variants(args.variants.split(",") if args.variants else None, extra=not args.no_extra)
    if loco and args.folds:
        raise ConfigError("--split loco and --folds are two fold protocols; give one")
    splits = loco_specs(ds) if loco else fold_splits(ds, args.folds)
    points = grid_points(base, variants, args.mels, list(range(args.seeds)), splits)
    store = ResultsStore(results_dir(args.results))
    todo = pending(points, store)
    folds = f" × {len(splits)} held-out domains" if loco else (f" × {len(splits)} folds" if splits else "")
    print(f"grid: {len(points)} runs ({len(variants)} variants × {len(args.mels)} mel settings × {args.seeds} seeds{folds}), "
          f"{len(points) - len(todo)} already stored, {len(todo)} to run", flush=True)
    if args.dry_run:
        rows = [[p.variant.name, p.cfg.n_mels, p.cfg.seed, p.cfg.split, p.run_id] for p in todo]
        print(tabulate(rows, headers=["variant", "mels", "seed", "split", "run id"], tablefmt="simple"))
        return 0
    # Features once, here, with every core: the workers then only read the cache instead of
    # extracting the same features side by side.
    from harness.features.cache import load_features
    from harness.features.logmel import FeatureConfig

    for mels in sorted({p.cfg.n_mels for p in (points if args.storage else todo)}):
        load_features(ds, FeatureConfig(n_mels=mels), progress=not args.no_progress)
    if args.storage:
        n = run_distributed(points, store.root, args.storage, progress=not args.no_progress)
        print(f"grid study has {n} trials; this worker found no more grid points")
        return 0
    summaries = run_local(todo, store.root, jobs=args.jobs, progress=not args.no_progress)
    failed = [s for s in summaries if s.get("status") != "complete"]
    for s in failed:
        print(f"failed: {s['run_id']}: {s.get('error', '')}")
    print("next: harness table" + (f" --results {shlex.quote(args.results)}" if args.results else ""))
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from harness.commands.run import add_data_options

    p = sub.add_parser(
        "grid", help="run every Table 1 configuration not stored yet",
        description="Train every configuration of the paper's Table 1 (SubSpectralNet, FCNN, FCNN-mixup, FCNN-spec, "
                    "FCNN-mixup-spec, FCNN-triplet, FCNN-triplet-spec, plus the DCASE baseline and FCNN-triplet-random) "
                    "for each mel setting and seed. Completed runs are skipped, killed runs resume. Several runs share "
                    "the machine with --jobs; several machines share the grid with --storage.")
    p.add_argument("--table", type=int, default=1, choices=[1, 2], help="which table to produce runs for (default: 1)")
    p.add_argument("--mels", type=_ints, default=[40, 200], help="comma-separated mel settings (default: 40,200)")
    p.add_argument("--seeds", type=number_type(integer=True, minimum=1), default=2, help="seeds per configuration, 0..N-1 (default: 2, as the paper)")
    p.add_argument("--variants", help="comma-separated variant names to run (default: all rows)")
    p.add_argument("--no-extra", action="store_true", help="only the paper's rows (skip DCASE baseline and FCNN-triplet-random)")
    p.add_argument("--preset", default="quick", choices=["paper", "quick"], help="training preset (default: quick)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--lr", type=float, help="override the preset's learning rate")
    p.add_argument("--split",
                   help="the dataset's default (fold1 on TAU, the paper's protocol; fold:1 on cross-validation data), loco "
                        "(every domain held out in turn: one run per city or device trained on the others' official "
                        "training rows and scored on all clips of the held-out one; `harness table --split loco` pools "
                        "the folds), or one split as in `harness run --split` (default: the dataset's default)")
    p.add_argument("--unseen", default="official", choices=["official", "all"], help="unseen-city protocol (see harness run --help)")
    add_data_options(p)
    p.add_argument("--folds", metavar="all|K,K", help="cross-validation data: run every configuration on these folds "
                                                    "(--split fold:K each); `harness table` pools them (mean ± std over folds)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N; auto spreads jobs over all GPUs")
    p.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"], help="fp32 | bf16 | auto (see harness run --help; default: auto)")
    p.add_argument("--jobs", type=number_type(integer=True, minimum=1), default=1, help="runs at once on this machine (default: 1)")
    p.add_argument("--storage", help="Optuna RDB URL (e.g. postgresql://user@host/db) shared by workers on several machines")
    p.add_argument("--results", help="results folder (default: $HARNESS_RESULTS or ./results); shared by all workers")
    p.add_argument("--dry-run", action="store_true", help="list the runs that would be trained, train nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_grid)
