"""``harness table``: the paper's Tables 1-2 (and significance tests) from the results store."""

from __future__ import annotations

import argparse
import sys

from harness.flags import add_selection_options, positive_int, require_results
from harness.paths import results_dir
from harness.report.tables import FORMATS


def cmd_table(args: argparse.Namespace) -> int:
    from harness.report.paper import load_paper
    from harness.report.stats import build_stats
    from harness.report.tables import build_table1, build_table2, load_index, render

    results = results_dir(args.results)
    if args.plan:
        return _plan(args)
    if args.table != "2" or args.reindex:
        require_results(results)
    paper = load_paper()
    tables = []
    if args.reindex:
        from harness.results.store import ResultsStore

        n = ResultsStore(results).reindex()
        print(f"rebuilt {results / 'index.csv'} from {n} run summaries (older run folders migrated)", file=sys.stderr)
    if args.table == "subsets":
        from harness.report.subsets import build_subset_table

        table = build_subset_table(results, load_index(results), dataset=args.dataset)
        if table.runs.empty:
            print(f"harness: no complete runs on the DCASE 2024 splits in {results / 'index.csv'}; run "
                  "`harness grid --table subsets --data PATH`", file=sys.stderr)
        tables.append(table)
    elif args.split == "loco" and args.table in ("1", "all"):
        from harness.report.loco import build_loco, dataset_domains
        from harness.report.tables import select_runs

        runs, sel = select_runs(load_index(results), dataset=args.dataset, preset=args.preset, split="loco")
        if not len(runs):
            print(f"harness: no complete loco runs in {results / 'index.csv'}; run `harness grid --split loco`",
                  file=sys.stderr)
        loco, loco_stats = build_loco(runs, sel, results, mels=args.mels, n_resamples=args.resamples,
                                      all_domains=dataset_domains(sel))
        tables += [loco] + ([loco_stats] if args.stats else [])
    elif args.table == "methods":
        from harness.report.tables import MethodsTable
        from harness.grids.variants import METHOD_VARIANTS

        t = build_table1(load_index(results), dataset=args.dataset, preset=args.preset, unseen=args.unseen,
                         mels=args.mels, seeds=args.seeds, paper=paper, results=results, split=args.split,
                         metric=args.metric, variants=METHOD_VARIANTS, table=MethodsTable, epochs=args.epochs)
        if not len(t.runs):
            print(f"harness: no complete runs in {results / 'index.csv'} match; the table lists the commands that fill it",
                  file=sys.stderr)
        tables.append(t)
        if args.stats and len(t.runs):
            tables.append(build_stats(t.runs, t.selection, results, mels=args.mels, variants=METHOD_VARIANTS,
                                      n_resamples=args.resamples))
    elif args.table in ("1", "all"):
        t1 = build_table1(load_index(results), dataset=args.dataset, preset=args.preset, unseen=args.unseen,
                          mels=args.mels, seeds=args.seeds, include_extra=not args.no_extra, paper=paper, results=results,
                          split=args.split, metric=args.metric, epochs=args.epochs)
        if not len(t1.runs):
            print(f"harness: no complete runs in {results / 'index.csv'} match; Table 1 lists the commands that fill it",
                  file=sys.stderr)
        tables.append(t1)
        if args.stats and len(t1.runs):
            tables.append(build_stats(t1.runs, t1.selection, results, mels=args.mels, n_resamples=args.resamples))
    if args.table in ("2", "all"):
        from harness.report.budget import build_budget_table

        tables.append(build_table2(paper, n_frames=args.frames))
        tables.append(build_budget_table(args.budget, args.precision))
    text = render(tables, args.format)
    if args.output:
        from harness.atomic import write_text

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def _plan(args: argparse.Namespace) -> int:
    from harness.data.registry import DEFAULT_DATA, open_dataset
    from harness.report.plan import build_plan
    from harness.report.tables import render

    ds = open_dataset(args.dataset or DEFAULT_DATA, progress=False)
    text = render([build_plan(ds, args.split, seeds=args.plan_seeds, unseen=args.unseen or "official")], args.format)
    if args.output:
        from harness.atomic import write_text

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table", help="print the paper's Tables 1-2 from the results store",
        description="Table 1: mean ± std over seeds of each variant's accuracy (overall and unseen city, mean of the last "
                    "10 epochs) beside the paper's numbers, with the command for every missing run; a significance "
                    "table against each variant's baseline row. Table 2: parameters and MACs of the compared "
                    "networks beside the paper's counts (needs no training).")
    p.add_argument("--table", choices=["1", "2", "all", "methods", "subsets"], default="all",
                   help="which table: 1, 2, all (both), methods (FCNN with each method for unseen domains against "
                        "FCNN + CE: the runs of `harness grid --table methods`), or subsets (the DCASE 2024 comparison: "
                        "macro accuracy per training subset and device group beside the DCASE 2024 baseline's published "
                        "figures: the runs of `harness grid --table subsets`) (default: all)")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text, markdown, latex, csv or json (csv/json: one record per cell, machine-readable) (default: text)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE (atomically) instead of standard output")
    add_selection_options(p)
    p.add_argument("--epochs", type=positive_int, metavar="N",
                   help="use runs trained for N epochs (--epochs N of harness run/grid) instead of the preset's (default: the preset's)")
    p.add_argument("--no-extra", action="store_true",
                   help="leave out the harness's extra rows (DCASE baseline, FCNN-triplet-random)")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples for the confidence intervals (default: 2000)")
    p.add_argument("--frames", type=positive_int, default=500, help="input frames for Table 2's MACs (default: 500 = 10 s at 20 ms hop)")
    p.add_argument("--split",
                   help="fold1 (Table 1, the paper's protocol), loco (pool the folds of `harness grid --split loco`: "
                        "unseen-domain accuracy over every held-out clip, per domain, paired tests against the baseline "
                        "row), or one split of `harness run --split` (default: the cross-validation folds pooled when "
                        "the runs have fold:K splits, else fold1)")
    p.add_argument("--plan", action="store_true",
                   help="train nothing, read no results: print the minimum detectable effect a grid on --dataset "
                        "(default: synthetic) with --split and --plan-seeds will have")
    p.add_argument("--plan-seeds", type=positive_int, default=2, metavar="N", help="seeds per configuration for --plan (default: 2)")
    p.add_argument("--budget", default="dcase2024", metavar="NAME|FILE",
                   help="complexity budget Table 2 checks against: a shipped one (dcase2024 = 128 kB of parameters, "
                        "30 M MACs per second) or a JSON file with param_bytes and macs_per_second (default: dcase2024)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="precision the parameter memory is counted at (default: fp32)")
    p.add_argument("--metric", default="acc", choices=["acc", "macro_acc", "log_loss"],
                   help="what Table 1's cells hold: accuracy, class-averaged accuracy or log loss, each the run's mean over "
                        "its scoring window, overall and on unseen domains (default: acc; the paper reports acc)")
    p.add_argument("--reindex", action="store_true",
                   help="first rebuild index.csv from the runs' summary.json files, migrating run folders written by "
                        "earlier versions (acc_last10 → acc_score with its scoring window, per-epoch column names)")
    p.set_defaults(func=cmd_table)
