"""``harness report``: a Markdown page with the tables, statistics and figures of the results store."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.flags import add_selection_options, positive_int, require_results
from harness.paths import results_dir
from harness.report.html import REPORT_FORMATS


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.page import ReportOptions, build_report

    results = results_dir(args.results)
    require_results(results)
    opts = ReportOptions(results=results, out=Path(args.out) if args.out else None, dataset=args.dataset,
                         preset=args.preset, unseen=args.unseen, mels=args.mels, seeds=args.seeds, stats=args.stats,
                         table2=args.table2, max_points=args.max_points, n_resamples=args.resamples,
                         format=args.format)
    report = build_report(opts)
    print(f"wrote {report.path} ({len(report.figures)} figures)")
    for note in report.notes:
        print(f"  note: {note}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write a report (Markdown or one self-contained HTML page) with tables and figures",
        description="Write report.md (or report.html), tables.json, tables.csv and figures/*.png: Tables 1-2 beside the paper, "
                    "significance tests, confusion matrices, accuracy per city, learning curves, and the paper's "
                    "Figure 1 measured (PCA of embeddings, silhouette by scene vs by city).")
    add_selection_options(p)
    p.add_argument("--out", metavar="DIR", help="output folder (default: <results>/report)")
    p.add_argument("--format", choices=REPORT_FORMATS, default="markdown",
                   help="markdown: report.md linking figures/*.png; html: report.html, one self-contained page (figures "
                        "inline, sortable tables, a section per feature size) (default: markdown)")
    p.add_argument("--table2", action=argparse.BooleanOptionalAction, default=True,
                   help="include Table 2 (parameters and MACs, measured by building each network) (default: on)")
    p.add_argument("--max-points", type=positive_int, default=1500,
                   help="clips per run used for silhouettes and projections (distances grow as its square) (default: 1500)")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples for the confidence intervals (default: 2000)")
    p.set_defaults(func=cmd_report)
