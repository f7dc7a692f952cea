"""Paired significance tests, checked by hand on a FABRICATED results store (tests/fixtures_store.py)."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pytest

from fixtures_store import write_store
from harness.errors import DataError
from harness.report.power import mde
from harness.report.stats import McNemar, bootstrap_ci, build_stats, compare, read_predictions
from harness.report.tables import load_index, select_runs


def exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p by hand: 2 · P(X ≤ min(b, c)), X ~ Binomial(b + c, 1/2), capped at 1."""
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("fixture-store"))


@pytest.fixture(scope="module")
def table(store: Path):
    runs, sel = select_runs(load_index(store))
    t = build_stats(runs, sel, store, mels=(40,))
    return {(c.variant, c.subset): c for c in t.comparisons}, t


def test_mcnemar_matches_hand_computation() -> None:
    m = McNemar(10, 2)
    assert m.p_exact == pytest.approx(158 / 4096) == pytest.approx(exact_p(10, 2))
    assert m.p_mid == pytest.approx((158 - 66) / 4096)  # exact minus P(X = 2) = C(12, 2) / 2^12
    assert McNemar(2, 10).p_exact == pytest.approx(m.p_exact)  # symmetric
    assert McNemar(3, 3).p_exact == 1.0 and McNemar(3, 3).p_mid == pytest.approx(1.0)
    assert McNemar(0, 0).p_exact == 1.0
    assert McNemar(13, 5).p_exact == pytest.approx(25232 / 2 ** 18)
    assert McNemar(9, 0).p_exact == pytest.approx(2 / 2 ** 9)


def test_per_seed_and_pooled_discordant_counts(table) -> None:
    by, _ = table
    c = by[("FCNN", "overall")]
    assert c.baseline == "SubSpectralNet" and c.seeds == (0, 1) and c.n_clips == 120
    assert [(m.b, m.c) for m in c.per_seed] == [(10, 2), (3, 3)]
    assert [m.p_exact for m in c.per_seed] == pytest.approx([158 / 4096, 1.0])
    assert (c.pooled.b, c.pooled.c) == (13, 5) and c.pooled.p_exact == pytest.approx(exact_p(13, 5))
    assert c.diff == pytest.approx(100 * (8 / 120 + 0) / 2)
    assert c.ci[0] <= c.diff <= c.ci[1] and -100 <= c.ci[0] < c.ci[1] <= 100
    u = by[("FCNN", "unseen")]
    assert u.n_clips == 30 and (u.pooled.b, u.pooled.c) == (4, 0) and u.pooled.p_exact == pytest.approx(0.125)


def test_paired_test_holm_and_mde_by_hand(table) -> None:
    by, t = table
    c = by[("FCNN", "overall")]
    # The seeds' discordant clips do not overlap: 13 clips at +1, 5 at -1 (summed over seeds), so the
    # sign-flip test is McNemar's exact test on (13, 5); ψ = mean((s/2)²) = 18 / 4 / 120.
    assert c.paired.p_value == pytest.approx(exact_p(13, 5)) and c.paired.statistic == 8
    assert c.paired.discordance == pytest.approx(18 / 4 / 120)
    assert c.mde == pytest.approx(100 * mde(120, 18 / 4 / 120))
    # Holm over the overall family {FCNN vs SubSpectralNet, FCNN-triplet vs FCNN (p = 1), FCNN-spec vs FCNN (2, 0)}.
    assert by[("FCNN-spec", "overall")].paired.p_value == pytest.approx(0.5)
    assert c.p_holm == pytest.approx(3 * exact_p(13, 5))
    assert by[("FCNN-spec", "overall")].p_holm == pytest.approx(1.0)
    assert by[("FCNN", "unseen")].p_holm == pytest.approx(min(1.0, 3 * 0.125))
    assert "MDE %" in t.headers() and "Holm" in " ".join(t.notes())


def test_identical_predictions_give_no_difference(table) -> None:
    by, _ = table
    c = by[("FCNN-triplet", "overall")]
    assert c.baseline == "FCNN" and (c.pooled.b, c.pooled.c) == (0, 0)
    assert c.pooled.p_exact == 1.0 and c.diff == 0 and c.ci == (0.0, 0.0)


def test_only_seeds_with_both_runs_are_paired(table) -> None:
    by, t = table
    c = by[("FCNN-spec", "overall")]
    assert c.seeds == (0,) and (c.pooled.b, c.pooled.c) == (2, 0)
    assert any("FCNN-mixup vs FCNN at 40 mels" in s for s in t.skipped)
    assert ("FCNN-mixup", "overall") not in by


def test_clips_are_matched_by_file_name_not_order(store: Path) -> None:
    a = read_predictions(store / "runs" / "fx-FCNN-s0")
    b = read_predictions(store / "runs" / "fx-SubSpectralNet-s0")
    perm = np.random.default_rng(1).permutation(len(b["labels"]))
    shuffled = {k: v[perm] for k, v in b.items()}
    straight = compare({0: a}, {0: b}, "overall")
    mixed = compare({0: a}, {0: shuffled}, "overall")
    assert (mixed.pooled.b, mixed.pooled.c) == (straight.pooled.b, straight.pooled.c) == (10, 2)
    wrong = {**b, "labels": (b["labels"] + 1) % 10}
    with pytest.raises(DataError, match="disagree on clip labels"):
        compare({0: a}, {0: wrong}, "overall")


def test_bootstrap_interval() -> None:
    assert bootstrap_ci(np.full(50, 0.25)) == (0.25, 0.25)
    d = np.tile([0.0, 1.0], 200)  # mean 0.5, standard error 0.025
    lo, hi = bootstrap_ci(d, n_resamples=2000, seed=3)
    assert 0.43 < lo < 0.47 and 0.53 < hi < 0.57
    assert bootstrap_ci(d, n_resamples=2000, seed=3) == (lo, hi)  # fixed seed: reproducible


def test_missing_predictions_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "predictions.npz")):
        read_predictions(tmp_path)
