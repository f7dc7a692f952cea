"""Time ``harness tune`` on the synthetic data: the default search, and one process vs two.

    python benchmarks/tune.py                  # default `harness tune --trials 50` + a 1-vs-2-jobs comparison
    python benchmarks/tune.py --trials 10 --compare 0

Writes ``benchmarks/results/tune-<host>.json`` and ``.md``. Every command runs in a fresh results
folder (the dataset and feature caches are shared and warmed first, and timed separately), so the
figures are trials per hour of a search from scratch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

HERE = Path(__file__).resolve().parent


def harness(args: list[str], results: Path) -> tuple[float, dict[str, Any]]:
    """Run ``harness tune`` in a subprocess; wall seconds and the study's summary.json."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "tune", "--results", str(results), "--no-progress",
                           "--study", "bench", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"harness tune failed ({proc.returncode}): {proc.stderr[-3000:]}")
    print(proc.stdout)
    return wall, json.loads((results / "studies" / "bench" / "summary.json").read_text())


def measure(label: str, args: list[str], work: Path) -> dict[str, Any]:
    wall, summary = harness(args, work / label)
    s = summary["stats"]
    finished = s["complete"] + s["pruned"]
    return {"label": label, "args": " ".join(args), "wall_s": round(wall, 1), "complete": s["complete"],
            "pruned": s["pruned"], "failed": s["failed"], "trials_per_hour": round(3600 * finished / wall, 1),
            "best": summary["best"]}


def warm() -> float:
    from harness.data.source import open_dataset
    from harness.features.cache import load_features
    from harness.features.logmel import FeatureConfig

    t0 = time.perf_counter()
    load_features(open_dataset("synthetic"), FeatureConfig(n_mels=40))
    return time.perf_counter() - t0


def markdown(record: dict[str, Any]) -> str:
    rows = [[m["label"], m["args"] or "(defaults)", f"{m['wall_s'] / 60:.1f}", m["complete"], m["pruned"], m["failed"],
             m["trials_per_hour"]] for m in record["measurements"]]
    table = tabulate(rows, headers=["run", "harness tune options", "wall min", "complete", "pruned", "failed",
                                    "trials/hour"], tablefmt="github")
    return (f"# harness tune on {record['host']}\n\n{record['cpus']} CPU cores, {record['platform']}, "
            f"{record['date']}. Synthetic dataset, quick preset with the tune defaults; dataset and features "
            f"cached beforehand ({record['warm_s']:.0f} s).\n\n{table}\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=50, help="trials of the default search (default: 50)")
    p.add_argument("--compare", type=int, default=6,
                   help="trials (no pruning) for the 1-process-2-threads vs 2-processes-1-thread comparison; 0 skips it (default: 6)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="output folder (default: benchmarks/results)")
    args = p.parse_args()
    record: dict[str, Any] = {"host": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform(),
                              "date": time.strftime("%Y-%m-%d %H:%M"), "warm_s": round(warm(), 1), "measurements": []}
    with tempfile.TemporaryDirectory(prefix="harness-tune-bench-") as tmp:
        work = Path(tmp)
        if args.compare:
            for jobs in (1, 2):
                record["measurements"].append(measure(f"{jobs} job(s), no pruning",
                                                      ["--trials", str(args.compare), "--pruner", "none", "--n-jobs", str(jobs)], work))
        record["measurements"].append(measure(f"default, {args.trials} trials", ["--trials", str(args.trials)], work))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"tune-{record['host']}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
