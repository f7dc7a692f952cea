"""Pooling leave-one-domain-out folds, on a FABRICATED store with known per-clip results.

Three held-out domains with 20, 20 and 10 clips; every fold's run also scores 10 official clips of
other domains, which pooling must ignore. FCNN (the baseline) gets the even clips right in every
fold and seed. FCNN-triplet, per seed, relative to it:

* seed 0: +a1, +a3, +a5, +b1, −c0                      (folds: a 13/20, b 11/20, c 4/10 = 28/50)
* seed 1: +a1, −c2, −c4                                 (folds: a 11/20, b 10/20, c 3/10 = 24/50)

so per clip, summed over seeds: a1 = +2; a3, a5, b1 = +1; c0, c2, c4 = −1; T = +2 over 50 clips.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import DataError
from harness.report.loco import build_loco
from harness.report.tables import load_index, select_runs
from harness.results.store import ResultsStore, save_npz

DOMAINS = {"a": 20, "b": 20, "c": 10}
UP = {0: ["a-1", "a-3", "a-5", "b-1"], 1: ["a-1"]}
DOWN = {0: ["c-0"], 1: ["c-2", "c-4"]}
CONFIG = {"FCNN": ("fcnn", "ce"), "FCNN-triplet": ("fcnn", "triplet-city")}


def _run(store: ResultsStore, variant: str, seed: int, domain: str, *, extra_clip: str | None = None) -> None:
    n = DOMAINS[domain]
    names = [f"{domain}-{i}" for i in range(n)] + [f"official-{domain}-{i}" for i in range(10)]
    if extra_clip:
        names.append(extra_clip)
    correct = np.array([int(x.rsplit("-", 1)[1]) % 2 == 0 for x in names])
    if variant == "FCNN-triplet":
        correct[[names.index(x) for x in UP[seed] if x in names]] = True
        correct[[names.index(x) for x in DOWN[seed] if x in names]] = False
    labels = np.arange(len(names)) % 4
    logits = np.zeros((len(names), 4), np.float32)
    logits[np.arange(len(names)), np.where(correct, labels, (labels + 1) % 4)] = 1.0
    unseen = np.array([not x.startswith("official") for x in names])
    run_id = f"fx-{variant}-s{seed}-{domain}"
    run = store.run_dir(run_id)
    run.mkdir(parents=True, exist_ok=True)
    save_npz(run / "predictions.npz", filenames=np.array(names), labels=labels, logits=logits,
             official=~unseen, unseen=unseen)
    arch, loss = CONFIG[variant]
    store.write_summary(run_id, {
        "run_id": run_id, "status": "complete", "arch": arch, "loss": loss, "aug": "none", "n_mels": 40, "seed": seed,
        "alpha": 0.2 if loss != "ce" else None, "gamma": 10.0 if loss != "ce" else None, "epochs": 30,
        "batch_size": 32, "lr": 0.001, "preset": "quick", "split": f"loco:{domain}", "dataset": "/fixture",
        "dataset_kind": "synthetic", "dataset_identity": "fixture-loco", "unseen_protocol": "all",
        "unseen_domains": domain, "acc_score": 0.5, "unseen_score": float(correct[unseen].mean()),
        "created": f"2024-01-01T00:00:0{seed}", "run_dir": f"runs/{run_id}"})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loco-store")
    s = ResultsStore(root)
    for variant, seed, domain in itertools.product(CONFIG, (0, 1), DOMAINS):
        _run(s, variant, seed, domain)
    return root


def stats_p() -> float:
    """Exact null: signs of (2, 1, 1, 1, 1, 1, 1) flipped at random; P(|Σ| >= 2), enumerated."""
    mags = [2, 1, 1, 1, 1, 1, 1]
    hits = sum(abs(sum(e * m for e, m in zip(signs, mags))) >= 2 for signs in itertools.product((1, -1), repeat=7))
    return hits / 128


def _build(root: Path, all_domains: tuple[str, ...] | None = None):
    runs, sel = select_runs(load_index(root), split="loco")
    return build_loco(runs, sel, root, mels=(40,), all_domains=all_domains)


def test_pooled_accuracy_weights_folds_by_their_clips(store: Path) -> None:
    acc, _ = _build(store)
    rows = {r.variant.name: r for r in acc.rows}
    assert acc.domains == ("a", "b", "c")
    assert rows["FCNN"].pooled == pytest.approx((50.0, 50.0))
    assert rows["FCNN-triplet"].pooled == pytest.approx((56.0, 48.0))  # 28/50 and 24/50, not the mean of folds
    assert rows["FCNN-triplet"].mean == pytest.approx(52.0) and rows["FCNN-triplet"].std == pytest.approx(np.sqrt(32))
    assert rows["FCNN-triplet"].clips == (50, 50) and rows["FCNN-triplet"].folds == (3, 3)
    assert rows["FCNN-triplet"].by_domain == pytest.approx({"a": 60.0, "b": 52.5, "c": 35.0})
    assert acc.display_rows()[0][4] == "3/3 of 3" and any("not readable here" in n for n in acc.notes())


def test_unfinished_folds_show_against_the_datasets_domains(store: Path) -> None:
    acc, _ = _build(store, all_domains=("a", "b", "c", "d"))
    assert acc.domains == ("a", "b", "c", "d")
    assert acc.display_rows()[0][4] == "3/3 of 4" and acc.display_rows()[0][-1] == "—"


def test_pooled_paired_test_by_hand(store: Path) -> None:
    _, stats = _build(store)
    (c,) = stats.comparisons
    assert (c.variant, c.baseline, c.n_clips, c.seeds) == ("FCNN-triplet", "FCNN", 50, (0, 1))
    assert c.paired.statistic == 2 and (c.pooled.b, c.pooled.c) == (5, 3)
    assert c.paired.p_value == pytest.approx(stats_p())
    assert c.p_holm == pytest.approx(c.paired.p_value)  # a family of one
    assert c.diff == pytest.approx(100 * 2 / 2 / 50)
    assert c.paired.discordance == pytest.approx((1 + 6 * 0.25) / 50)
    assert c.by_domain == pytest.approx({"a": 100 * (1 + 0.5 + 0.5) / 20, "b": 100 * 0.5 / 20, "c": -100 * 1.5 / 10})
    assert stats.display_rows()[0][8] == "2 / 1 of 3" and stats.display_rows()[0][-1] == "∞"


def test_table_command_pools_the_folds(store: Path, capsys) -> None:
    assert main(["table", "--results", str(store), "--split", "loco", "--mels", "40", "--table", "1",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = [r for r in doc["loco"]["rows"] if r["variant"] == "FCNN-triplet"]
    assert row["unseen_pooled_pct"] == pytest.approx(52.0)
    (cmp,) = doc["loco_stats"]["rows"]
    assert cmp["statistic"] == 2 and cmp["p_paired"] == pytest.approx(stats_p())
    assert cmp["mde_pct"] is None  # infinite (JSON has no ∞): 50 clips, 8 discordant, no effect reaches 80 %


def test_a_clip_scored_by_two_folds_is_refused(tmp_path: Path) -> None:
    s = ResultsStore(tmp_path)
    for variant, domain in itertools.product(CONFIG, DOMAINS):
        _run(s, variant, 0, domain, extra_clip="a-3" if domain == "b" else None)
    with pytest.raises(DataError, match="'a-3' is scored by two"):
        _build(tmp_path)
