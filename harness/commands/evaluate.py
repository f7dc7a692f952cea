"""``harness evaluate``: score a stored run again at reduced precision (fp16, int8)."""

from __future__ import annotations

import argparse

from harness.paths import results_dir
from harness.report.summary import summary_table


def cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.inference.evaluate import evaluate_run, parse_precisions

    precisions = parse_precisions(args.precision, "--precision")
    summary = evaluate_run(args.run, results_dir(args.results), precisions, progress=not args.no_progress)
    print(summary_table(summary, args.budget))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="score a stored run at reduced precision (fp16, int8)",
        description="Convert a stored run's trained model to fp16 (every parameter and the input cast) or int8 "
                    "(PyTorch eager post-training quantization: batch norm folded, per-channel int8 weights, "
                    "activation scales calibrated on 256 of the run's training clips only) and score it again on the "
                    "run's evaluation clips. summary.json keeps, under `quantized`, the accuracy, macro accuracy, log "
                    "loss and parameter memory at fp32 and at each precision. A layer that cannot be quantized is "
                    "named in a one-line error.")
    p.add_argument("run", metavar="RUN", help="run id or a unique prefix of one (a folder under results/runs/)")
    p.add_argument("--precision", default="fp16", help="fp16, int8 or both comma-separated (default: fp16)")
    p.add_argument("--budget", default="dcase2024", metavar="NAME|FILE", help="complexity budget for the printed verdict (default: dcase2024)")
    p.add_argument("--results", help="results folder (default: $HARNESS_RESULTS or ./results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)
