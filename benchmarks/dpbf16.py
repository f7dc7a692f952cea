"""Would a bf16 variant of the fused FCNN kernels be faster on this CPU? Their inner loops, timed alone.

    python -m benchmarks.dpbf16

The fused kernels (``architectures/fused/fcnn_block.c``) spend their arithmetic in two loops: the
depthwise (1,7) time conv (forward, and twice in the backward) and, in the first block, the (7,1)
conv over the 2 input channels. ``benchmarks/dpbf16.c`` holds both in float32 FMAs, as the kernel
computes them, and in AVX512-BF16 dot products (``_mm512_dpbf16_ps``: 2 bf16 products per float32
lane per instruction), including the packing into bf16 pairs that the dot products need. Each is
timed alone (1 thread, fp32 and bf16 alternately, best of ``--repeats`` each), at the sizes of an FCNN-40 training step.

Then, how much of an FCNN-40 training step under ``--precision bf16`` the fused kernels take
(``torch.profiler``, self CPU time of the ``harness::`` operators and their autograd nodes, 1
thread; the step times are medians of steps taken alternately at fp32 and bf16): with share f and the best loop speed-up s, a bf16 variant can speed the step up by at most
1 / (1 - f + f / s) (Amdahl, as if every kernel instruction sped up by s).

Writes ``<out>/dpbf16-<host>.json`` and ``.md`` (default ``benchmarks/results/precision``).
"""

from __future__ import annotations

import argparse
import ctypes
import os
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
#: (loop, T, channel blocks of 16): the sizes of FCNN-40's blocks (500 frames; 100 after the first pool).
CASES = (("dw", 500, 1), ("dw", 100, 1), ("stem", 500, 4))
#: Output vectors (16 channels at one time step) each loop computes in one FCNN-40 training step:
#: batch 32, 3 sub-bands ((40 - 20) // 10 + 1), 64 channels (4 vectors); block 1 on 20 mel rows x
#: 500 frames, block 2 on 10 x 100 after the (2, 5) pool. The stem loop runs in the forward, in the
#: backward's recomputation and (as a reduction of the same size) for its weight gradient; the
#: depthwise loop in the forward, for dy, for dz and (as a reduction) for its weight gradient.
STEP_VECTORS = {("stem", 500): 3 * 3 * 32 * 20 * 500 * 4, ("dw", 500): 3 * 4 * 32 * 20 * 500 * 4,
                ("dw", 100): 3 * 4 * 32 * 10 * 100 * 4}


