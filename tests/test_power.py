"""Minimum detectable effect, the paired sign-flip test and Holm's adjustment, against hand
computation and against simulated predictions with a planted effect (or none)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.report.power import holm, mde, mde_planned, sign_flip_test


def test_sign_flip_with_one_seed_is_mcnemar_exact() -> None:
    s = np.array([1] * 10 + [-1] * 2 + [0] * 30)
    t = sign_flip_test(s)
    assert t.statistic == 8 and t.n_clips == 42
    assert t.p_value == pytest.approx(158 / 4096)  # 2·P(X ≤ 2), X ~ Bin(12, ½)
    assert t.discordance == pytest.approx(12 / 42)
    assert sign_flip_test(-s).p_value == pytest.approx(t.p_value)
    assert sign_flip_test(np.zeros(5, int)).p_value == 1.0


def test_sign_flip_two_seeds_matches_enumeration() -> None:
    s = np.array([2, 2, 1, -1, 2, 0, 1])  # per-clip differences summed over 2 seeds
    nz = s[s != 0]
    observed = abs(int(s.sum()))
    hits = sum(abs(int(np.dot(signs, np.abs(nz)))) >= observed for signs in itertools.product((1, -1), repeat=len(nz)))
    t = sign_flip_test(s, n_seeds=2)
    assert t.p_value == pytest.approx(hits / 2 ** len(nz))
    assert t.diff == pytest.approx(7 / (7 * 2)) and t.discordance == pytest.approx(np.mean((s / 2) ** 2))
    with pytest.raises(ValueError):
        sign_flip_test(np.array([0.5, 1.0]))


def test_holm_matches_hand_computation() -> None:
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted: 0.005 (×4 = 0.02), 0.01 (×3 = 0.03), 0.03 (×2 = 0.06), 0.04 (×1 = 0.04 → max 0.06)
    assert holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm(p)[4])
    assert holm([0.5, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])  # a family of one is unadjusted


def test_mde_closed_cases() -> None:
    assert np.isnan(mde(0, 0.3)) and np.isnan(mde(100, 0.0))
    d = mde(2400, 0.25)
    za, zb = 1.959964, 0.841621
    assert np.sqrt(2400) * d == pytest.approx(za * 0.5 + zb * np.sqrt(0.25 - d * d), rel=1e-6)
    assert mde(9600, 0.25) < d < mde(600, 0.25)  # more clips, smaller effects
    assert mde(3, 0.1) == float("inf")  # not even all 0.3 discordant clips going one way would do
    assert mde_planned(2400, 0.25, seeds=1) == pytest.approx(d)
    assert mde_planned(2400, 0.25, seeds=2, seed_correlation=1.0) == pytest.approx(d)
    assert mde_planned(2400, 0.25, seeds=2) < d


@pytest.mark.parametrize(("n", "psi"), [(2400, 0.25), (800, 0.3)])
def test_planted_mde_is_detected_about_80_percent_of_the_time(n: int, psi: float) -> None:
    delta = mde(n, psi)
    rng = np.random.default_rng(0)
    p_up, p_down = (psi + delta) / 2, (psi - delta) / 2
    sims = 800
    s = rng.choice([1, -1, 0], size=(sims, n), p=[p_up, p_down, 1 - psi])
    rate = np.mean([sign_flip_test(row).p_value < 0.05 for row in s])
    assert 0.74 <= rate <= 0.86, rate  # the exact test is slightly conservative; ±2.5 standard errors


def _simulated_loco(rng: np.random.Generator, effect: float, *, domains: int = 10, clips: int = 240,
                    seeds: int = 2) -> np.ndarray:
    """Per-clip differences summed over seeds for a simulated leave-one-domain-out grid.

    Each domain (fold) has its own accuracy; each clip its own difficulty shared by all seeds and
    both models (so seeds and models are correlated through the clip); the variant's chance of
    being right is the baseline's plus ``effect``.
    """
    s = []
    for _ in range(domains):
        base = rng.uniform(0.45, 0.75)
        difficulty = rng.normal(0, 1.2, clips)
        p_b = 1 / (1 + np.exp(-(np.log(base / (1 - base)) + difficulty)))
        p_v = np.clip(p_b + effect, 0, 1)
        v = rng.random((seeds, clips)) < p_v
        b = rng.random((seeds, clips)) < p_b
        s.append((v.astype(int) - b.astype(int)).sum(axis=0))
    return np.concatenate(s)


def test_pooled_test_is_calibrated_on_simulated_grids() -> None:
    rng = np.random.default_rng(1)
    null = [sign_flip_test(_simulated_loco(rng, 0.0), n_seeds=2) for _ in range(400)]
    rejected = np.mean([t.p_value < 0.05 for t in null])
    assert 0.02 <= rejected <= 0.075  # level 5 %, within ~2 standard errors, not uselessly conservative
    # Plant an effect of the size the null grids' MDE names: it is found about 80 % of the time.
    planted = float(np.median([t.mde() for t in null]))
    hits = [sign_flip_test(_simulated_loco(rng, planted), n_seeds=2) for _ in range(300)]
    assert 0.72 <= np.mean([t.p_value < 0.05 for t in hits]) <= 0.88
    assert np.mean([t.diff for t in hits]) == pytest.approx(planted, abs=0.004)


def test_plan_counts_the_protocols_clips(tmp_path) -> None:
    from tau_factory import write_tau

    from harness.data import tau
    from harness.report.plan import build_plan

    ds = tau.load_dataset(write_tau(tmp_path / "d", scenes=("airport", "bus"), cities=("lyon", "paris"),
                                    locations_per=3, segments_per=2, seconds=0.05, milan_unused=1))
    fold1 = build_plan(ds, "fold1", seeds=2)
    loco = build_plan(ds, "loco", seeds=2)
    assert loco.subsets == {"unseen (pooled)": len(ds.clips)}  # every clip once
    assert fold1.subsets["unseen"] == int(((ds.clips["domain"] == "milan") & (ds.clips["fold"] == "evaluate")).sum())
    (rec,) = [r for r in loco.records() if r["discordance"] == 0.2]
    assert rec["mde_pct_seeds_differ"] == pytest.approx(100 * mde(len(ds.clips), 0.1))
    assert rec["mde_pct_seeds_same"] == pytest.approx(100 * mde(len(ds.clips), 0.2))
