"""Training and inference throughput of the architectures at each precision, FCNN's conv_impls side by side.

    python -m benchmarks.train                       # 40 and 200 mels, every arch and FCNN impl
    python -m benchmarks.train --mels 40 --impls fused --precisions fp32,bf16 --seconds 5
    python -m benchmarks.train --archs dcase2024-baseline,fcnn --impls fused --mels 256 --input dcase2024  # 1-s clips

What is timed is the runner's own code: ``Trainer.train_epoch`` (gather a batch from the float16
feature tensor, normalise, SpecAugment (``BatchAugment``), forward under the run's ``--precision``,
the registry's ``ce`` loss, backward, Adam step, the loss read-back) and ``Trainer.predict``
(evaluation forward, batches of max(2 x batch, 64)), on full-size inputs (2 x n_mels x 500) of
random features. Every configuration (model x precision) is built once; then, in each of
``--rounds`` rounds, each configuration trains for ``--seconds`` (at least one step), evaluates,
and a 2048 x 2048 ``torch.mm`` at each precision measures the machine's matrix-multiply rates.
Interleaving puts every configuration under the same background load, so ratios are taken within
a round and then the median over rounds.

The limit is the best matmul rate at any precision used for training: %% best = clips/s x
MACs/clip x 3 (training: forward + backward ~ 3 forwards; 1 for inference) / (best FLOP/s / 2),
MACs/clip from ``harness.complexity.measure`` (ptflops' default counting, the paper's Table 2
column). Ratios against SubSpectralNet take each model at its fastest precision. The record names
the CPU, its bf16/AMX flags and the machine kind (``amx``, ``non-amx``, ``gpu``); the targets of
the kinds not measured are reported as unmeasured. ``--parity-results`` adds the fp32/bf16
accuracy table from a results folder.

Writes ``<out>/train-<host>.json`` and ``.md``. On CUDA (``--device cuda``): features resident
on the GPU, and the projected time of the full Table 1 grid.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.parity import markdown as parity_markdown
from benchmarks.parity import parity
from benchmarks.report import write_report

HERE = Path(__file__).resolve().parent
ARCHS = ("dcase-baseline", "subspectralnet", "fcnn")
IMPLS = ("reference", "channels-last", "dense", "fused")
N_FRAMES = 500
#: ``--input``: (channels, frames) of one clip on each front end: 10 s at the paper's 20 ms hop, stereo;
#: 1 s at the DCASE 2024 baseline's 500-sample hop at 32 kHz, mono.
INPUTS = {"dcase2019": (2, N_FRAMES), "dcase2024": (1, 65)}
#: Targets: FCNN training throughput over SubSpectralNet's, each at its fastest precision, per
#: n_mels (every machine kind); FCNN-40 training as a fraction of the best matmul rate at any
#: precision used for training, per machine kind.
TARGET_RATIO = {40: 2.5, 200: 4.0}
TARGET_FRACTION = {"amx": 0.25, "non-amx": 0.5}
#: Paper's Table 1 grid, for the projection: clips per epoch (TAU 2019 fold 1) and runs.
GRID_TRAIN_CLIPS, GRID_EVAL_CLIPS, GRID_EPOCHS, GRID_SEEDS, GRID_MELS = 9185, 4185, 200, 2, (40, 200)


@dataclass
class Config:
    arch: str
    n_mels: int
    impl: str | None = None  # conv_impl for fcnn
    precision: str = "fp32"  # the runner's --precision
    channels: int = 2
    frames: int = N_FRAMES
    trainer: Any = None
    macs: int = 0
    macs_conv_linear: int = 0
    params: int = 0
    implementation: str = ""  # what the model's forward ran (harness.model.implementation)
    train: list[tuple[int, float]] = field(default_factory=list)  # (clips, seconds) per round
    infer: list[tuple[int, float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return (f"{self.arch}[{self.impl}]" if self.impl else self.arch) + f" {self.precision}"

    @property
    def model(self) -> str:
        return f"{self.arch}[{self.impl}]" if self.impl else self.arch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(cfg: Config, batch_size: int, device: torch.device, pool: int, eval_clips: int, tmp: Path) -> Any:
    """A ``Trainer`` wired to random resident features instead of a dataset: the runner's own
    ``build``, ``train_epoch`` and ``predict`` do the work."""
    from harness.features.logmel import FeatureConfig
    from harness.runner.config import RunConfig
    from harness.runner.rows import EvalSet
    from harness.runner.train import Trainer

    options = {"conv_impl": cfg.impl} if cfg.impl else {}
    rc = RunConfig(arch=cfg.arch, loss="ce", aug="spec", n_mels=cfg.n_mels, epochs=1, batch_size=batch_size,
                   lr=1e-3, device=str(device), precision=cfg.precision, arch_options=options).resolved()
    tr = Trainer.__new__(Trainer)
    tr.cfg, tr.device, tr.progress, tr.on_epoch, tr.dir = rc, device, False, None, tmp
    for name, value in (("verbose", False), ("store", None), ("run_id", f"bench-{cfg.label.replace(' ', '-')}")):
        setattr(tr, name, value)
    g = torch.Generator().manual_seed(cfg.n_mels)
    feats = (torch.randn((pool, cfg.channels, cfg.n_mels, cfg.frames), generator=g) * 4 - 20).half()
    tr.ds = SimpleNamespace(classes=tuple(f"class{i}" for i in range(10)))  # what build() reads of a dataset
    tr.n_frames = cfg.frames
    tr.features = FeatureConfig(n_mels=cfg.n_mels)
    tr.ds = SimpleNamespace(classes=tuple(f"class{i}" for i in range(10)), audio=SimpleNamespace(sample_rate=48000))
    tr.mean = torch.full((cfg.channels, cfg.n_mels, 1), -20.0, device=device)
    tr.std = torch.full((cfg.channels, cfg.n_mels, 1), 4.0, device=device)
    tr.x_train = feats.to(device)
    tr.x_eval = feats[:eval_clips].to(device) if eval_clips <= pool else feats.repeat(eval_clips // pool + 1, 1, 1, 1)[:eval_clips].to(device)
    tr.train_rows = np.arange(batch_size)  # one training step per train_epoch call
    tr.labels = np.arange(pool) % 10
    tr.domain_codes = np.arange(pool) % 6
    tr.domain_names = np.asarray([f"d{i}" for i in tr.domain_codes])
    tr.domain_vocab = [f"d{i}" for i in range(6)]
    tr.y_train = torch.as_tensor(tr.labels[: batch_size], device=device)
    tr.d_train = torch.as_tensor(tr.domain_codes[: batch_size], device=device)
    tr.ev = EvalSet(np.arange(eval_clips), np.ones(eval_clips, bool), np.zeros(eval_clips, bool), (), "bench")
    tr.build()
    return tr


def run_for(fn, seconds: float, device: torch.device) -> tuple[int, float]:
    """Call ``fn`` (returns clips done) until ``seconds`` have passed, at least once."""
    clips, t0 = 0, time.perf_counter()
    while True:
        clips += fn()
        sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return clips, elapsed


def matmul_rate(seconds: float, device: torch.device, precision: str = "fp32") -> float:
    """FLOP/s of a 2048 x 2048 x 2048 matrix product at ``precision`` (TF32 off on CUDA)."""
    n = 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.mm(a, b, out=c)
        sync(device)
        done, elapsed = run_for(lambda: (torch.mm(a, b, out=c), 1)[1], seconds, device)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return 2 * n**3 * done / elapsed


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


def rate(pairs: list[tuple[int, float]]) -> list[float]:
    return [c / s for c, s in pairs]


def allocator_check() -> dict[str, float]:
    """ms for an 82 MB elementwise op in a fresh process, default glibc malloc vs the runner's setting."""
    code = ("import time, torch\n"
            "from harness.runner.train import tune_cpu_allocator\n"
            "import sys\n"
            "if sys.argv[1] == 'tuned': tune_cpu_allocator()\n"
            "torch.set_num_threads(1)\n"
            "x = torch.randn(32 * 64 * 20 * 500)\n"
            "(x * 2).sum()\n"
            "t = time.perf_counter(); n = 0\n"
            "while time.perf_counter() - t < 1.5: y = x * 2; del y; n += 1\n"
            "print((time.perf_counter() - t) / n * 1e3)\n")
    out = {}
    for mode in ("default", "tuned"):
        proc = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, cwd=HERE.parent)
        out[mode] = round(float(proc.stdout.strip().splitlines()[-1]), 1) if proc.returncode == 0 else float("nan")
    return out


