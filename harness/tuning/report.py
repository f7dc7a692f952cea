"""What a search found: best trials, importances, trial counts and speed, plots, dashboard hint."""

from __future__ import annotations

import datetime as dt
import shlex
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from tabulate import tabulate

from harness.atomic import write_json

PARAM_LABELS = {"alpha": "α", "gamma": "γ", "lr": "lr"}


@dataclass
class SessionStats:
    """Trial counts of the whole study and the speed of this session."""

    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    session_finished: int
    session_failed: int
    session_seconds: float
    last_error: str | None = None

    @property
    def trials_per_hour(self) -> float:
        return 3600.0 * self.session_finished / self.session_seconds if self.session_seconds > 0 else float("nan")


def stats(study: optuna.Study, started: float) -> SessionStats:
    trials = study.get_trials(deepcopy=False)
    by = {s: sum(t.state == s for t in trials) for s in TrialState}
    since = dt.datetime.fromtimestamp(started)
    recent = [t for t in trials if t.datetime_complete is not None and t.datetime_complete >= since]
    done = [t for t in recent if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in recent if t.state == TrialState.FAIL]
    elapsed = dt.datetime.now().timestamp() - started
    return SessionStats(by[TrialState.COMPLETE], by[TrialState.PRUNED], by[TrialState.FAIL],
                        by[TrialState.RUNNING], by[TrialState.WAITING], len(done), len(failed), elapsed,
                        failed[-1].user_attrs.get("error") if failed else None)


def epochs_run(t: FrozenTrial) -> int:
    return max(t.intermediate_values, default=0)


def best_table(study: optuna.Study, top: int = 10) -> str:
    """The best complete trials, best first."""
    names = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params}, key=list(PARAM_LABELS).index)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    done.sort(key=lambda t: t.value, reverse=True)
    rows = [[t.number, *(f"{t.params[n]:.4g}" if n in t.params else "-" for n in names),
             f"{100 * t.value:.2f}", t.state.name.lower(), epochs_run(t)] for t in done[:top]]
    headers = ["trial", *(PARAM_LABELS[n] for n in names), "value %", "state", "epochs"]
    return tabulate(rows, headers=headers, tablefmt="simple")


def importances(study: optuna.Study) -> dict[str, float] | str:
    """Optuna's parameter importances, or why there are none."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return f"parameter importances need at least 2 complete trials (have {len(complete)})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial scored the same
        return f"parameter importances unavailable ({exc})"


def save_plots(study: optuna.Study, out: Path) -> list[Path]:
    """Optimisation history, α × γ contour and slice plots as PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    params = list(complete[0].params)
    plots = {"history": lambda: ovm.plot_optimization_history(study),
             "slice": lambda: ovm.plot_slice(study)}
    if {"alpha", "gamma"} <= set(params) and len(complete) >= 2:
        plots["contour"] = lambda: ovm.plot_contour(study, params=["alpha", "gamma"])
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for name, make in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = make()
        first = ax.flat[0] if hasattr(ax, "flat") else ax
        fig = first.figure
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def best_summary(study: optuna.Study) -> dict[str, Any] | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = study.best_trial
    return {"trial": best.number, "value": best.value, "params": best.params, "run_id": best.user_attrs.get("run_id")}


def render(study: optuna.Study, started: float, out: Path, dashboard: str) -> str:
    """The text report; also writes the plots and ``summary.json`` into ``out``."""
    s = stats(study, started)
    lines = [f"study {study.study_name}: {s.complete} complete, {s.pruned} pruned, {s.failed} failed"
             + (f", {s.running} running" if s.running else "") + (f", {s.waiting} waiting" if s.waiting else "")]
    lines.append(f"this session: {s.session_finished} trials in {s.session_seconds / 60:.1f} min"
                 + (f" = {s.trials_per_hour:.1f} trials/hour" if s.session_finished else ""))
    best = best_summary(study)
    if best is None:
        lines.append("no complete trial yet")
    else:
        lines += ["", best_table(study), ""]
        params = ", ".join(f"{PARAM_LABELS[k]} = {v:.4g}" for k, v in best["params"].items())
        lines.append(f"best: trial {best['trial']}: {params} → {100 * best['value']:.2f}% (run {best['run_id']})")
    imp = importances(study)
    if isinstance(imp, str):
        lines.append(imp)
    else:
        lines.append("parameter importances: " + ", ".join(f"{PARAM_LABELS.get(k, k)} {v:.2f}" for k, v in imp.items()))
    plots = save_plots(study, out)
    if plots:
        lines.append("plots: " + ", ".join(str(p) for p in plots))
    lines.append(f"browse it: optuna-dashboard {shlex.quote(str(dashboard))}")
    write_json(out / "summary.json", {"study": study.study_name, "best": best, "stats": asdict(s),
                                      "trials_per_hour": s.trials_per_hour,
                                      "importances": imp if isinstance(imp, dict) else None})
    return "\n".join(lines)
