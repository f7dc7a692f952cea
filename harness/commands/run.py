"""``harness run``: train and evaluate one configuration and store its record."""

from __future__ import annotations

import argparse
from typing import Any

from tabulate import tabulate

from harness.options import split_pairs
from harness.paths import results_dir
from harness.runner.config import AUGMENTATIONS, PRESETS, RunConfig


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options shared by ``run``, ``tune`` and ``grid``."""
    g = p.add_argument_group("what to train")
    g.add_argument("--arch", default="fcnn", help="architecture name (see `harness list`), e.g. fcnn, subspectralnet, dcase-baseline, timm/resnet18 (default: fcnn)")
    g.add_argument("--arch-opt", action="append", metavar="KEY=VALUE", help="architecture option, repeatable (see `harness list`)")
    g.add_argument("--loss", default="ce", help="loss name: ce, triplet-city, triplet-random, triplet-device (default: ce)")
    g.add_argument("--loss-opt", action="append", metavar="KEY=VALUE", help="loss option, repeatable, e.g. normalize=false, band_weight=0.5; values are typed from the loss's declaration (see `harness list`)")
    g.add_argument("--aug", default="none", help=f"augmentation: {' | '.join(AUGMENTATIONS)} (default: none)")
    g.add_argument("--mels", type=int, default=40, help="log-mel bands: 40 or 200 in the paper (default: 40)")
    g.add_argument("--alpha", type=float, help="triplet margin α, short for --loss-opt alpha=X (default 0.2, triplet losses only)")
    g.add_argument("--gamma", type=float, help="triplet weight γ, short for --loss-opt gamma=X (default 10, triplet losses only)")
    g.add_argument("--mixup-alpha", type=float, default=0.4, help="mixup Beta(α, α) parameter (default: 0.4)")
    t = p.add_argument_group("how to train")
    t.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                   help="paper: Adam lr 0.001, 200 epochs, batch 32, score = mean of the last 10 epochs; quick: 30 epochs, score = mean of the last 5 (default: quick)")
    t.add_argument("--epochs", type=int, help="epochs (default: from the preset)")
    t.add_argument("--batch-size", type=int, help="batch size (default: from the preset, 32)")
    t.add_argument("--lr", type=float, help="Adam learning rate (default: from the preset, 0.001)")
    t.add_argument("--score-last", type=int, help="score = mean accuracy over the last N epochs (default: from the preset: "
                   f"{PRESETS['paper']['score_last']} for paper, as the paper; {PRESETS['quick']['score_last']} for quick)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto = GPU if present)")
    t.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"],
                   help="fp32, or bf16 autocast (loss and optimiser state stay fp32); auto = bf16 where the device has native bf16 and it was measured faster, else fp32 (`harness env` shows the choice; default: auto)")
    d = p.add_argument_group("data and results")
    add_data_options(d)
    d.add_argument("--split", help="the dataset's official holdout (fold1 on TAU), fold:K on cross-validation data "
                                   "(ESC-50, UrbanSound8K), leave-one-domain-out:DOMAIN (leave-one-city-out:CITY), or "
                                   "loco:DOMAIN (one fold of the leave-one-domain-out protocol, scored on every clip of "
                                   "the held-out domain) (default: the dataset's default: fold1, or fold:1)")
    d.add_argument("--unseen", default="official", choices=["official", "all"],
                   help="unseen-domain clips: official = those in the official test split; all = plus the unseen-domain "
                        "clips in no split (TAU 2019: 410 vs 1,440 clips of the unseen city, the paper's protocol)")
    d.add_argument("--results", help="results folder (default: $HARNESS_RESULTS or ./results)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars (a line per epoch is still printed; the per-batch bar shows only on a terminal anyway)")


def add_data_options(d: argparse._ActionsContainer) -> None:
    """``--data``, ``--dataset``, ``--subset``, ``--data-opt``: which data, read by which plugin."""
    d.add_argument("--data", default="synthetic",
                   help="dataset folder as distributed (its layout is detected and named), a manifest .csv, "
                        "or 'synthetic' for the embedded synthetic dataset (default)")
    d.add_argument("--dataset", metavar="NAME", help="read --data with this dataset plugin instead of detecting the "
                                                     "layout (see `harness list --kind data`)")
    d.add_argument("--subset", help="a subset the dataset plugin defines, e.g. esc10 for esc50")
    d.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="dataset plugin option, repeatable (see `harness list --kind data`)")


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The dataset plugin's options from ``--subset`` and ``--data-opt``."""
    opts: dict[str, Any] = dict(split_pairs(getattr(args, "data_opt", None), "--data-opt"))
    if getattr(args, "subset", None):
        opts["subset"] = args.subset
    return opts


def open_data(args: argparse.Namespace):
    """The dataset the command line names, saying which layout was detected."""
    from harness.data.registry import open_dataset

    return open_dataset(args.data, dataset=args.dataset, progress=not args.no_progress, announce=True,
                        **data_options(args))


def config_from_args(args: argparse.Namespace, **extra: Any) -> RunConfig:
    return RunConfig(
        arch=args.arch, loss=args.loss, aug=args.aug, n_mels=args.mels, alpha=args.alpha, gamma=args.gamma,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=getattr(args, "seed", 0) or 0,
        data=args.data, dataset=args.dataset, data_options=data_options(args), split=args.split, unseen=args.unseen, device=args.device, precision=args.precision, preset=args.preset,
        score_last=args.score_last, mixup_alpha=args.mixup_alpha, arch_options=split_pairs(args.arch_opt, "--arch-opt"),
        loss_options=split_pairs(args.loss_opt, "--loss-opt"),
        **extra,
    )


def summary_table(s: dict[str, Any]) -> str:
    pct = lambda v: "-" if v is None or v != v else f"{100 * float(v):.2f}"  # noqa: E731
    k = s.get("score_window", 10)
    rows = [
        ["run", s["run_id"]],
        ["config", f"{s['arch']} · {s['loss']} · aug {s['aug']} · {s['n_mels']} mels · seed {s['seed']}"],
        ["dataset", f"{s['dataset_kind']} ({s['dataset']})"],
        [f"overall acc % (mean last {k} / final)", f"{pct(s['acc_score'])} / {pct(s['acc_final'])}"],
        [f"unseen acc % [{s['unseen_domains']}] (mean last {k} / final)", f"{pct(s['unseen_score'])} / {pct(s['unseen_final'])}"],
        ["parameters", f"{int(s['params']):,}"],
        ["wall time", f"{float(s['wall_s']):.1f} s"],
        ["device", f"{s['device']} · {s.get('precision', 'fp32')}"],
    ]
    return tabulate(rows, tablefmt="simple")


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner.train import run

    cfg = config_from_args(args)
    if args.params_from:
        from harness.tune import best_params

        cfg = best_params(args.params_from, cfg, results_dir(args.results))
    results = results_dir(args.results)
    summary = run(cfg, results, force=args.force, progress=not args.no_progress, verbose=True)
    if summary.get("reused"):
        print(f"already complete: {results / summary['run_dir']} (use --force to retrain)")
    print(summary_table(summary))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="train and evaluate one configuration",
        description="Train and evaluate one (architecture, loss, augmentation, features, seed) configuration, "
                    "store its record under results/runs/<run-id>/ and print a summary. An identical completed "
                    "run is not retrained; a killed run resumes from its last complete epoch.")
    add_run_options(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--force", action="store_true", help="retrain even if this exact run is already stored")
    p.add_argument("--params-from", metavar="STUDY", help="take α, γ (and lr if tuned) from the best trial of this Optuna study")
    p.set_defaults(func=cmd_run)
