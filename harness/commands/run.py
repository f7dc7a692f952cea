"""``harness run``: train and evaluate one configuration and store its record."""

from __future__ import annotations

import argparse
import sys

from harness.errors import ConfigError
from harness.experiment import dump_config
from harness.flags import add_run_options, config_from_args, track_spec
from harness.paths import results_dir
from harness.report.summary import summary_table


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
        from harness.tuning.params import best_params

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="train and evaluate one configuration",
        description="Train and evaluate one (architecture, loss, augmentation, features, seed) configuration, "
                    "store its record under results/runs/<run-id>/ and print a summary. An identical completed "
                    "run is not retrained; a killed run resumes from its last complete epoch.")
    add_run_options(p)
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
