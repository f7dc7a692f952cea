"""``harness predict``: score unlabelled clips with a trained run (DCASE submission format)."""

from __future__ import annotations

import argparse

from harness.paths import results_dir


def cmd_predict(args: argparse.Namespace) -> int:
    from harness.inference.predict import predict
    from harness.inference.trained import open_run

    run = open_run(results_dir(args.results), args.run)
    path, clips = predict(run, args.data, args.out, progress=not args.no_progress)
    print(f"wrote {path}: {len(clips.clips)} clips ({clips.source}), {len(run.preprocessing.classes)} classes, run {run.run_id}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="score unlabelled clips with a trained run and write a DCASE submission file",
        description="Score the clips of an evaluation folder with a completed run, using the run's own feature settings "
                    "and normalisation statistics (preprocessing.json in the run folder), on the CPU, and write the DCASE Task 1 "
                    "system-output file: TAB-separated, header 'filename scene_label <one column per class>', "
                    "the columns holding class probabilities.")
    p.add_argument("run", metavar="RUN", help="run id (or a unique prefix of one) under <results>/runs")
    p.add_argument("--data", required=True, metavar="EVAL_FOLDER",
                   help="a TAU evaluation folder (the clips listed in evaluation_setup/fold1_test.csv) or any folder of "
                        "WAV files (all *.wav under it); clips must have the training clips' rate, channels and length")
    p.add_argument("--out", metavar="FILE", help="output file (default: <run folder>/predict/<EVAL_FOLDER name>.output.csv)")
    p.add_argument("--results", help="results folder (default: $HARNESS_RESULTS or ./results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_predict)
