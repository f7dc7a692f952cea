"""The shared-GPU check: what one GPU does for the harness, measured in at most 8 minutes.

    bash benchmarks/gpu_check.sh                 # from the repository root, the project installed
    python -m benchmarks.gpu_check --budget 480  # the same; --help for the knobs

Four parts, each with its share of ``--budget`` seconds (a part that runs out of time records what
it skipped, and the report is written anyway):

1. **device**: GPU, driver, CUDA, cuDNN, torch, memory.
2. **speed**: every architecture (fcnn, subspectralnet, dcase-baseline, dcase2024-baseline) at 40
   and 200 mels and each precision (fp32, bf16, fp16) trains for ``--seconds`` on random resident
   features through the runner's own ``Trainer.train_epoch`` (``benchmarks.train.make_trainer``;
   ``--steps`` steps per epoch, one read-back each), then evaluates (``Trainer.predict``): clips/s.
3. **packing**: 1, 2, 4, 8 worker processes each train FCNN-40 (at ``--precision auto``) on the
   GPU at once, as ``harness grid --jobs N`` packs runs: total clips/s and GPU utilisation (NVML
   through ``torch.cuda.utilization``, else ``nvidia-smi``), against the target of 4× one run.
4. **grid**: ``harness grid`` end to end (Table 1: 9 variants × 2 seeds at 40 mels, 2 epochs, ``--jobs
   auto``) on a small synthetic dataset, then ``harness table``; and the quick Table 1 grid on TAU
   2019 (30 epochs) projected from parts 2 and 3, against the 15-minute target.

Writes ``<out>/gpu-<device>.json`` and ``.md``. Without CUDA it prints one line and exits 0.
``--device cpu`` runs the same parts on the CPU, with small settings, to check the script itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.report import write_report

HERE = Path(__file__).resolve().parent
ARCHS = ("fcnn", "subspectralnet", "dcase-baseline", "dcase2024-baseline")
PRECISIONS = ("fp32", "bf16", "fp16")
PACKING = (1, 2, 4, 8)
#: Targets: packed FCNN-40 throughput over one run alone; the quick Table 1 grid (9 variants × 2 seeds
#: at 40 mels, quick preset) on one GPU, in minutes.
TARGET_PACKING, TARGET_GRID_MIN = 4.0, 15.0
#: TAU 2019 development, fold 1: training and scored clips per epoch; the quick preset's epochs.
TRAIN_CLIPS, EVAL_CLIPS, QUICK_EPOCHS, GRID_SEEDS = 9185, 4185, 30, 2
#: The Table 1 rows at 40 mels, by architecture (harness/grids/table1.toml): 7 FCNN rows.
TABLE1_ARCHS = {"fcnn": 7, "subspectralnet": 1, "dcase-baseline": 1}
#: Shares of --budget: parts 2, 3 and 4 end by these fractions of it.
SHARES = {"speed": 0.42, "packing": 0.72, "grid": 0.97}


def no_cuda_line() -> str:
    return "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing measured"


# -- 1. device ------------------------------------------------------------------------------
def nvidia_smi(query: str, index: int | None = None) -> list[str]:
    """``nvidia-smi --query-gpu=QUERY`` lines (empty where the tool is missing or fails)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    cmd = [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"] + ([f"--id={index}"] if index is not None else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def describe(device: torch.device) -> dict[str, Any]:
    rec: dict[str, Any] = {"host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
                           "torch": torch.__version__, "cuda": torch.version.cuda, "cores": os.cpu_count(),
                           "device": str(device), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if device.type != "cuda":
        from harness.precision import cpu_model

        return {**rec, "name": cpu_model(), "kind": "cpu"}
    p = torch.cuda.get_device_properties(device)
    free, total = torch.cuda.mem_get_info(device)
    rec.update({"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gib": round(total / 2**30, 1),
                "free_gib": round(free / 2**30, 1), "multiprocessors": p.multi_processor_count,
                "gpus": torch.cuda.device_count(), "cudnn": torch.backends.cudnn.version(),
                "bf16_native": torch.cuda.is_bf16_supported(including_emulation=False), "kind": "gpu"})
    smi = nvidia_smi("driver_version,name")
    rec["driver"] = smi[0].split(",")[0].strip() if smi else None
    return rec


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


# -- 2. speed -------------------------------------------------------------------------------
def trainer(arch: str, n_mels: int, precision: str, batch: int, steps: int, frames: int, device: torch.device,
            tmp: Path) -> Any:
    """The runner's Trainer on random resident features, ``steps`` training steps per epoch."""
    from benchmarks.train import Config, make_trainer

    tr = make_trainer(Config(arch, n_mels, None, precision, 2, frames), batch, device, batch * steps, 64, tmp)
    n = batch * steps
    tr.train_rows = np.arange(n)
    tr.labels, tr.domain_codes = np.arange(n) % 10, np.arange(n) % 6
    tr.y_train = torch.as_tensor(tr.labels, device=device)
    tr.d_train = torch.as_tensor(tr.domain_codes, device=device)
    return tr


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, clips: int, seconds: float, device: torch.device) -> float:
    """clips/s of ``fn`` (which does ``clips`` clips) called until ``seconds`` have passed, at least twice."""
    fn()  # warm-up: cuDNN's algorithm choice, the allocator, lazy initialisation
    sync(device)
    done, t0 = 0, time.perf_counter()
    while True:
        fn()
        done += clips
        sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and done >= 2 * clips:
            return done / elapsed


def speed(device: torch.device, archs: list[str], mels: list[int], precisions: list[str], args, deadline: float,
          tmp: Path) -> list[dict[str, Any]]:
    from harness.errors import HarnessError

    rows = []
    for arch in archs:
        for n_mels in mels:
            for precision in precisions:
                row: dict[str, Any] = {"arch": arch, "n_mels": n_mels, "precision": precision}
                rows.append(row)
                if time.monotonic() > deadline:
                    row["skipped"] = "time budget"
                    continue
                try:
                    tr = trainer(arch, n_mels, precision, args.batch_size, args.steps, args.frames, device, tmp)
                    row["train_clips_s"] = round(timed(lambda: tr.train_epoch(1), args.batch_size * args.steps,
                                                       args.seconds, device), 1)
                    row["eval_clips_s"] = round(timed(tr.predict, len(tr.ev.rows), args.seconds / 2, device), 1)
                    row["implementation"] = tr.implementation()["implementation"]
                    row["params"] = sum(p.numel() for p in tr.model.parameters())
                except (HarnessError, RuntimeError) as exc:  # fp16 on a CPU, out of memory: recorded, not fatal
                    row["error"] = str(exc).splitlines()[0][:200]
                finally:
                    tr = None
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                print(f"speed: {arch} {n_mels} mels {precision}: "
                      f"{row.get('train_clips_s', row.get('error', row.get('skipped')))} clips/s", flush=True)
    return rows


# -- 3. packing -----------------------------------------------------------------------------
def _pack_worker(device: str, precision: str, args: dict[str, Any], barrier, results) -> None:
    """One packed run: build, warm up, wait for the others, train ``seconds``, report (clips, seconds)."""
    import architectures  # noqa: F401
    import losses  # noqa: F401

    torch.set_num_threads(1)
    dev = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:
        tr = trainer("fcnn", 40, precision, args["batch_size"], args["steps"], args["frames"], dev, Path(tmp))
        tr.train_epoch(1)
        sync(dev)
        barrier.wait()
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args["seconds"]:
            tr.train_epoch(1)
            done += args["batch_size"] * args["steps"]
        sync(dev)
        results.put((done, time.perf_counter() - t0))


def utilisation(device: torch.device) -> float | None:
    """The GPU's busy percentage now (NVML through torch, else nvidia-smi; None where neither answers)."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no pynvml, or NVML refused
        index = device.index or 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            ids = [v.strip() for v in visible.split(",")]
            if index < len(ids) and ids[index].isdigit():
                index = int(ids[index])
            else:
                return None
        lines = nvidia_smi("utilization.gpu", index)
        return float(lines[0]) if lines and lines[0].replace(".", "").isdigit() else None


def packing(device: torch.device, counts: list[int], precision: str, args, deadline: float) -> list[dict[str, Any]]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    rows = []
    settings = {"batch_size": args.batch_size, "steps": args.steps, "frames": args.frames, "seconds": args.pack_seconds}
    for n in counts:
        row: dict[str, Any] = {"runs": n, "precision": precision}
        rows.append(row)
        if time.monotonic() + args.pack_seconds + 30 > deadline:
            row["skipped"] = "time budget"
            continue
        barrier, results = ctx.Barrier(n + 1), ctx.Queue()
        procs = [ctx.Process(target=_pack_worker, args=(str(device), precision, settings, barrier, results)) for _ in range(n)]
        for p in procs:
            p.start()
        samples: list[float] = []
        try:
            barrier.wait(timeout=max(5.0, deadline - time.monotonic()))
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.pack_seconds:
                u = utilisation(device)
                if u is not None:
                    samples.append(u)
                time.sleep(0.25)
            got = [results.get(timeout=60 + args.pack_seconds) for _ in procs]
        except Exception as exc:  # a worker failed (out of memory, a crash): recorded
            row["error"] = f"{type(exc).__name__}: {exc}"[:200]
            got = []
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        if got:
            row["total_clips_s"] = round(sum(c for c, _ in got) / max(s for _, s in got), 1)
            row["per_run_clips_s"] = round(row["total_clips_s"] / n, 1)
            row["gpu_util_pct"] = round(float(np.mean(samples)), 1) if samples else None
        print(f"packing: {n} run(s): {row.get('total_clips_s', row.get('error', row.get('skipped')))} clips/s, "
              f"GPU {row.get('gpu_util_pct') if row.get('gpu_util_pct') is not None else '—'}%", flush=True)
    one = next((r["total_clips_s"] for r in rows if r["runs"] == 1 and "total_clips_s" in r), None)
    for r in rows:
        if one and "total_clips_s" in r:
            r["vs_one"] = round(r["total_clips_s"] / one, 2)
    return rows


# -- 4. grid --------------------------------------------------------------------------------
def grid(device: torch.device, args, deadline: float, tmp: Path) -> dict[str, Any]:
    """``harness grid`` and ``harness table`` as a user runs them, on a small synthetic dataset."""
    from harness.data.synthetic.tau2019 import generate
    from harness.data.synthetic.world import SynthConfig

    rec: dict[str, Any] = {"variants": args.grid_variants or "all 9 Table 1 rows", "seeds": GRID_SEEDS, "mels": 40,
                           "epochs": args.grid_epochs, "jobs": "auto"}
    t0 = time.monotonic()
    root = generate(SynthConfig(seed=0, sample_rate=16000, seconds=2.0, locations_per_scene_city=2,
                                segments_per_location=4), tmp / "synth" / "TAU-urban-acoustic-scenes-2019-development",
                    progress=False)
    rec["data_s"] = round(time.monotonic() - t0, 1)
    results = tmp / "results"
    argv = [sys.executable, "-m", "harness.cli", "grid", "--data", str(root), "--results", str(results), "--mels", "40",
            "--seeds", str(GRID_SEEDS), "--epochs", str(args.grid_epochs), "--jobs", "auto", "--device", str(device),
            "--no-progress"] + (["--variants", args.grid_variants] if args.grid_variants else [])
    env = {**os.environ, "HARNESS_CACHE": str(tmp / "cache")}
    t0 = time.monotonic()
    # its own process group: on timeout the grid's worker processes are stopped with it
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        tail, _ = proc.communicate(timeout=max(10.0, deadline - time.monotonic()))
        rec["exit"] = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            tail, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            tail, _ = proc.communicate()
        rec["exit"] = "timed out"
    tail = tail or ""
    rec["wall_s"] = round(time.monotonic() - t0, 1)
    rec["workers"] = next((line for line in tail.splitlines() if "worker(s)" in line), None)
    rec["output_tail"] = tail.strip().splitlines()[-6:]
    index = results / "index.csv"
    if index.exists():
        import pandas as pd

        df = pd.read_csv(index)
        rec["runs_complete"], rec["runs"] = int((df["status"] == "complete").sum()), len(df)
        table = subprocess.run([sys.executable, "-m", "harness.cli", "table", "--results", str(results)],
                               capture_output=True, text=True, env=env, timeout=120)
        rec["table_exit"] = table.returncode
    print(f"grid: exit {rec['exit']}, {rec.get('runs_complete')}/{rec.get('runs')} runs complete in {rec['wall_s']} s",
          flush=True)
    return rec


def projection(speed_rows: list[dict[str, Any]], pack_rows: list[dict[str, Any]], precision: str) -> dict[str, Any] | None:
    """Minutes of the quick Table 1 grid on TAU 2019 (40 mels) from the measured rates: every run's
    epochs × (train clips / train rate + scored clips / eval rate), divided by the best packing gain
    measured for FCNN-40 (assumed to hold for the other rows)."""
    rates = {r["arch"]: r for r in speed_rows if r["n_mels"] == 40 and r["precision"] == precision and "train_clips_s" in r}
    if not all(a in rates for a in TABLE1_ARCHS):
        return None
    alone = sum(n * GRID_SEEDS * QUICK_EPOCHS * (TRAIN_CLIPS / rates[a]["train_clips_s"] + EVAL_CLIPS / rates[a]["eval_clips_s"])
                for a, n in TABLE1_ARCHS.items())
    gain = max([r.get("vs_one", 1.0) for r in pack_rows if "vs_one" in r] or [1.0])
    return {"precision": precision, "one_at_a_time_min": round(alone / 60, 1), "packing_gain": gain,
            "packed_min": round(alone / gain / 60, 1)}


# -- report ---------------------------------------------------------------------------------
def verdict(value: float | None, target: float, higher: bool) -> str:
    if value is None:
        return "not measured"
    return "met" if (value >= target if higher else value <= target) else "missed"


def markdown(rec: dict[str, Any]) -> str:
    d = rec["device"]
    lines = [f"# GPU check: {d['name']}", "",
             f"{d['name']} · driver {d.get('driver')} · CUDA {d.get('cuda')} · cuDNN {d.get('cudnn')} · torch {d['torch']} · "
             f"{d.get('memory_gib', '?')} GiB · {d['cores']} CPU cores · host {d['host']} · {rec['date']} · "
             f"{rec['elapsed_s']} s in all", ""]
    t = rec["targets"]
    lines += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|",
              f"| packing: FCNN-40 total throughput ≥ {TARGET_PACKING:g}× one run alone | {t['packing_gain']} | {t['packing']} |",
              f"| quick Table 1 grid (9 variants × 2 seeds, 40 mels) ≤ {TARGET_GRID_MIN:g} min on one GPU (projected) | "
              f"{t['grid_min']} min | {t['grid']} |", ""]
    lines += ["## Training speed (clips/s, the runner's step loop)", "",
              "| arch | mels | " + " | ".join(rec["precisions"]) + " | implementation |",
              "|---|---|" + "---|" * len(rec["precisions"]) + "---|"]
    for arch in rec["archs"]:
        for m in rec["mels"]:
            cells, impl = [], ""
            for p in rec["precisions"]:
                r = next((r for r in rec["speed"] if (r["arch"], r["n_mels"], r["precision"]) == (arch, m, p)), {})
                cells.append(str(r.get("train_clips_s", "—" if "skipped" in r else "error")))
                impl = impl or r.get("implementation", "")
            lines.append(f"| {arch} | {m} | " + " | ".join(cells) + f" | {impl} |")
    errors = [f"- {r['arch']} {r['n_mels']} {r['precision']}: {r['error']}" for r in rec["speed"] if "error" in r]
    lines += ([""] + errors if errors else []) + ["", f"## Packing FCNN-40 ({rec['pack_precision']}) as `harness grid --jobs N`", "",
                                                 "| runs | total clips/s | per run | × one run | GPU util % |", "|---|---|---|---|---|"]
    for r in rec["packing"]:
        lines.append(f"| {r['runs']} | {r.get('total_clips_s', r.get('skipped', r.get('error', '—')))} | "
                     f"{r.get('per_run_clips_s', '—')} | {r.get('vs_one', '—')} | {r.get('gpu_util_pct') or '—'} |")
    g = rec["grid"]
    lines += ["", "## `harness grid` end to end (synthetic data)", "",
              f"{g.get('variants')}, {g.get('seeds')} seeds, {g.get('mels')} mels, {g.get('epochs')} epochs, --jobs auto: "
              f"exit {g.get('exit')}, {g.get('runs_complete')}/{g.get('runs')} runs complete in {g.get('wall_s')} s; "
              f"{g.get('workers') or ''}; `harness table` exit {g.get('table_exit')}", ""]
    p = rec.get("projection")
    if p:
        lines += [f"Quick Table 1 grid on TAU 2019 projected at {p['precision']}: {p['one_at_a_time_min']} min one run at "
                  f"a time, {p['packed_min']} min packed (gain {p['packing_gain']}× as measured for FCNN-40).", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda, cuda:K, or cpu (a check of the script itself) (default cuda)")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for all parts (default 480: 8 minutes)")
    p.add_argument("--archs", default=",".join(ARCHS), help=f"architectures (default {','.join(ARCHS)})")
    p.add_argument("--mels", default="40,200", help="mel band counts (default 40,200)")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="precisions (default fp32,bf16,fp16)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32, the quick preset's)")
    p.add_argument("--steps", type=int, default=20, help="training steps per timed epoch (default 20)")
    p.add_argument("--frames", type=int, default=500, help="frames per clip (default 500: 10 s at the paper's hop)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds of training per speed configuration (default 2)")
    p.add_argument("--packing", default=",".join(map(str, PACKING)), help="runs packed at once (default 1,2,4,8)")
    p.add_argument("--pack-seconds", type=float, default=10.0, help="seconds each packing measurement trains (default 10)")
    p.add_argument("--grid-epochs", type=int, default=2, help="epochs of the end-to-end grid (default 2)")
    p.add_argument("--grid-variants", help="variants of the end-to-end grid (default: all of Table 1)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="output folder (default benchmarks/results)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(no_cuda_line())
        return 0

    import architectures  # noqa: F401  (registers)
    import losses  # noqa: F401
    from harness.precision import resolve_precision

    start = time.monotonic()
    deadline = {k: start + share * args.budget for k, share in SHARES.items()}
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    info = describe(device)
    print(f"device: {info['name']} · driver {info.get('driver')} · CUDA {info.get('cuda')} · cuDNN {info.get('cudnn')} · "
          f"torch {info['torch']}", flush=True)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    mels = [int(m) for m in args.mels.split(",") if m.strip()]
    precisions = [x.strip() for x in args.precisions.split(",") if x.strip()]
    auto = resolve_precision("auto", device)[0]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HARNESS_CACHE", str(Path(tmp) / "cache"))
        speed_rows = speed(device, archs, mels, precisions, args, deadline["speed"], Path(tmp))
        pack_rows = packing(device, [int(n) for n in args.packing.split(",") if n.strip()], auto, args, deadline["packing"])
        grid_rec = grid(device, args, deadline["grid"], Path(tmp))
    proj = projection(speed_rows, pack_rows, auto if auto in precisions else precisions[0])
    gain = max([r["vs_one"] for r in pack_rows if "vs_one" in r and r["runs"] > 1] or [None], key=lambda v: v or 0)
    rec = {"device": info, "date": time.strftime("%Y-%m-%d %H:%M"), "budget_s": args.budget, "archs": archs, "mels": mels,
           "precisions": precisions, "pack_precision": auto, "batch_size": args.batch_size, "steps": args.steps,
           "frames": args.frames, "speed": speed_rows, "packing": pack_rows, "grid": grid_rec, "projection": proj,
           "targets": {"packing_gain": gain, "packing": verdict(gain, TARGET_PACKING, True),
                       "grid_min": proj["packed_min"] if proj else None,
                       "grid": verdict(proj["packed_min"] if proj else None, TARGET_GRID_MIN, False)},
           "elapsed_s": round(time.monotonic() - start, 1)}
    write_report(args.out, f"gpu-{slug(info['name'] if device.type == 'cuda' else 'cpu')}", rec, markdown(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
