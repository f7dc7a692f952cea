"""A run's summary as the commands print it: scores, per-domain metrics, size and complexity."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def complexity_rows(s: dict[str, Any], budget: str | None) -> list[list[str]]:
    """Parameter memory, MACs per second and the verdict against ``budget`` (runs stored before these were recorded: none)."""
    if "macs_per_s_1s" not in s:
        return []
    from harness.complexity import ChallengeComplexity, load_budget

    rows = [[f"parameter memory ({s['eval_precision']})", f"{int(s['param_bytes']):,} B"],
            ["MACs per second (1-s / 10-s clips)", f"{s['macs_per_s_1s'] / 1e6:,.2f} M / {s['macs_per_s_10s'] / 1e6:,.2f} M"]]
    for p, q in (s.get("quantized") or {}).items():
        rows.append([f"evaluated at {p}: overall acc % / parameter memory", f"{100 * q['acc']:.2f} / {int(q['param_bytes']):,} B"])
    if budget:
        b = load_budget(budget)
        c = ChallengeComplexity(int(s["params"]), int(s["macs_per_s_1s"]), float(s["macs_per_s_10s"]))
        rows.append([f"budget {b.name} ({s['eval_precision']})", b.verdict(c, s["eval_precision"])])
    return rows


def metric_rows(s: dict[str, Any]) -> list[list[str]]:
    """Log loss, accuracy per domain and per domain grouping (the DCASE task's device groups), from
    the run's scores; the names come from the dataset, not from here."""
    scores = s.get("scores") or {}
    k = s.get("score_window", 10)
    rows = []
    if "log_loss" in scores:
        rows.append([f"log loss (mean last {k})", f"{scores['log_loss']:.3f}"])
    groups: dict[str, list[str]] = {}
    for key, value in scores.items():
        if key.startswith("acc_") and not key.startswith("acc_class_"):
            grouping, _, name = key[len("acc_"):].partition("_")
            if name:
                groups.setdefault(grouping, []).append(f"{name} {100 * value:.1f}")
    for grouping, parts in groups.items():
        label = "per domain" if grouping == "domain" else f"by {grouping}"
        rows.append([f"acc % {label} (mean last {k})", " · ".join(parts)])
    return rows


def summary_table(s: dict[str, Any], budget: str | None = None) -> str:
    pct = lambda v: "-" if v is None or v != v else f"{100 * float(v):.2f}"  # noqa: E731
    k = s.get("score_window", 10)
    rows = [
        ["run", s["run_id"]],
        ["config", f"{s['arch']} · {s['loss']} · aug {s['aug']} · {s['n_mels']} mels · seed {s['seed']}"],
        ["dataset", f"{s['dataset_kind']} ({s['dataset']})"],
        [f"overall acc % (mean last {k} / final)", f"{pct(s['acc_score'])} / {pct(s['acc_final'])}"],
        *([[f"macro acc % (mean last {k})", pct((s.get("scores") or {})["macro_acc"])]]
          if "macro_acc" in (s.get("scores") or {}) else []),
        *([[f"unseen acc % [{s['unseen_domains']}] (mean last {k} / final)", f"{pct(s['unseen_score'])} / {pct(s['unseen_final'])}"]]
          if s.get("unseen_domains") else [["unseen acc %", "- (no unseen domain in this split)"]]),
        *metric_rows(s),
        ["parameters", f"{int(s['params']):,}"],
        *complexity_rows(s, budget),
        ["wall time", f"{float(s['wall_s']):.1f} s"],
        ["device", f"{s['device']} · {s.get('precision', 'fp32')}"],
    ]
    return tabulate(rows, tablefmt="simple")
