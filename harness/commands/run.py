"""``harness run``: train and evaluate one configuration and store its record."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tabulate import tabulate

from harness.errors import ConfigError
from harness.options import split_pairs
from harness.precision import PRECISIONS
from harness.features.logmel import FEATURE_PRESETS, feature_preset
from harness.paths import results_dir
from harness.runner.config import OPTIMIZERS, PRESETS, SCHEDULES, RunConfig


def split_aug_pairs(pairs: list[str] | None) -> dict[str, dict[str, str]]:
    """``--aug-opt NAME.KEY=VALUE`` pairs as ``{name: {key: value}}`` (typed later from the plugin's declaration)."""
    flat = split_pairs(pairs, "--aug-opt")
    out: dict[str, dict[str, str]] = {}
    for target, value in flat.items():
        name, dot, key = target.rpartition(".")
        if not dot or not name or not key:
            raise ConfigError(f"--aug-opt expects NAME.KEY=VALUE (e.g. freq-mixstyle.p=0.4), got {target}={value!r}")
        out.setdefault(name.strip(), {})[key.strip()] = value
    return out


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options shared by ``run``, ``tune`` and ``grid``."""
    g = p.add_argument_group("what to train")
    g.add_argument("--arch", default="fcnn", help="architecture name (see `harness list`), e.g. fcnn, subspectralnet, dcase-baseline, timm/resnet18 (default: fcnn)")
    g.add_argument("--arch-opt", action="append", metavar="KEY=VALUE", help="architecture option, repeatable (see `harness list`)")
    g.add_argument("--loss", default="ce", help="loss name (see `harness list`): ce, triplet-city, triplet-random, triplet-device, ... (default: ce)")
    g.add_argument("--loss-opt", action="append", metavar="KEY=VALUE", help="loss option, repeatable, e.g. normalize=false, band_weight=0.5; values are typed from the loss's declaration (see `harness list`)")
    g.add_argument("--aug", help="augmentations, comma-separated, e.g. freq-mixstyle,dir,roll or mixup,spec (see `harness list`; default: from the preset, none)")
    g.add_argument("--aug-opt", action="append", metavar="NAME.KEY=VALUE", help="augmentation option, repeatable, e.g. freq-mixstyle.p=0.5, dir.p=0.6, roll.max_s=0.2, mixup.alpha=0.4; typed from the augmentation's declaration (see `harness list`)")
    g.add_argument("--teacher", action="append", metavar="RUN_ID", help="stored run to distil from with --loss kd / kd-triplet-city "
                                                                         "(best:ARCH = the best complete stored ARCH run on this dataset and split); "
                                                                         "repeat for an ensemble (mean of the teachers' logits)")
    g.add_argument("--dir-irs", metavar="DIR", help="folder of device impulse-response WAVs (any rate and length) for --aug dir (default: a generated set of microphone-like EQs)")
    g.add_argument("--mels", type=int, help="log-mel bands: 40 or 200 in the paper (default: the front end's, 40 for dcase2019, 256 for dcase2024)")
    g.add_argument("--features", default="dcase2019", choices=sorted(FEATURE_PRESETS),
                   help="front end: dcase2019 = the paper's (40 ms Hamming, 20 ms hop, magnitude, channels kept); "
                        "dcase2024 = the DCASE 2024 Task 1 baseline's (32 kHz, 4096-point FFT, 3072-sample window, "
                        "500-sample hop, 256 mels, power, mono) (default: dcase2019)")
    g.add_argument("--alpha", type=float, help="triplet margin α, short for --loss-opt alpha=X (default 0.2, triplet losses only)")
    g.add_argument("--gamma", type=float, help="triplet weight γ, short for --loss-opt gamma=X (default 10, triplet losses only)")
    g.add_argument("--mixup-alpha", type=float, help="mixup Beta(α, α) parameter, short for --aug-opt mixup.alpha=X (default: 0.4)")
    t = p.add_argument_group("how to train")
    t.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                   help="paper: Adam lr 0.001 constant, 200 epochs, batch 32, score = mean of the last 10 epochs; quick: 30 epochs, score = mean of the last 5; "
                        "dcase2024: the DCASE 2024 Task 1 baseline recipe (AdamW wd 1e-4, lr 0.005, 4 warm-up epochs + cosine, batch 256, 150 epochs, "
                        "freq-mixstyle p 0.4 α 0.3, roll 0.1 s, one frequency mask) (default: quick)")
    t.add_argument("--epochs", type=int, help="epochs (default: from the preset)")
    t.add_argument("--batch-size", type=int, help="batch size (default: from the preset, 32)")
    t.add_argument("--lr", type=float, help="(peak) learning rate (default: from the preset, 0.001)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, help="torch optimiser; sgd uses momentum 0.9 (default: from the preset, adam)")
    t.add_argument("--weight-decay", type=float, help="weight decay (decoupled for adamw) (default: from the preset, 0)")
    t.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule, stepped every batch: constant, cosine (to 0 at the end), "
                                                          "step (×0.1 at 1/2 and 3/4 of the run) (default: from the preset, constant)")
    t.add_argument("--warmup-epochs", type=float, help="linear warm-up to --lr over this many epochs, before the schedule (default: from the preset, 0)")
    t.add_argument("--score-last", type=int, help="score = mean accuracy over the last N epochs (default: from the preset: "
                   f"{PRESETS['paper']['score_last']} for paper, as the paper; {PRESETS['quick']['score_last']} for quick)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto = GPU if present)")
    t.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="fp32, bf16 autocast (loss and optimiser state stay fp32), or fp16 autocast with loss scaling (CUDA only); auto = bf16 where the device has native bf16 and it was measured faster, fp16 on a GPU without bf16 but with fp16 tensor cores, else fp32 (`harness env` shows the choice; default: auto)")
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
    add_experiment_options(p)
    add_tracking_options(p)


def add_experiment_options(p: argparse.ArgumentParser) -> None:
    e = p.add_argument_group("experiment files")
    e.add_argument("--config", metavar="FILE",
                   help="read options from a TOML file whose keys are this command's long flags (batch-size = 64, "
                        "arch-opt = {conv_impl = \"fused\"}); flags on the command line override it")
    e.add_argument("--dump-config", action="store_true",
                   help="print the options in effect as such a file and exit (nothing is trained)")


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    from harness.tracking import TRACKERS

    k = p.add_argument_group("tracking")
    k.add_argument("--track", action="append", choices=TRACKERS, metavar="TRACKER",
                   help=f"report the run as it trains: {' | '.join(TRACKERS)}, repeatable; tensorboard writes "
                        "results/runs/<id>/tb/, mlflow logs to --mlflow-uri")
    k.add_argument("--mlflow-uri", metavar="URI", help="MLflow tracking server, e.g. http://127.0.0.1:5000 (with --track mlflow)")
    k.add_argument("--mlflow-experiment", default="harness", help="MLflow experiment the runs go to (default: harness)")


def track_spec(args: argparse.Namespace):
    """What ``--track`` asked for, checked now (package installed, server reachable): before training."""
    from harness.tracking import TrackSpec

    spec = TrackSpec(tuple(dict.fromkeys(args.track or ())), args.mlflow_uri, args.mlflow_experiment)
    spec.check()
    return spec


def add_data_options(d: argparse._ActionsContainer) -> None:
    """``--data``, ``--dataset``, ``--subset``, ``--data-opt``: which data, read by which plugin."""
    d.add_argument("--data", default="synthetic",
                   help="dataset folder as distributed (its layout is detected and named), a manifest .csv, "
                        "or 'synthetic' for the embedded synthetic dataset (default)")
    d.add_argument("--dataset", metavar="NAME", help="read --data with this dataset plugin instead of detecting the "
                                                     "layout (see `harness list --kind data`)")
    d.add_argument("--subset", help="a subset the dataset plugin defines: esc10 for esc50; 5|10|25|50|100 for "
                                    "tau2022-mobile (train on the DCASE 2024 split{N}.csv, score on test.csv; the "
                                    "split files' folder: --data-opt splits=DIR, default DATA/split_setup)")
    d.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="dataset plugin option, repeatable (see `harness list --kind data`)")


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The dataset plugin's options from ``--subset`` and ``--data-opt``."""
    opts: dict[str, Any] = dict(split_pairs(getattr(args, "data_opt", None), "--data-opt"))
    if getattr(args, "subset", None):
        opts["subset"] = args.subset
    return opts


def open_data(args: argparse.Namespace, announce: bool = True, **override: Any):
    """The dataset the command line names, saying which layout was detected; ``override`` replaces
    plugin options (``harness grid --subset 5,10`` opens one dataset per subset)."""
    from harness.data.registry import open_dataset

    return open_dataset(args.data, dataset=args.dataset, progress=not args.no_progress, announce=announce,
                        **{**data_options(args), **override})


def config_from_args(args: argparse.Namespace, **extra: Any) -> RunConfig:
    return RunConfig(
        arch=args.arch, loss=args.loss, aug=args.aug, alpha=args.alpha, gamma=args.gamma,
        features=args.features, n_mels=feature_preset(args.features).n_mels if args.mels is None else args.mels,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=getattr(args, "seed", 0) or 0,
        data=args.data, dataset=args.dataset, data_options=data_options(args), split=args.split, unseen=args.unseen, device=args.device, precision=args.precision, preset=args.preset,
        score_last=args.score_last, mixup_alpha=args.mixup_alpha, arch_options=split_pairs(args.arch_opt, "--arch-opt"),
        loss_options=split_pairs(args.loss_opt, "--loss-opt"), aug_options=split_aug_pairs(args.aug_opt),
        dir_irs=args.dir_irs, optimizer=args.optimizer, weight_decay=args.weight_decay, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, teachers=list(getattr(args, "teacher", None) or []),
        **extra,
    )


def complexity_rows(s: dict[str, Any], budget: str | None) -> list[list[str]]:
    """Parameter memory, MACs per second and the verdict against ``budget`` (runs stored before these were recorded: none)."""
    if "macs_per_s_1s" not in s:
        return []
    from harness.complexity import ChallengeComplexity, load_budget

    rows = [[f"parameter memory ({s['eval_precision']})", f"{int(s['param_bytes']):,} B"],
            ["MACs per second (1-s / 10-s clips)", f"{s['macs_per_s_1s'] / 1e6:,.2f} M / {s['macs_per_s_10s'] / 1e6:,.2f} M"]]
    for p, q in (s.get("quantized") or {}).items():
        rows.append([f"evaluated at {p}: overall acc % / parameter memory", f"{100 * q['acc']:.2f} / {int(q['param_bytes']):,} B"])
    if budget:
        b = load_budget(budget)
        c = ChallengeComplexity(int(s["params"]), int(s["macs_per_s_1s"]), float(s["macs_per_s_10s"]))
        rows.append([f"budget {b.name} ({s['eval_precision']})", b.verdict(c, s["eval_precision"])])
    return rows


def metric_rows(s: dict[str, Any]) -> list[list[str]]:
    """Log loss, accuracy per domain and per domain grouping (the DCASE task's device groups), from
    the run's scores; the names come from the dataset, not from here."""
    scores = s.get("scores") or {}
    k = s.get("score_window", 10)
    rows = []
    if "log_loss" in scores:
        rows.append([f"log loss (mean last {k})", f"{scores['log_loss']:.3f}"])
    groups: dict[str, list[str]] = {}
    for key, value in scores.items():
        if key.startswith("acc_") and not key.startswith("acc_class_"):
            grouping, _, name = key[len("acc_"):].partition("_")
            if name:
                groups.setdefault(grouping, []).append(f"{name} {100 * value:.1f}")
    for grouping, parts in groups.items():
        label = "per domain" if grouping == "domain" else f"by {grouping}"
        rows.append([f"acc % {label} (mean last {k})", " · ".join(parts)])
    return rows


def summary_table(s: dict[str, Any], budget: str | None = None) -> str:
    pct = lambda v: "-" if v is None or v != v else f"{100 * float(v):.2f}"  # noqa: E731
    k = s.get("score_window", 10)
    rows = [
        ["run", s["run_id"]],
        ["config", f"{s['arch']} · {s['loss']} · aug {s['aug']} · {s['n_mels']} mels · seed {s['seed']}"],
        ["dataset", f"{s['dataset_kind']} ({s['dataset']})"],
        [f"overall acc % (mean last {k} / final)", f"{pct(s['acc_score'])} / {pct(s['acc_final'])}"],
        *([[f"macro acc % (mean last {k})", pct((s.get("scores") or {})["macro_acc"])]]
          if "macro_acc" in (s.get("scores") or {}) else []),
        *([[f"unseen acc % [{s['unseen_domains']}] (mean last {k} / final)", f"{pct(s['unseen_score'])} / {pct(s['unseen_final'])}"]]
          if s.get("unseen_domains") else [["unseen acc %", "- (no unseen domain in this split)"]]),
        *metric_rows(s),
        ["parameters", f"{int(s['params']):,}"],
        *complexity_rows(s, budget),
        ["wall time", f"{float(s['wall_s']):.1f} s"],
        ["device", f"{s['device']} · {s.get('precision', 'fp32')}"],
    ]
    return tabulate(rows, tablefmt="simple")


def dump_config(args: argparse.Namespace, command: str) -> str:
    from harness.experiment import dump_values, dumps

    values = dump_values(args, args.command_parser, skip=("force", "no_progress"))
    return dumps(values, f"harness {command}: every key is a long flag of `harness {command}` "
                         f"(see harness {command} --help)\nrun it with: harness {command} --config FILE")


def cmd_run(args: argparse.Namespace) -> int:
    from harness.experiment import apply_config
    from harness.runner.train import run

    if args.config and args.from_run:
        raise ConfigError("--config and --from cannot be combined: a rerun takes its configuration from the record")
    args = apply_config(args)
    record = None
    if args.from_run:
        from harness.rerun import differences, find_record, rerun_config

        record = find_record(args.from_run, results_dir(args.results))
        cfg, args, changed = rerun_config(record, args.command_parser, args, args.given, config_from_args)
    else:
        cfg = config_from_args(args)
    if args.dump_config:
        print(dump_config(args, "run"), end="")
        return 0
    from harness.inference.evaluate import parse_precisions

    precisions = parse_precisions(args.eval_precision, "--eval-precision")  # checked before training
    if args.budget:
        from harness.complexity import load_budget

        load_budget(args.budget)  # a bad budget is an error before training, not after
    if record is not None:
        for note in differences(record):
            print(f"note: {note}", file=sys.stderr)
    if args.params_from:
        from harness.tune import best_params

        cfg = best_params(args.params_from, cfg, results_dir(args.results))
    tracker = track_spec(args).build()
    results = results_dir(args.results)
    summary = run(cfg, results, force=args.force, progress=not args.no_progress, verbose=True, tracker=tracker)
    if summary.get("reused"):
        print(f"already complete: {results / summary['run_dir']} (use --force to retrain)")
    if record is not None and summary["run_id"] != record.run_id and not changed & set(cfg.hashed_fields()):
        print(f"note: this run's id {summary['run_id']} differs from the record's {record.run_id}: the dataset's "
              "content or this version's configuration hash differs", file=sys.stderr)
    if precisions:
        from harness.inference.evaluate import evaluate_run

        summary = evaluate_run(summary["run_id"], results, precisions, progress=not args.no_progress)
    print(summary_table(summary, args.budget))
    return 0


def run_parser() -> argparse.ArgumentParser:
    """``harness run``'s parser on its own (its flags are the keys of experiment files and grid rows)."""
    sub = argparse.ArgumentParser(prog="harness").add_subparsers()
    add_parser(sub)
    return sub.choices["run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="train and evaluate one configuration",
        description="Train and evaluate one (architecture, loss, augmentation, features, seed) configuration, "
                    "store its record under results/runs/<run-id>/ and print a summary. An identical completed "
                    "run is not retrained; a killed run resumes from its last complete epoch.")
    add_run_options(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--force", action="store_true", help="retrain even if this exact run is already stored")
    p.add_argument("--budget", default="dcase2024", metavar="NAME|FILE",
                   help="complexity budget the summary judges the model against: dcase2024 (128 kB of parameters, "
                        "30 M MACs per second) or a JSON file with param_bytes and macs_per_second (default: dcase2024)")
    p.add_argument("--eval-precision", metavar="fp16|int8|fp16,int8",
                   help="after training, score the model again at reduced precision, as `harness evaluate RUN "
                        "--precision` (int8 calibrated on training clips only); summary.json keeps each accuracy and "
                        "parameter memory")
    p.add_argument("--params-from", metavar="STUDY", help="take α, γ (and lr if tuned) from the best trial of this Optuna study")
    p.add_argument("--from", dest="from_run", metavar="RUN_ID",
                   help="rerun a stored run's exact configuration (its config.json; a run id in --results, a run folder "
                        "or the file); flags given beside it override the record's, e.g. --seed 1")
    p.set_defaults(func=cmd_run)