def build(tmp: Path) -> ctypes.CDLL:
    from architectures.fused.build import compiler

    cc = compiler()
    if cc is None:
        raise OSError("no C compiler found")
    out = tmp / "dpbf16.so"
    subprocess.run([cc, "-std=c11", "-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared",
                    str(HERE / "dpbf16.c"), "-o", str(out)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(out))


def p(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


def aligned(n: int, dtype: type = np.float32) -> np.ndarray:
    """Zeros with a 64-byte aligned start (the vector loads and stores need it)."""
    size = np.dtype(dtype).itemsize
    raw = np.zeros(n + 64 // size, dtype)
    skip = (-raw.ctypes.data % 64) // size
    return raw[skip:skip + n]


def time_pair(fns, seconds: float, repeats: int) -> list[float]:
    """Best seconds per repetition of each ``fn(reps)``, timed alternately (``repeats`` rounds of
    about ``seconds`` each), so that both see the same background load."""
    counts = []
    for fn in fns:
        t0 = time.perf_counter()
        fn(10)
        counts.append(max(10, int(10 * seconds / max(time.perf_counter() - t0, 1e-9))))
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, (fn, reps) in enumerate(zip(fns, counts)):
            t0 = time.perf_counter()
            fn(reps)
            best[i] = min(best[i], (time.perf_counter() - t0) / reps)
    return best


def loops(lib: ctypes.CDLL, seconds: float, repeats: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = []
    for loop, T, nblk in CASES:
        f32 = np.float32
        if loop == "dw":
            z = np.zeros((T + 8, 16), f32)
            z[3:T + 3] = rng.normal(size=(T, 16))
            w = np.zeros((8, 16), f32)
            w[:7] = rng.normal(size=(7, 16)) / 3
            b = rng.normal(size=16).astype(f32)
            y32, y16 = np.zeros((T, 16), f32), np.zeros((T, 16), f32)
            scratch = aligned((64 + 8) * 16)  # CHUNK + 8 vectors
            calls = (lambda n: lib.dw_f32(p(z), p(w), p(b), p(y32), T, n),
                     lambda n: lib.dw_bf16(p(z), p(w), p(b), p(y16), T, p(scratch), n))
            what, outputs = f"depthwise (1,7) time conv, T = {T}, 16 channels", T
        else:
            x = rng.normal(size=(14, T)).astype(f32)
            w = (rng.normal(size=(14, 16 * nblk)) / 4).astype(f32)
            b = rng.normal(size=16 * nblk).astype(f32)
            y32, y16 = np.zeros((nblk, T, 16), f32), np.zeros((nblk, T, 16), f32)
            scratch = np.zeros(7 * T, np.uint32)
            calls = (lambda n: lib.stem_f32(p(x), p(w), p(b), p(y32), T, nblk, n),
                     lambda n: lib.stem_bf16(p(x), p(w), p(b), p(y16), T, nblk, p(scratch), n))
            what, outputs = f"first block's (7,1) conv over 2 input channels, T = {T}, {16 * nblk} channels", T * nblk
        t32, t16 = time_pair(calls, seconds, repeats)
        err = float(np.abs(y16 - y32).max() / np.abs(y32).max())
        out.append({"loop": loop, "what": what, "T": T, "channel_blocks": nblk,
                    "f32_ns_per_vector": round(t32 / outputs * 1e9, 3), "bf16_ns_per_vector": round(t16 / outputs * 1e9, 3),
                    "speedup": round(t32 / t16, 3), "max_rel_err_bf16": round(err, 5)})
        print(f"{what}: fp32 {t32 / outputs * 1e9:.2f} ns, bf16 {t16 / outputs * 1e9:.2f} ns per output vector "
              f"({t32 / t16:.2f}x), max rel. error {err:.2e}", flush=True)
    return out


def kernel_share(steps: int) -> dict[str, Any]:
    """Share of an FCNN-40 (fused) training step at --precision bf16 spent in the fused operators."""
    from torch.profiler import ProfilerActivity, profile

    import architectures  # noqa: F401  (registers)
    import losses  # noqa: F401
    from benchmarks.train import Config, make_trainer

    share: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="harness-dpbf16-") as tmp:
        trainers = {prec: make_trainer(Config("fcnn", 40, "fused", prec), 32, torch.device("cpu"), 32, 64, Path(tmp))
                    for prec in ("fp32", "bf16")}
        times: dict[str, list[float]] = {prec: [] for prec in trainers}
        for tr in trainers.values():
            tr.train_epoch(1)
        for _ in range(steps):  # alternately, so both see the same background load
            for prec, tr in trainers.items():
                t0 = time.perf_counter()
                tr.train_epoch(1)
                times[prec].append(time.perf_counter() - t0)
        for prec, tr in trainers.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(max(2, steps // 2)):
                    tr.train_epoch(1)
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events)
            fused = sum(e.self_cpu_time_total for e in events if "harness" in e.key)
            wall = float(np.median(times[prec]))
            share[prec] = {"step_ms": round(wall * 1e3, 1), "fused_share": round(fused / total, 3)}
            print(f"FCNN-40 {prec} step {wall * 1e3:.0f} ms (median), fused operators {100 * fused / total:.0f} % of it",
                  flush=True)
    return share


def markdown(rec: dict[str, Any]) -> str:
    from tabulate import tabulate

    m = rec["machine"]
    lines = ["# AVX512-BF16 dot products against float32 FMAs in the fused FCNN kernel's loops", "",
             f"{m['cpu']} (avx512_bf16 {'yes' if m['avx512_bf16'] else 'no'}, amx_bf16 "
             f"{'yes' if m['amx_bf16'] else 'no'}), torch {m['torch']}, 1 thread; 1-minute load average "
             f"{rec['load_avg_start']} at start, {rec['load_avg_end']} at end.", ""]
    if rec.get("loops"):
        lines += [tabulate([[r["what"], r["f32_ns_per_vector"], r["bf16_ns_per_vector"], f"{r['speedup']:.2f}x",
                             f"{r['max_rel_err_bf16']:.1e}"] for r in rec["loops"]],
                           ["loop (one output vector = 16 channels at one time step)", "fp32 FMA ns", "bf16 dot ns",
                            "bf16 speed-up", "bf16 max rel. error"], tablefmt="github"), ""]
    else:
        lines += [f"Loops not measured: {rec['loops_status']}.", ""]
    if rec.get("share"):
        s = rec["share"]
        lines += ["FCNN-40 training step (fused, batch 32, 1 thread): "
                  + "; ".join(f"{k} {v['step_ms']} ms, fused operators {100 * v['fused_share']:.0f} %" for k, v in s.items())
                  + ".", ""]
    if rec.get("saving_ms") is not None:
        lines += [f"Estimate for the loops alone: the vectors an FCNN-40 step computes in each loop (batch 32, 3 sub-bands, "
                  f"64 channels, forward and backward) times the measured per-vector difference: **{rec['saving_ms']:.1f} ms** "
                  f"saved of the {rec['share']['bf16']['step_ms']} ms bf16 step, a step speed-up of "
                  f"**{rec['estimated_speedup']:.2f}x**.", ""]
    if rec.get("bound") is not None:
        lines += [f"Upper bound on a bf16 variant's FCNN-40 bf16 training speed-up: 1 / (1 - f + f / s) = "
                  f"**{rec['bound']:.2f}x** (f = {rec['share']['bf16']['fused_share']:.2f}, s = {rec['best_speedup']:.2f}, "
                  "the best loop speed-up, as if every kernel instruction gained it).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=0.3, help="seconds per timed batch of calls (default 0.3)")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per loop, best taken (default 7)")
    ap.add_argument("--steps", type=int, default=6, help="profiled training steps per precision (default 6)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "precision",
                    help="output folder (default benchmarks/results/precision)")
    args = ap.parse_args(argv)

    from harness.precision import cpu_flags, cpu_model
    from harness.runner.train import tune_cpu_allocator

    torch.set_num_threads(1)
    tune_cpu_allocator()
    flags = cpu_flags()
    rec: dict[str, Any] = {"machine": {"host": socket.gethostname(), "cpu": cpu_model(), "torch": torch.__version__,
                                       "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags},
                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "load_avg_start": round(os.getloadavg()[0], 2)}
    if "avx512_bf16" not in flags:
        rec["loops_status"] = "this CPU has no avx512_bf16"
    else:
        with tempfile.TemporaryDirectory(prefix="harness-dpbf16-") as tmp:
            try:
                rec["loops"] = loops(build(Path(tmp)), args.seconds, args.repeats)
            except (OSError, subprocess.CalledProcessError) as exc:
                rec["loops_status"] = f"could not build benchmarks/dpbf16.c: {str(exc).splitlines()[0]}"
    rec["share"] = kernel_share(args.steps)
    if rec.get("loops"):
        s = max(r["speedup"] for r in rec["loops"])
        f = rec["share"]["bf16"]["fused_share"]
        rec["best_speedup"], rec["bound"] = s, round(1 / (1 - f + f / s), 3)
        saved = sum(n * (r["f32_ns_per_vector"] - r["bf16_ns_per_vector"]) * 1e-6
                    for r in rec["loops"] for (loop, t), n in STEP_VECTORS.items() if (r["loop"], r["T"]) == (loop, t))
        step = rec["share"]["bf16"]["step_ms"]
        rec["saving_ms"], rec["estimated_speedup"] = round(saved, 1), round(step / (step - saved), 3)
    rec["load_avg_end"] = round(os.getloadavg()[0], 2)
    write_report(args.out, f"dpbf16-{rec['machine']['host']}", rec, markdown(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