def block_micro(batch_size: int, try_compile: bool) -> list[dict[str, Any]]:
    """ms for forward+backward of one FCNN-40 trunk block (conv, BN, ReLU, pool, and dropout after the
    first) at full size, per implementation, and of the dropout mask alone (CPU, float32)."""
    from torch import nn

    from architectures.blocks import FactorizedConv2d, Trunk
    from architectures.fused import ops

    def best(fn, n: int = 5) -> float:
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(min(times) * 1e3, 2)

    out = []
    for what, cin, cout, f, t, pool in (("block 1 (2->64, 20x500)", 2, 64, 20, 500, (2, 5)),
                                        ("block 2 (64->64, 10x100)", 64, 64, 10, 100, (4, 100))):
        torch.manual_seed(0)
        x = torch.randn(batch_size, cin, f, t, requires_grad=cin > 2)
        g = torch.randn(batch_size, cout, f // pool[0], t // pool[1])
        for impl in IMPLS:
            trunk = Trunk(20, 500, 2, (64, 64), 7, (2, 5), 0.3, factorized=True, impl=impl)
            block, mp = (trunk.block1, trunk.pool1) if cin == 2 else (trunk.block2, trunk.pool2)
            drop = trunk.drop1 if cin == 2 else nn.Identity()

            def step(block=block, mp=mp, drop=drop):
                if ops.plan(block, mp) is None and ops.obstacle(block, mp, x) is None:
                    y = ops.fused_block(block, mp, x, dropout=drop if isinstance(drop, nn.Dropout) else None)
                else:
                    y = drop(mp(block(x)))
                y.backward(g)

            out.append({"what": what, "impl": impl, "fwd_bwd_ms": best(step)})
        if try_compile and cin == 2:
            conv = FactorizedConv2d(cin, cout, 7)
            bn = nn.BatchNorm2d(cout)

            def shifted(x):
                z = nn.functional.pad(conv.freq(x), (3, 3))
                w = conv.time.weight.view(1, cout, 1, 7)
                y = conv.time.bias.view(1, -1, 1, 1) + sum(w[..., k:k + 1] * z[..., k:k + t] for k in range(7))
                return nn.functional.max_pool2d(torch.relu(bn(y)), pool)

            t0 = time.perf_counter()
            compiled = torch.compile(shifted)
            try:
                compiled(x).backward(g)
                out.append({"what": what, "impl": "torch.compile, depthwise as 7 shifted multiply-adds",
                            "fwd_bwd_ms": best(lambda: compiled(x).backward(g)),
                            "compile_s": round(time.perf_counter() - t0, 1)})
            except Exception as exc:  # noqa: BLE001 - a compiler problem is a result to report
                out.append({"what": what, "impl": "torch.compile", "error": str(exc).splitlines()[0][:200]})
    shape = (batch_size, 64, 10, 100)
    noise = torch.empty(shape)
    out.append({"what": "dropout mask (32, 64, 10, 100)", "impl": "torch bernoulli_ (nn.Dropout)",
                "fwd_bwd_ms": best(lambda: noise.bernoulli_(0.7))})
    if ops.dropout_exact():
        out.append({"what": "dropout mask (32, 64, 10, 100)", "impl": "fused: replay of torch's mt19937 stream",
                    "fwd_bwd_ms": best(lambda: ops.dropout_mask(shape, 0.7))})
    return out


def machine(device: torch.device) -> dict[str, Any]:
    from harness.precision import cpu_bf16, cpu_flags, cpu_model

    flags = cpu_flags()
    rec = {"host": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
           "python": platform.python_version(), "torch": torch.__version__, "device": str(device),
           "cuda_available": torch.cuda.is_available(),
           "cpu_flags": {f: f in flags for f in ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16")},
           "native_bf16": cpu_bf16(), "kind": machine_kind(device)}
    if device.type == "cuda":
        rec["gpu"] = torch.cuda.get_device_name(device)
    return rec


def machine_kind(device: torch.device) -> str:
    """``gpu``, ``amx`` (a CPU with AMX-BF16) or ``non-amx``: the kinds the targets are set for."""
    from harness.precision import cpu_flags

    if device.type == "cuda":
        return "gpu"
    return "amx" if "amx_bf16" in cpu_flags() else "non-amx"


def summarise(configs: list[Config], mm: dict[str, list[float]]) -> dict[str, Any]:
    """Per configuration: rates, GFLOP/s, fractions of the best matmul rate (per round, then the
    median), and, per (model, mels), the precision it trains fastest at."""
    best = [max(vals) for vals in zip(*mm.values())]  # per round: the best rate at any precision measured
    rows = []
    for c in configs:
        tr, inf = rate(c.train), rate(c.infer)
        row: dict[str, Any] = {
            "arch": c.arch, "impl": c.impl, "model": c.model, "precision": c.precision, "label": c.label,
            "n_mels": c.n_mels, "params": c.params, "macs_per_clip": c.macs,
            "macs_conv_linear_per_clip": c.macs_conv_linear,
            "train_clips_per_s_rounds": [round(v, 3) for v in tr], "infer_clips_per_s_rounds": [round(v, 3) for v in inf],
            "train_clips_per_s": round(median(tr), 3), "infer_clips_per_s": round(median(inf), 3),
            "train_steps": [n for n, _ in c.train], "implementation": c.implementation,
        }
        row["train_gflops"] = round(median(tr) * c.macs * 3 * 2 / 1e9, 2)
        row["infer_gflops"] = round(median(inf) * c.macs * 2 / 1e9, 2)
        # fraction of the best matmul rate, per round (same conditions), then the median
        row["train_fraction_of_best"] = round(median([t * c.macs * 3 / (m / 2) for t, m in zip(tr, best)]), 4)
        row["infer_fraction_of_best"] = round(median([t * c.macs / (m / 2) for t, m in zip(inf, best)]), 4)
        rows.append(row)
    fastest: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        key = (row["model"], row["n_mels"])
        if key not in fastest or row["train_clips_per_s"] > fastest[key]["train_clips_per_s"]:
            fastest[key] = row
    for row in rows:
        row["fastest_precision"] = fastest[(row["model"], row["n_mels"])] is row
    by = {(r["model"], r["n_mels"]): r for r in rows if r["fastest_precision"]}
    fcnn = {r["n_mels"]: r for r in rows if r["fastest_precision"] and r["arch"] == "fcnn"}
    for row in rows:
        ref = fcnn.get(row["n_mels"])
        if ref is not None and row["arch"] != "fcnn":  # beside FCNN at the same input, each at its fastest precision
            row["train_ratio_vs_fcnn"] = round(median([a / b for a, b in zip(
                row["train_clips_per_s_rounds"], ref["train_clips_per_s_rounds"])]), 3)
        ssn = by.get(("subspectralnet", row["n_mels"]))
        if ssn is not None:  # against SubSpectralNet at its fastest precision, per round
            for kind in ("train", "infer"):
                row[f"{kind}_ratio_vs_ssn"] = round(median([a / b for a, b in zip(
                    row[f"{kind}_clips_per_s_rounds"], ssn[f"{kind}_clips_per_s_rounds"])]), 3)
            row["macs_ratio_vs_ssn"] = round(ssn["macs_per_clip"] / row["macs_per_clip"], 3)
    return {"rows": rows, "best_matmul_gflops_rounds": [round(v / 1e9, 2) for v in best]}


def default_impl_for(device: torch.device) -> str:
    """What ``conv_impl="auto"`` (fcnn's default) runs on this device."""
    from architectures.fused import kernels

    return "fused" if device.type == "cpu" and kernels() is not None else "reference"


def verdicts(rows: list[dict[str, Any]], default_impl: str, kind: str) -> list[dict[str, Any]]:
    """The targets of this machine kind, FCNN with its default implementation and each model at its
    fastest precision; the targets of the other kinds are listed as not measured."""
    out = []
    fcnn = f"fcnn[{default_impl}]"
    best = {(r["model"], r["n_mels"]): r for r in rows if r["fastest_precision"]}
    for (model, mels), r in sorted(best.items(), key=lambda kv: kv[0][1]):
        if model != fcnn:
            continue
        target = TARGET_RATIO.get(mels)
        if target is not None and "train_ratio_vs_ssn" in r:
            v = r["train_ratio_vs_ssn"]
            out.append({"what": f"FCNN-{mels} train ({r['precision']}) / SubSpectralNet-{mels} (its fastest precision)",
                        "kind": kind, "target": f">= {target}x", "value": v, "pass": bool(v >= target)})
        if mels == 40 and kind in TARGET_FRACTION:
            v = r["train_fraction_of_best"]
            out.append({"what": f"FCNN-40 train ({r['precision']}) as a fraction of the best matmul rate",
                        "kind": kind, "target": f">= {TARGET_FRACTION[kind]:.0%}", "value": v,
                        "pass": bool(v >= TARGET_FRACTION[kind])})
    for other, fraction in TARGET_FRACTION.items():
        if other != kind:
            out.append({"what": f"all targets on a machine of kind {other} (FCNN-40 >= {fraction:.0%} of the best rate)",
                        "kind": other, "target": "", "value": None, "pass": None,
                        "note": f"unmeasured: no {other} machine was available to this run"})
    return out


def projection(rows: list[dict[str, Any]], default_impl: str) -> dict[str, Any]:
    """Wall time of the paper's Table 1 grid at the measured throughputs (loss/augmentation as CE+spec),
    each architecture at its fastest precision."""
    from harness.grids.variants import VARIANTS

    rate_of = {(r["arch"], r["n_mels"]): r for r in rows
               if r["fastest_precision"] and (r["arch"] != "fcnn" or r["impl"] == default_impl)}
    total, missing, per = 0.0, [], []
    for v in VARIANTS:
        for m in GRID_MELS:
            r = rate_of.get((v.arch, m))
            if r is None or not r["train_clips_per_s"] or not r["infer_clips_per_s"]:
                missing.append(f"{v.name}@{m}")
                continue
            epoch = GRID_TRAIN_CLIPS / r["train_clips_per_s"] + GRID_EVAL_CLIPS / r["infer_clips_per_s"]
            seconds = epoch * GRID_EPOCHS * GRID_SEEDS
            per.append({"variant": v.name, "n_mels": m, "precision": r["precision"], "epoch_s": round(epoch, 1),
                        "runs": GRID_SEEDS, "hours": round(seconds / 3600, 2)})
            total += seconds
    return {"variants": [v.name for v in VARIANTS], "per_cell": per, "missing": missing,
            "total_hours": round(total / 3600, 1), "total_days": round(total / 86400, 2)}


def ratio(v: float | None) -> str:
    """A ratio cell; a dash where SubSpectralNet was not among the measured models."""
    return "—" if v is None else f"{v:.2f}x"


def markdown(rec: dict[str, Any]) -> str:
    from tabulate import tabulate

    m = rec["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["cpu_flags"].items())
    lines = [f"# Training throughput ({m['host']}, {rec['device']})", "",
             f"{m['cpu']} ({flags}; machine kind **{m['kind']}**), {m['cores']} cores, torch {m['torch']} with "
             f"{m['torch_threads']} threads, Python {m['python']}, {m['platform']}.", "",
             f"Batch {rec['batch_size']}, input ({rec['channels']}, n_mels, {rec['frames']}) ({rec['input']} front end), "
             f"{rec['rounds']} interleaved rounds of "
             f"{rec['seconds']} s per configuration; 1-minute load average at start {rec['load_avg_start']}, "
             f"at end {rec['load_avg_end']} (other work on this machine slows every absolute figure; ratios are "
             "taken within each round). Medians over rounds.", ""]
    for prec, vals in rec["matmul_gflops_rounds"].items():
        lines.append(f"- {prec} matmul (2048^3 torch.mm): {median(vals):.1f} GFLOP/s (rounds: "
                     f"{', '.join(f'{v:.1f}' for v in vals)})")
    lines += ["", f"Best matmul rate (the limit used below): {rec['best_matmul_gflops']:.1f} GFLOP/s. "
              f"FCNN's default `conv_impl=\"auto\"` runs `{rec['default_impl']}` here.", ""]
    if rec["device"] == "cpu":
        lines += ["**No GPU was available to this run; GPU figures not measured.**", ""]
    lines += ["## Throughput", "",
              "% best = clips/s x MACs x 3 (training) or x 1 (inference) / (best matmul FLOP/s / 2). "
              "MACs: ptflops' default count per clip of the input above (conv + dense + BN/ReLU/pool). Ratios vs SSN: against "
              "SubSpectralNet at its fastest precision. * = the model's fastest precision here.", ""]
    table = []
    for r in rec["rows"]:
        table.append([r["model"], r["precision"] + (" *" if r["fastest_precision"] else ""), r["n_mels"],
                      f"{r['params']:,}", f"{r['macs_per_clip'] / 1e6:,.0f} M",
                      f"{r['train_clips_per_s']:.2f}", f"{r['train_gflops']:.1f}",
                      f"{100 * r['train_fraction_of_best']:.0f} %",
                      ratio(r.get("train_ratio_vs_ssn")),
                      f"{r['infer_clips_per_s']:.1f}", f"{100 * r['infer_fraction_of_best']:.0f} %",
                      ratio(r.get("infer_ratio_vs_ssn")), r["implementation"]])
    lines += [tabulate(table, ["model", "precision", "mels", "params", "MACs/clip", "train clips/s", "train GFLOP/s",
                               "train % best", "train vs SSN", "infer clips/s", "infer % best", "infer vs SSN",
                               "implementation ran"], tablefmt="github"), ""]
    lines += [f"## Targets (machine kind {m['kind']}; FCNN with its default implementation)", ""]
    vt = []
    for v in rec["verdicts"]:
        if v["value"] is None:
            vt.append([v["what"], v["target"], v["note"], "unmeasured"])
        else:
            shown = f"{100 * v['value']:.0f} %" if "fraction" in v["what"] else f"{v['value']:.2f}x"
            vt.append([v["what"], v["target"], shown, "pass" if v["pass"] else "MISSED"])
    lines += [tabulate(vt, ["target", "needs", "measured", ""], tablefmt="github"), ""]
    beside = [r for r in rec["rows"] if "train_ratio_vs_fcnn" in r]
    if beside:
        lines += ["## Beside FCNN at the same input (each at its fastest precision; ratio per round, then the median)", ""]
        lines += [tabulate([[r["model"], r["precision"], r["n_mels"], f"{r['train_clips_per_s']:.2f}",
                             f"{r['train_ratio_vs_fcnn']:.2f}x", f"{r['macs_per_clip'] / 1e6:,.1f} M"] for r in beside],
                           ["model", "precision", "mels", "train clips/s", "train vs FCNN", "MACs/clip"],
                           tablefmt="github"), ""]
    impls = [r for r in rec["rows"] if r["arch"] == "fcnn"]
    if len({r["impl"] for r in impls}) > 1:
        lines += ["## FCNN implementations compared (same run)", ""]
        rows = [[r["impl"], r["precision"], r["n_mels"], f"{r['train_clips_per_s']:.2f}", f"{r['infer_clips_per_s']:.1f}"]
                for r in impls]
        lines += [tabulate(rows, ["conv_impl", "precision", "mels", "train clips/s", "infer clips/s"],
                           tablefmt="github"), ""]
    if rec.get("block_micro"):
        lines += ["## One trunk block, forward + backward (batch "
                  f"{rec['batch_size']}, best of 5, ms; block 1 includes its dropout)", ""]
        lines += [tabulate([[b["what"], b["impl"], b.get("fwd_bwd_ms", b.get("error")),
                             b.get("compile_s", "")] for b in rec["block_micro"]],
                           ["block", "implementation", "ms", "compile s"], tablefmt="github"), ""]
    if rec.get("allocator_ms"):
        a = rec["allocator_ms"]
        lines += [f"Allocator (runner's `tune_cpu_allocator`): an 82 MB elementwise op takes {a['default']} ms with "
                  f"glibc's default malloc and {a['tuned']} ms with large blocks kept on the heap (fresh processes, "
                  "1 thread). Every configuration above runs with the tuned allocator, as `harness run` does.", ""]
    lines += parity_markdown(rec["parity"])
    p = rec["projection"] or {}
    lines += [] if not p else [f"## Projected Table 1 grid ({rec['device']})", "",
              f"{len(p['variants'])} variants x {len(GRID_MELS)} feature sizes x {GRID_SEEDS} seeds x {GRID_EPOCHS} epochs, "
              f"{GRID_TRAIN_CLIPS:,} training + {GRID_EVAL_CLIPS:,} evaluation clips per epoch, at the throughputs "
              "above (each architecture at its fastest precision and CE + SpecAugment rate; triplet and mixup "
              f"variants assumed to cost the same): **{p['total_hours']:,} h ({p['total_days']} days)**"
              + (f"; not measured: {', '.join(p['missing'])}" if p["missing"] else "") + ".", ""]
    lines += ["## Notes", "", *[f"- {n}" for n in rec["notes"]], ""]
    return "\n".join(lines)


NOTES = [
    "`fused` (the default on CPU): each trunk block conv -> BatchNorm -> ReLU -> max-pool (-> the dropout "
    "after the first pool) is one step. A C kernel (architectures/fused/fcnn_block.c, built on first use with the "
    "system compiler, -O3 -march=native, OpenMP) computes the depthwise (1,7) conv, the BatchNorm batch sums "
    "and the window maxima in one pass over each mel row, in registers/L1, so the full-resolution activation "
    "is never written; for the first block (2 input channels) it computes the (7,1) conv on the fly too, and "
    "the backward recomputes rather than stores. BN's affine map is monotone in sign(gamma)*y, so ReLU and "
    "max-pool commute with it and run, with the dropout, on the 10x smaller pooled tensor; BN's gradient "
    "through its batch statistics is an affine function of y plus the scatter at the window maxima, applied "
    "inside the backward kernel. The second block's (7,1) conv (64 or 32 input channels: a real GEMM) stays "
    "on oneDNN, channels-last.",
    "Dropout masks in `fused` are torch's own: the kernel replays the default generator's mt19937 stream as "
    "`bernoulli_` consumes it (checked bit for bit against `bernoulli_` at first use, else the module runs), "
    "so seeded runs draw the same masks with every impl. PyTorch's CPU `bernoulli_` takes a serial "
    "per-element path on this (non-Intel) CPU; see the dropout rows of the block table.",
    "`reference`: Conv (7,1) then depthwise Conv (1,7), NCHW, as written. `channels-last`: the same two convs "
    "on NHWC tensors (back to NCHW after the block). `dense`: the rank-1 kernel materialised (7x the conv "
    "MACs) as one 7x7 conv plus the exact bias map. All three run BN, ReLU, pool and dropout as modules.",
    "% of matmul above 100 % is possible: ptflops' MACs include BatchNorm/ReLU/pool work on the "
    "full-resolution activation that `fused` does on the pooled tensor.",
    "Threads: with other processes on the 2 cores, each OpenMP parallel region can wait a scheduler tick for "
    "its second thread, which penalises many small ops (the training step) far more than one long matmul; "
    "`--threads 1` measures the compute without that effect. The run's thread count is in the header.",
    "The triplet-loss variants use the PairedBatchSampler and a distance matrix; the projection assumes they "
    "train at the CE rate of their architecture.",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32, the paper's)")
    p.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated architectures (default {','.join(ARCHS)})")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"FCNN conv_impl values to measure (default {','.join(IMPLS)})")
    p.add_argument("--mels", default="40,200", help="comma-separated mel band counts (default 40,200)")
    p.add_argument("--input", choices=sorted(INPUTS), default="dcase2019",
                   help="clip shape: dcase2019 = 2 channels x 500 frames (10 s, the paper's); dcase2024 = 1 channel x 65 "
                        "frames (1 s, the DCASE 2024 baseline's front end) (default dcase2019)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds of training per configuration and round, at least one step (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--eval-clips", type=int, default=128, help="clips per evaluation pass (default 128)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-micro", action="store_true", help="skip the per-block micro-benchmark")
    p.add_argument("--try-compile", action="store_true",
                   help="also time torch.compile of a block (depthwise as shifted multiply-adds; slow to compile)")
    p.add_argument("--precisions", default=None,
                   help="comma-separated --precision values to train at (default: fp32, plus bf16 where the device "
                        "has native bf16)")
    p.add_argument("--parity-results", type=Path, default=None,
                   help="results folder of the fp32/bf16 accuracy-parity runs, summarised into the report")
    p.add_argument("--out", type=Path, default=HERE / "results", help="output folder (default benchmarks/results)")
    args = p.parse_args(argv)

    import architectures  # noqa: F401  (registers)
    import losses  # noqa: F401
    from harness.model import implementation
    from harness.complexity import measure
    from harness.precision import cpu_bf16
    from harness.runner.train import tune_cpu_allocator

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no GPU is available here")
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cpu":
        tune_cpu_allocator()
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    mels = [int(m) for m in args.mels.split(",") if m.strip()]
    default_impl = default_impl_for(device)
    native = device.type == "cuda" or cpu_bf16() is not None
    precisions = ([x.strip() for x in args.precisions.split(",") if x.strip()] if args.precisions
                  else ["fp32", "bf16"] if native else ["fp32"])
    channels, frames = INPUTS[args.input]
    configs = [Config(a, m, i, pr, channels, frames) for m in mels for a in archs
               for i in (impls if a == "fcnn" else [None]) for pr in precisions]

    rec: dict[str, Any] = {"machine": machine(device), "device": device.type, "batch_size": args.batch_size,
                           "seconds": args.seconds, "rounds": args.rounds, "mels": mels, "default_impl": default_impl,
                           "input": args.input, "channels": channels, "frames": frames,
                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "load_avg_start": round(os.getloadavg()[0], 2)}
    if device.type == "cpu":
        rec["allocator_ms"] = allocator_check()
        if not args.no_micro:
            rec["block_micro"] = block_micro(args.batch_size, args.try_compile)
            for m in rec["block_micro"]:
                print(f"micro: {m}", flush=True)
    with tempfile.TemporaryDirectory(prefix="harness-bench-train-") as tmp:
        for c in configs:
            cx = measure(c.arch, c.n_mels, n_frames=c.frames, in_channels=c.channels)
            c.macs, c.macs_conv_linear, c.params = cx.macs, int(cx.macs_conv_linear or 0), cx.params
            c.trainer = make_trainer(c, args.batch_size, device, max(args.batch_size, 32), args.eval_clips, Path(tmp))
            t0 = time.perf_counter()
            c.trainer.train_epoch(1)  # warm-up: kernels built, allocator primed
            c.trainer.predict()
            sync(device)
            c.implementation = implementation(c.trainer.model)["implementation"]
            print(f"built {c.label} @ {c.n_mels} mels: {c.params:,} params, {c.macs / 1e6:.0f} M MACs/clip, "
                  f"warm-up {time.perf_counter() - t0:.1f} s", flush=True)
        mm: dict[str, list[float]] = {pr: [] for pr in precisions}
        for r in range(args.rounds):
            for c in configs:
                tr = c.trainer
                c.train.append(run_for(lambda: (tr.train_epoch(1), args.batch_size)[1], args.seconds, device))
                c.infer.append(run_for(lambda: (tr.predict(), args.eval_clips)[1], max(args.seconds / 3, 0.1), device))
                print(f"round {r + 1}: {c.label:28s} {c.n_mels:4d} mels  train {c.train[-1][0] / c.train[-1][1]:8.2f} "
                      f"clips/s  infer {c.infer[-1][0] / c.infer[-1][1]:8.2f} clips/s  (load {os.getloadavg()[0]:.1f})",
                      flush=True)
            for pr in precisions:
                mm[pr].append(matmul_rate(2.0, device, pr))
                print(f"round {r + 1}: {pr} matmul {mm[pr][-1] / 1e9:.1f} GFLOP/s", flush=True)
    rec["load_avg_end"] = round(os.getloadavg()[0], 2)
    rec["precisions"] = precisions
    rec["matmul_gflops_rounds"] = {pr: [round(v / 1e9, 2) for v in vals] for pr, vals in mm.items()}
    rec["matmul_gflops"] = {pr: round(median(vals) / 1e9, 2) for pr, vals in mm.items()}
    rec.update(summarise(configs, mm))
    rec["best_matmul_gflops"] = round(median(rec["best_matmul_gflops_rounds"]), 2)
    rec["verdicts"] = verdicts(rec["rows"], default_impl, rec["machine"]["kind"])
    rec["parity"] = parity(args.parity_results)
    measured = [v for v in rec["verdicts"] if v["pass"] is not None]
    rec["pass"] = all(v["pass"] for v in measured) if measured else None
    rec["projection"] = projection(rec["rows"], default_impl) if args.input == "dcase2019" else None  # 10-s clips
    rec["gpu"] = ("measured" if device.type == "cuda" else
                  "no GPU was available in this session; GPU figures not measured")
    rec["notes"] = NOTES
    stem = (f"train-{rec['machine']['host']}" + ("" if device.type == "cpu" else f"-{device.type}")
            + ("" if args.input == "dcase2019" else f"-{args.input}"))
    write_report(args.out, stem, rec, markdown(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
