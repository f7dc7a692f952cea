"""How big a difference a paired comparison of two classifiers can see, and whether it saw one.

Every comparison here is paired on clips: each clip is scored by the variant and by its baseline
(once per training seed), and only the per-clip difference matters. With ``S`` seeds the evidence
of clip ``i`` is ``s_i = Σ_seeds (variant right − baseline right)``, an integer in ``[−S, S]``.

* :func:`sign_flip_test` — the exact paired randomisation test of "the two models are
  exchangeable on every clip": under it each ``s_i`` is as likely to be ``+|s_i|`` as
  ``−|s_i|``, so ``T = Σ s_i`` has a known distribution (a convolution of binomials). With one
  seed it *is* McNemar's exact test. A clip counts once however many seeds share it, and clips
  of different folds (leave-one-domain-out) each enter with their own fold's pair of models.
* :func:`mde` — the smallest true accuracy difference that test detects with 80 % power at a
  two-sided 5 % level, from the number of clips and the observed discordance
  ``ψ = mean(d_i²)`` (``d_i = s_i / S``; with one seed, the share of clips on which the two
  disagree): the normal approximation of McNemar's power (Connor 1987),
  ``√n·δ = z(1−α/2)·√ψ + z(power)·√(ψ − δ²)``.
* :func:`holm` — Holm's step-down adjustment for several variants tested against one baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.8


def mde(n: int, discordance: float, *, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable accuracy difference (a fraction) of a paired test on ``n`` clips.

    ``discordance`` is ``ψ = mean(d_i²)`` of the per-clip seed-averaged differences. NaN when
    nothing can be said (no clips or no disagreement); infinite when not even the largest effect
    that discordance allows (every disagreement going the variant's way, δ = ψ) reaches the power.
    """
    if n <= 0 or not discordance > 0:
        return float("nan")
    psi = float(discordance)
    za, zb = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)

    def gap(delta: float) -> float:  # increasing in delta
        return math.sqrt(n) * delta - za * math.sqrt(psi) - zb * math.sqrt(max(psi - delta * delta, 0.0))

    hi = min(psi, 1.0)
    if gap(hi) <= 0:
        return float("inf")
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10))


def mde_planned(n: int, discordance: float, seeds: int = 1, seed_correlation: float = 0.0, **kw: float) -> float:
    """The MDE a grid will have before it runs: ``n`` clips, per-seed discordance ``discordance``.

    Averaging ``seeds`` seeds shrinks ``ψ`` to ``discordance · (1 + (S − 1)·ρ) / S`` where ``ρ``
    is the correlation of one clip's difference between seeds (0 = seeds disagree on different
    clips, the best case; 1 = seeds add nothing).
    """
    if seeds < 1:
        raise ValueError("seeds must be >= 1")
    psi = discordance * (1 + (seeds - 1) * seed_correlation) / seeds
    return mde(n, psi, **kw)


@dataclass(frozen=True)
class PairedTest:
    """The pooled paired comparison of one variant with its baseline over clips (and seeds)."""

    n_clips: int
    n_seeds: int  # the most seeds any clip has
    statistic: int  # T = Σ_i s_i = (variant right) − (baseline right), summed over clips and seeds
    discordance: float  # ψ = mean over clips of (s_i / S)²
    p_value: float  # exact two-sided sign-flip p
    diff: float  # accuracy difference (fraction), variant − baseline: mean over clips of s_i / S_i

    def mde(self, alpha: float = ALPHA, power: float = POWER) -> float:
        return mde(self.n_clips, self.discordance, alpha=alpha, power=power)


def _null_distribution(abs_s: np.ndarray) -> tuple[np.ndarray, int]:
    """P(T = t) for t = offset + index, T = Σ ε_i |s_i| with independent fair signs ε_i."""
    values, counts = np.unique(abs_s[abs_s > 0], return_counts=True)
    pmf, offset = np.ones(1), 0
    for k, m in zip(values.tolist(), counts.tolist()):
        part = np.zeros(2 * k * m + 1)
        part[:: 2 * k] = sps.binom.pmf(np.arange(m + 1), m, 0.5)  # k·(2B − m), B ~ Bin(m, ½)
        pmf, offset = np.convolve(pmf, part), offset - k * m
    return pmf, offset


def sign_flip_test(s: np.ndarray, n_seeds: int | np.ndarray = 1) -> PairedTest:
    """Exact two-sided paired test on per-clip differences ``s`` (integers, summed over seeds).

    ``n_seeds``: how many seeds each clip's ``s`` sums (one number, or one per clip when some
    seeds have not scored every clip); it scales the reported difference and discordance only.
    """
    s = np.asarray(s)
    if s.size and not np.array_equal(s, np.round(s)):
        raise ValueError("per-clip differences must be integers (counts summed over seeds)")
    s = s.astype(np.int64)
    k = np.broadcast_to(np.asarray(n_seeds, dtype=float), s.shape)
    t = int(s.sum())
    d = s / k if s.size else s.astype(float)
    psi = float(np.mean(d ** 2)) if s.size else float("nan")
    diff = float(np.mean(d)) if s.size else float("nan")
    seeds = int(k.max()) if s.size else 0
    if not np.any(s):
        return PairedTest(int(s.size), seeds, t, psi, 1.0, diff)
    pmf, offset = _null_distribution(np.abs(s))
    support = np.arange(len(pmf)) + offset
    p = float(pmf[np.abs(support) >= abs(t)].sum())
    return PairedTest(int(s.size), seeds, t, psi, min(1.0, p), diff)


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    Sorted ascending, the i-th smallest (0-based) of m becomes ``max_{j ≤ i} min(1, (m − j)·p_(j))``.
    NaN entries are left out of the family and stay NaN.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if not ok.size:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
