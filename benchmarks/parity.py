"""Accuracy parity of bf16 and fp32 training: is bf16 autocast's difference within the noise?

    harness run --arch fcnn --loss triplet-city --precision fp32 --seed 0 --results DIR   # ... bf16, seeds 0-2
    harness run --arch subspectralnet --precision fp32 --seed 0 --results DIR             # ... bf16, seeds 0-2
    python -m benchmarks.parity --results DIR

Reads the completed runs of a results folder (``index.csv``, each run's ``config.json`` and
``predictions.npz``), groups them by everything but precision and seed (architecture, loss,
augmentation, mels, epochs, dataset), and for every group run at both precisions reports the score
(``acc_score``: the mean accuracy over the preset's scoring window) and unseen-city accuracy as mean ±
sample std over seeds per precision, and decides whether bf16's difference is within the noise.

The decision is the harness's own paired test (``harness.report.stats.compare``): the bf16 and
fp32 runs of one seed start from the same initialisation and see the same batches, so their
final-epoch predictions are paired clip by clip; each clip's difference is summed over the seeds
both precisions ran, and the exact sign-flip test asks whether bf16 gets systematically more or
fewer clips right. **Within noise** = that two-sided test, Holm-adjusted over the groups, does not
reject at 5 %; the minimum detectable effect (80 % power) is reported beside it, so "within noise"
reads as "no difference larger than about the MDE". A seed-level paired t-test on the scores
(``scipy.stats.ttest_rel``, weak with 3 seeds) is reported as well.

Writes ``<out>/parity.json`` and ``.md`` (default ``benchmarks/results/precision``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import write_report

HERE = Path(__file__).resolve().parent
GROUP = ["arch", "loss", "aug", "n_mels", "epochs", "dataset_identity"]
ALPHA = 0.05


def _mean_std(values: pd.Series) -> tuple[float, float | None]:
    v = 100 * values.astype(float)
    return round(float(v.mean()), 2), (round(float(v.std(ddof=1)), 2) if len(v) > 1 else None)


def _machine(results: Path, run_dirs: list[str]) -> dict[str, Any]:
    """The CPUs and thread counts the runs recorded in their ``config.json``."""
    cpus, threads, bf16 = set(), set(), set()
    for rel in run_dirs:
        try:
            env = json.loads((results / rel / "config.json").read_text()).get("environment", {})
        except (OSError, ValueError):
            continue
        cpus.add(str(env.get("cpu"))), threads.add(env.get("torch_threads")), bf16.add(str(env.get("cpu_bf16")))
    return {"cpu": sorted(cpus), "torch_threads": sorted(t for t in threads if t is not None),
            "cpu_bf16": sorted(bf16)}


def parity(results: Path | None) -> dict[str, Any]:
    """The parity record of the runs in ``results`` (or why there is none): per group and precision
    the mean ± std of the scores, and per group the paired bf16-vs-fp32 test and its verdict."""
    if results is None:
        return {"status": "not measured: no parity results folder given", "rows": [], "groups": []}
    from scipy import stats as sps

    from harness.report.stats import adjust_holm, compare, fmt_mde, read_predictions
    from harness.results.store import ResultsStore

    results = Path(results)
    if not (results / "index.csv").exists():
        return {"status": f"not measured: {results / 'index.csv'} does not exist", "rows": [], "groups": []}
    df = ResultsStore(results).load_index()
    df = df[df["status"] == "complete"].copy()
    if "precision" not in df:
        df["precision"] = "fp32"
    df["precision"] = df["precision"].fillna("fp32")
    rows, groups, comparisons = [], [], []
    for key, g in df.groupby(GROUP, dropna=False, sort=True):
        what = dict(zip(GROUP, key))
        for prec, p in g.groupby("precision", sort=True):
            acc, acc_sd = _mean_std(p["acc_score"])
            unseen, unseen_sd = _mean_std(p["unseen_score"])
            rows.append({**{k: what[k] for k in ("arch", "loss", "aug", "n_mels", "epochs")}, "precision": prec,
                         "runs": len(p), "seeds": sorted(int(s) for s in p["seed"]), "acc_mean": acc, "acc_std": acc_sd,
                         "unseen_mean": unseen, "unseen_std": unseen_sd,
                         "wall_s_mean": round(float(p["wall_s"].astype(float).mean()), 1)})
        by = {prec: p.set_index("seed") for prec, p in g.groupby("precision")}
        if not {"fp32", "bf16"} <= set(by):
            continue
        seeds = sorted(set(by["fp32"].index) & set(by["bf16"].index))
        if not seeds:
            continue
        preds = {prec: {int(s): read_predictions(results / by[prec].loc[s, "run_dir"]) for s in seeds}
                 for prec in ("fp32", "bf16")}
        name = f"{what['arch']} + {what['loss']}"
        tests = {}
        for subset in ("overall", "unseen"):
            c = compare(preds["bf16"], preds["fp32"], subset, names=("bf16", "fp32"), n_mels=int(what["n_mels"]),
                        where=str(results))
            if c is not None:
                comparisons.append(c)
                tests[subset] = c
        fp, bf = (by[prec].loc[seeds, "acc_score"].astype(float).to_numpy() for prec in ("fp32", "bf16"))
        t = sps.ttest_rel(bf, fp) if len(seeds) > 1 and np.ptp(bf - fp) > 0 else None  # undefined otherwise
        groups.append({"name": name, **{k: (v if not isinstance(v, np.generic) else v.item()) for k, v in what.items()},
                       "seeds": [int(s) for s in seeds], "tests": tests,
                       "score_diff_per_seed": [round(100 * float(d), 2) for d in bf - fp],
                       "score_ttest_p": None if t is None else round(float(t.pvalue), 4)})
    adjust_holm(comparisons)
    for grp in groups:
        out = {}
        for subset, c in grp["tests"].items():
            out[subset] = {"clips": c.n_clips, "acc_bf16": round(c.acc_variant, 2), "acc_fp32": round(c.acc_baseline, 2),
                           "diff": round(c.diff, 2), "ci95": [round(c.ci[0], 2), round(c.ci[1], 2)],
                           "p": round(c.paired.p_value, 4), "p_holm": round(c.p_holm, 4),
                           "mde": round(c.mde, 2) if np.isfinite(c.mde) else None, "mde_text": fmt_mde(c.mde)}
        grp["tests"] = out
        overall = out.get("overall")
        grp["within_noise"] = None if overall is None else bool(overall["p_holm"] >= ALPHA)
    status = ("measured" if groups else
              "not measured: no configuration has complete runs at both fp32 and bf16" if rows else
              "not measured: no complete run")
    return {"status": status, "source": str(results), "rows": rows, "groups": groups, "alpha": ALPHA,
            "machine": _machine(results, df["run_dir"].astype(str).tolist()),
            "decision": "within noise = the clip-paired sign-flip test of bf16 vs fp32 (final-epoch predictions, "
                        "per-clip differences summed over the seeds run at both precisions), Holm-adjusted over the "
                        f"configurations, does not reject at {ALPHA:.0%} (two-sided)"}


def markdown(rec: dict[str, Any]) -> list[str]:
    """The parity section (a list of lines), shared by this report and the training benchmark's."""
    from tabulate import tabulate

    from harness.report.stats import fmt_p

    lines = ["## Accuracy parity, fp32 vs bf16", "", f"Status: {rec['status']}.", ""]
    if not rec["rows"]:
        return lines
    m = rec.get("machine", {})
    lines += [f"Runs from `{rec['source']}`: CPU {', '.join(m.get('cpu', [])) or 'not recorded'} "
              f"(native bf16: {', '.join(m.get('cpu_bf16', [])) or 'not recorded'}), torch threads "
              f"{', '.join(map(str, m.get('torch_threads', []))) or 'not recorded'}. Score = mean accuracy of the "
              "preset's last epochs on the official evaluate clips; mean ± sample std over seeds. The runs' wall times (in the JSON) were taken on a shared machine: "
              "`benchmarks.train` measures speed.", ""]
    table = [[r["arch"], r["loss"], r["n_mels"], r["epochs"], r["precision"], ", ".join(map(str, r["seeds"])),
              f"{r['acc_mean']:.2f} ± {r['acc_std'] if r['acc_std'] is not None else '—'}",
              f"{r['unseen_mean']:.2f} ± {r['unseen_std'] if r['unseen_std'] is not None else '—'}"]
             for r in rec["rows"]]
    lines += [tabulate(table, ["arch", "loss", "mels", "epochs", "precision", "seeds", "score %", "unseen %"],
                       tablefmt="github", disable_numparse=True), ""]
    if rec["groups"]:
        lines += [f"Paired test, bf16 − fp32 (decision: {rec['decision']}):", ""]
        gt = []
        for g in rec["groups"]:
            for subset, t in g["tests"].items():
                gt.append([g["name"], subset, t["clips"], f"{t['diff']:+.2f}", f"[{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}]",
                           fmt_p(t["p"]), fmt_p(t["p_holm"]), t["mde_text"],
                           ", ".join(f"{d:+.2f}" for d in g["score_diff_per_seed"]) if subset == "overall" else "",
                           fmt_p(g["score_ttest_p"] if g["score_ttest_p"] is not None else float("nan"))
                           if subset == "overall" else "",
                           ("within noise" if g["within_noise"] else "DIFFERS") if subset == "overall" else ""])
        lines += [tabulate(gt, ["configuration", "subset", "clips", "Δ pts (final epoch)", "95 % CI", "p", "p Holm",
                                "MDE pts", "Δ score per seed", "t-test p (seeds)", "verdict"], tablefmt="github",
                           disable_numparse=True), ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, required=True, help="results folder holding the fp32 and bf16 runs")
    p.add_argument("--out", type=Path, default=HERE / "results" / "precision",
                   help="output folder (default benchmarks/results/precision)")
    args = p.parse_args(argv)
    if not (args.results / "index.csv").is_file():
        p.error(f"--results {args.results}: no index.csv there (not a results folder)")
    from harness.errors import HarnessError

    try:
        rec = parity(args.results)
    except HarnessError as exc:
        p.error(str(exc))
    rec["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    lines = markdown(rec)
    lines[0] = "# Accuracy parity, fp32 vs bf16"
    write_report(args.out, "parity", rec, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
