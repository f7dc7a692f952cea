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
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

HERE = Path(__file__).resolve().parent


def cpu_seconds() -> float:
    """CPU time of every finished descendant (the command and its worker processes)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(label: str, args: list[str], work: Path) -> dict[str, Any]:
    """Run ``harness tune`` in a fresh results folder; wall and CPU time, trial counts.

    ``cpu_bound_wall_s`` = CPU seconds / cores: the wall time on an otherwise idle machine when the
    trial processes keep every core busy (the machine this runs on may be shared)."""
    results = work / label.replace(" ", "-").replace(",", "")
    t0, c0, load0 = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "tune", "--results", str(results), "--no-progress",
                           "--study", "bench", *args], capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    if proc.returncode:
        sys.exit(f"harness tune failed ({proc.returncode}): {proc.stderr[-3000:]}")
    print(proc.stdout)
    summary = json.loads((results / "studies" / "bench" / "summary.json").read_text())
    s = summary["stats"]
    finished = s["complete"] + s["pruned"]
    cores = os.cpu_count() or 1
    return {"label": label, "args": " ".join(args), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "cpu_bound_wall_s": round(cpu / cores, 1), "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "complete": s["complete"], "pruned": s["pruned"], "failed": s["failed"],
            "trials_per_hour": round(3600 * finished / wall, 1),
            "cpu_bound_trials_per_hour": round(3600 * finished / (cpu / cores), 1), "best": summary["best"]}


def warm() -> float:
    from harness.data.registry import open_dataset
    from harness.features.cache import load_features
    from harness.features.logmel import FeatureConfig

    t0 = time.perf_counter()
    load_features(open_dataset(), FeatureConfig(n_mels=40))
    return time.perf_counter() - t0


def markdown(record: dict[str, Any]) -> str:
    rows = [[m["label"], m["args"], f"{m['wall_s'] / 60:.1f}", m["trials_per_hour"], f"{m['cpu_bound_wall_s'] / 60:.1f}",
             m["cpu_bound_trials_per_hour"], "{:.1f} → {:.1f}".format(*m["load_avg_1min"]), m["complete"], m["pruned"],
             m["failed"]] for m in record["measurements"]]
    table = tabulate(rows, headers=["run", "harness tune options", "wall min", "trials/h", "CPU-bound wall min",
                                    "CPU-bound trials/h", "load avg", "complete", "pruned", "failed"], tablefmt="github")
    return (f"# harness tune on {record['host']}\n\n{record['cpus']} CPU cores, {record['platform']}, "
            f"{record['date']}. Synthetic dataset, tune defaults (quick preset, {record['defaults']}); dataset and "
            f"features cached beforehand ({record['warm_s']:.0f} s). *CPU-bound* = CPU seconds of the command and "
            f"its workers / cores: the wall time on an idle machine if the workers keep every core busy; "
            f"*load avg* is the machine's 1-minute load before → after (other work on a shared machine slows the "
            f"wall time, not the CPU time).\n\n{table}\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=50, help="trials of the default search (default: 50)")
    p.add_argument("--compare", type=int, default=4,
                   help="one-epoch trials for the 1-process-all-threads vs 1-process-per-core comparison; 0 skips it (default: 4)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="output folder (default: benchmarks/results)")
    args = p.parse_args()
    from harness.tuning.objective import TUNE_EPOCHS, TUNE_SCORE_LAST

    record: dict[str, Any] = {"defaults": f"{TUNE_EPOCHS} epochs, score = mean of the last {TUNE_SCORE_LAST}, median pruning, 2 jobs on a CPU",
                              "host": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform(),
                              "date": time.strftime("%Y-%m-%d %H:%M"), "warm_s": round(warm(), 1), "measurements": []}
    runs = [(f"{jobs} job(s), 1 epoch", ["--trials", str(args.compare), "--epochs", "1", "--pruner", "none",
                                          "--n-jobs", str(jobs)]) for jobs in ((1, 2) if args.compare else ())]
    runs.append((f"default, {args.trials} trials", ["--trials", str(args.trials)]))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"tune-{record['host']}"
    with tempfile.TemporaryDirectory(prefix="harness-tune-bench-") as tmp:
        for label, run_args in runs:  # the 1-epoch pair: one process with all threads vs one per core
            record["measurements"].append(measure(label, run_args, Path(tmp)))
            stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")  # kept if a later run fails
            stem.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
