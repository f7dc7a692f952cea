"""``harness tune``: search α, γ (and lr) with Optuna on an inner validation split."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from harness.experiment import dump_config
from harness.flags import add_run_options, config_from_args, open_data, track_spec
from harness.errors import TrainingError
from harness.launchers.options import add_launcher_options, launcher_from_args
from harness.options import number_type
from harness.paths import results_dir
from harness.report.summary import summary_table
from harness.tuning.objective import TUNE_EPOCHS, TUNE_LOSS, TUNE_SCORE_LAST

#: Trial workers submitted with ``--launcher slurm|ray`` when ``--n-jobs`` is not given.
WORKERS = 4

def cmd_tune(args: argparse.Namespace) -> int:
    from harness.experiment import apply_config

    args = apply_config(args)
    if args.dump_config:
        print(dump_config(args, "tune"), end="")
        return 0
    track = track_spec(args)
    return search(args, track)


def search(args: argparse.Namespace, track) -> int:
    from harness.features.cache import load_features
    from harness.registry import LOSSES
    from harness.tuning.params import final_run
    from harness.tuning.space import SearchSpace, parse_range
    from harness.tuning.study import TuneSpec, default_jobs, optimize
    from harness.tuning.objective import tuning_config
    from harness.tuning.report import PARAM_LABELS, render, stats
    from harness.tuning.space import LR_RANGE
    from harness.tuning.study import default_study_name

    quick = args.preset == "quick"
    if args.epochs is None and quick:
        args.epochs = TUNE_EPOCHS
    if args.score_last is None:
        args.score_last = TUNE_SCORE_LAST if quick else 10
    cfg = tuning_config(config_from_args(args, val_fraction=args.val_fraction), args.objective)
    cfg.resolved()  # bad options fail here, before any data is read
    takes = LOSSES.get(cfg.loss)[0].options()
    fixed = {k for k in ("alpha", "gamma") if getattr(cfg, k) is not None or k in cfg.loss_options}  # given: not tuned
    space = SearchSpace(
        alpha=parse_range(args.alpha_range, "--alpha-range") if "alpha" in takes and "alpha" not in fixed else None,
        gamma=parse_range(args.gamma_range, "--gamma-range") if "gamma" in takes and "gamma" not in fixed else None,
        lr=(parse_range(args.lr_range, "--lr-range") if args.lr_range else LR_RANGE) if args.tune_lr else None,
    )
    launcher = launcher_from_args(args, job_name="harness-tune")
    n_jobs = args.n_jobs or (default_jobs(cfg.device) if launcher.name == "local" else WORKERS)
    spec = TuneSpec(base=cfg, space=space, objective=args.objective, results=str(results_dir(args.results)),
                    study_name=args.study or "", trials=args.trials, storage=args.storage, timeout=args.timeout,
                    sampler_seed=args.sampler_seed, pruner=args.pruner, warmup=args.prune_warmup, n_jobs=n_jobs,
                    threads=max(1, (os.cpu_count() or 1) // n_jobs))  # options checked before any data is read
    launcher.check()  # no SLURM, an unknown partition, an unreachable Ray: one line, before any work
    ds = open_data(args)
    cfg = cfg.for_dataset(ds)
    spec = replace(spec, base=cfg, study_name=args.study or default_study_name(cfg, args.objective))
    load_features(ds, cfg.feature_config(), progress=not args.no_progress)  # once, before workers
    ranges = ", ".join(f"{PARAM_LABELS[k]} {lo:g}..{hi:g}" for k, (lo, hi) in space.to_dict().items())
    print(f"study {spec.study_name} ({spec.dashboard_target}): {args.objective} accuracy on inner validation, "
          f"{ranges} (log), {args.trials} trials, {n_jobs} job(s), pruner {args.pruner}")
    track = track.open_parent(spec.study_name, {"study": spec.study_name, "objective": args.objective,
                                                "trials": args.trials, "space": space.to_dict(), **cfg.to_dict()})
    spec = replace(spec, track=track if track.kinds else None)
    try:
        if launcher.name == "local":
            study = optimize(spec)
        else:
            from harness.launchers.study import launch_study

            study = launch_study(spec, args, launcher, progress=not args.no_progress)
    except BaseException as exc:
        track.close_parent("stopped" if isinstance(exc, KeyboardInterrupt) else "failed", {})
        raise
    done = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    track.close_parent("complete", {"best_value": study.best_value} if done else {})
    print(render(study, spec.started, spec.study_dir, spec.dashboard_target))
    s = stats(study, spec.started)
    if s.session_failed and not s.session_finished:
        raise TrainingError(f"all {s.session_failed} trial(s) of this session failed; last: {s.last_error or 'see above'}")
    if args.final:
        print("\nfinal: best setting re-trained on the whole training split, scored on evaluate "
              "(the only time tuning reads evaluate labels)")
        print(summary_table(final_run(spec, progress=not args.no_progress)))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune", help="tune α, γ (and lr) with Optuna on an inner validation split",
        description="Search the triplet margin α and weight γ (log-uniform; optionally the learning rate) with a "
                    "seeded TPE sampler and per-epoch pruning. Each trial is an ordinary run stored under "
                    "results/runs/, scored on a validation split carved from the training split by location; the "
                    "evaluate split is never used for selection (only by --final). --trials is the size of the "
                    "study: re-running the command continues it, and several commands or machines on one --storage "
                    "share its trials.")
    add_run_options(p, defaults={"loss": TUNE_LOSS}, helps={
        "loss": f"loss name (default here: {TUNE_LOSS}, the paper's cross-city triplet loss)",
        "epochs": f"epochs of every trial (default: {TUNE_EPOCHS} with --preset quick, else the preset's)",
        "score_last": f"trial value = mean validation accuracy over the last N epochs (default: {TUNE_SCORE_LAST} with "
                      "--preset quick, else 10)",
        "seed": "training seed of every trial (default: 0)"})
    s = p.add_argument_group("search")
    s.add_argument("--trials", type=number_type(integer=True, minimum=1), default=50, help="finished (complete + pruned) trials the study should hold; a re-run continues up to this many (default: 50)")
    s.add_argument("--objective", default="overall", choices=["overall", "unseen", "macro", "unseen-macro"],
                   help="maximise validation accuracy (overall), its class average (macro), or the (macro) accuracy on one "
                        "training domain held out of the tuning train split (unseen, unseen-macro) (default: overall)")
    s.add_argument("--alpha-range", default="0.01,2", metavar="LO,HI", help="log-uniform range of α (default: 0.01,2); --alpha X fixes α instead")
    s.add_argument("--gamma-range", default="0.1,100", metavar="LO,HI", help="log-uniform range of γ (default: 0.1,100); --gamma X fixes γ instead")
    s.add_argument("--tune-lr", action="store_true", help="also tune the learning rate (log-uniform, default range 1e-4,1e-2)")
    s.add_argument("--lr-range", metavar="LO,HI", help="log-uniform range of lr with --tune-lr (default: 1e-4,1e-2)")
    s.add_argument("--val-fraction", type=number_type(above=0, below=1), default=0.2, help="share of training locations held out as inner validation (default: 0.2)")
    s.add_argument("--sampler-seed", type=number_type(integer=True, minimum=0), default=0, help="seed of the TPE sampler (default: 0)")
    s.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"],
                   help="stop unpromising trials early from their per-epoch validation accuracy (default: median)")
    s.add_argument("--prune-warmup", type=number_type(integer=True, minimum=0), default=2, metavar="EPOCHS", help="no trial is pruned before this epoch (default: 2)")
    w = p.add_argument_group("study, storage and workers")
    w.add_argument("--study", metavar="NAME", help="study name (default: <arch>-<loss>-<aug>-m<mels>-<objective>-<dataset hash>)")
    w.add_argument("--storage", metavar="URL", help="Optuna storage: a journal file path, or a database URL such as "
                   "postgresql://user@host/db shared by workers on many machines (default: results/studies/<study>/journal.log)")
    w.add_argument("--n-jobs", type=number_type(integer=True, minimum=1), metavar="K", help="parallel trial processes on this machine "
                   f"(default: 2 on a CPU with 2+ cores, 1 on a GPU); with --launcher slurm|ray, trial workers submitted (default: {WORKERS})")
    w.add_argument("--timeout", type=number_type(above=0), metavar="SECONDS", help="start no new trial after this many seconds")
    w.add_argument("--final", action="store_true", help="after the search, re-train the best setting on the whole training split and score it on evaluate")
    add_launcher_options(p, what="trial workers")
    p.set_defaults(func=cmd_tune)
