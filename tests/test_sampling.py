"""PairedBatchSampler: valid positives and negatives in every batch, coverage, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.sampling import PairedBatchSampler


def _dataset(seed: int, n: int = 400, scenes: int = 10, domains: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, scenes, n)
    doms = rng.integers(0, domains, n)
    for s in range(scenes):  # every scene in at least two domains
        idx = np.flatnonzero(labels == s)
        doms[idx[0]], doms[idx[1]] = 0, 1
    return labels, doms


def _assert_valid(batch: list[int], labels: np.ndarray, doms: np.ndarray, cross: bool, batch_size: int) -> None:
    assert 4 <= len(batch) <= batch_size and len(batch) % 2 == 0
    lab, dom = labels[batch], doms[batch]
    assert len(set(lab)) >= 2, "no negative in the batch"
    for i, (s, d) in enumerate(zip(lab, dom)):
        others = np.arange(len(batch)) != i
        ok = others & (lab == s) & ((dom != d) if cross else True)
        assert ok.any(), f"anchor {batch[i]} has no positive"


@pytest.mark.parametrize("cross", [True, False])
@pytest.mark.parametrize("batch_size", [4, 6, 32])
def test_every_anchor_has_a_positive_and_a_negative(cross: bool, batch_size: int) -> None:
    for seed in range(3):
        labels, doms = _dataset(seed)
        sampler = PairedBatchSampler(labels, doms, batch_size, cross_domain=cross, seed=seed)
        for epoch in range(4):
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler)
            for b in batches:
                _assert_valid(b, labels, doms, cross, batch_size)


def test_each_epoch_visits_every_clip_about_once() -> None:
    labels, doms = _dataset(0, n=1000)
    sampler = PairedBatchSampler(labels, doms, 32, cross_domain=True, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        counts = Counter(i for b in sampler for i in b)
        assert set(counts) == set(range(1000))
        assert sum(counts.values()) - 1000 <= 40  # only leftover partners repeat


def test_unbalanced_domains_still_pair_across_domains() -> None:
    # Scene 0: 12 clips in city 0, one each in cities 1 and 2 — most need a reused partner.
    labels = np.array([0] * 14 + [1] * 4)
    doms = np.array([0] * 12 + [1, 2] + [0, 1, 0, 1])
    sampler = PairedBatchSampler(labels, doms, 4, cross_domain=True, seed=3)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        for b in batches:
            _assert_valid(b, labels, doms, True, 4)
        assert set(i for b in batches for i in b) == set(range(18))


def test_order_is_a_function_of_seed_and_epoch() -> None:
    labels, doms = _dataset(1)
    a = PairedBatchSampler(labels, doms, 16, cross_domain=True, seed=5)
    epochs = []
    for e in range(3):
        a.set_epoch(e)
        epochs.append(list(a))
    assert epochs[0] != epochs[1] != epochs[2]
    resumed = PairedBatchSampler(labels, doms, 16, cross_domain=True, seed=5)
    resumed.set_epoch(2)
    assert list(resumed) == epochs[2]
    other_seed = PairedBatchSampler(labels, doms, 16, cross_domain=True, seed=6)
    other_seed.set_epoch(2)
    assert list(other_seed) != epochs[2]


def test_drop_last_keeps_only_full_batches() -> None:
    labels, doms = _dataset(2, n=203)
    sampler = PairedBatchSampler(labels, doms, 8, cross_domain=True, seed=0, drop_last=True)
    assert all(len(b) == 8 for b in sampler)
    keep = PairedBatchSampler(labels, doms, 8, cross_domain=True, seed=0)
    assert len(keep) >= len(sampler)


def test_scene_in_one_domain_is_refused_naming_scene_and_domain() -> None:
    labels = [0, 0, 1, 1, 2, 2]
    doms = [0, 1, 3, 3, 0, 1]
    with pytest.raises(ConfigError, match=r"class 'bus' only in domain 'milan'") as err:
        PairedBatchSampler(labels, doms, 4, cross_domain=True, seed=0, scene_names=["airport", "bus", "park"],
                           domain_names=["barcelona", "helsinki", "lisbon", "milan"])
    assert "\n" not in str(err.value)
    PairedBatchSampler(labels, doms, 4, cross_domain=False, seed=0)  # any-domain pairing is fine


@pytest.mark.parametrize("batch_size", [2, 5, 7, 0])
def test_batch_size_must_be_even_and_at_least_four(batch_size: int) -> None:
    labels, doms = _dataset(0)
    with pytest.raises(ConfigError, match="even batch size"):
        PairedBatchSampler(labels, doms, batch_size, cross_domain=True, seed=0)


def test_single_scene_or_single_clip_is_refused() -> None:
    with pytest.raises(ConfigError, match="two scenes"):
        PairedBatchSampler([0, 0, 0, 0], [0, 1, 0, 1], 4, cross_domain=True, seed=0)
    with pytest.raises(ConfigError, match="two training clips per scene"):
        PairedBatchSampler([0, 0, 1], [0, 1, 0], 4, cross_domain=False, seed=0)
