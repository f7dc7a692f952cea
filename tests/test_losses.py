"""Losses: hand-computed values, the triplet sampling rules, mixup refusal, gradient flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from harness.contracts import ModelOutput
from harness.registry import create_architecture, create_loss
from harness.sampling import PairedBatchSampler


def _out(logits, embedding, band_logits=None) -> ModelOutput:
    t = lambda v: None if v is None else torch.as_tensor(v, dtype=torch.float64)  # noqa: E731
    return ModelOutput(t(logits), t(embedding), t(band_logits))


def test_ce_without_bands_is_plain_cross_entropy() -> None:
    logits = torch.randn(5, 10, dtype=torch.float64)
    target = torch.tensor([0, 3, 9, 3, 1])
    terms = create_loss("ce")(_out(logits, torch.zeros(5, 4)), target, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(terms["loss"], F.cross_entropy(logits, target))
    assert "band_ce" not in terms and "triplet" not in terms


def test_ce_with_bands_adds_every_band_equally() -> None:
    logits = [[2.0, 0.0], [0.0, 1.0]]
    bands = [[[1.0, 1.0], [0.0, 3.0]], [[0.5, 0.0], [0.0, 0.0]]]  # (B=2, bands=2, classes=2)
    target = torch.tensor([0, 1])
    nll = lambda z, y: -z[y] + np.log(np.exp(z).sum())  # noqa: E731
    glob = (nll(np.array([2.0, 0.0]), 0) + nll(np.array([0.0, 1.0]), 1)) / 2
    band0 = (nll(np.array([1.0, 1.0]), 0) + nll(np.array([0.5, 0.0]), 1)) / 2
    band1 = (nll(np.array([0.0, 3.0]), 0) + nll(np.array([0.0, 0.0]), 1)) / 2
    terms = create_loss("ce")(_out(logits, [[0.0], [0.0]], bands), target, torch.zeros(2, dtype=torch.long))
    assert terms["ce"].item() == pytest.approx(glob)
    assert terms["band_ce"].item() == pytest.approx(band0 + band1)
    assert terms["loss"].item() == pytest.approx(glob + band0 + band1)
    half = create_loss("ce", band_weight=0.5)(_out(logits, [[0.0], [0.0]], bands), target, torch.zeros(2, dtype=torch.long))
    assert half["loss"].item() == pytest.approx(glob + 0.5 * (band0 + band1))


def test_ce_accepts_soft_mixup_targets() -> None:
    logits = torch.randn(4, 3, 10, dtype=torch.float64)
    out = _out(logits[:, 0], torch.zeros(4, 2), logits)
    hard = torch.tensor([1, 2, 3, 4])
    soft = F.one_hot(hard, 10).double()
    loss = create_loss("ce")
    assert loss.supports_mixup and loss.pairing is None
    torch.testing.assert_close(loss(out, soft, hard)["loss"], loss(out, hard, hard)["loss"])
    mixed = 0.3 * soft + 0.7 * F.one_hot(hard.flip(0), 10).double()
    assert torch.isfinite(loss(out, mixed, hard)["loss"])


def test_triplet_city_equals_hand_computation() -> None:
    # Scenes [0,0,1,1], cities [0,1,0,1]: each anchor has exactly one cross-city positive;
    # the two negatives of every anchor sit at the same distance, so the value is unique.
    emb = [[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    logits = torch.randn(4, 10, dtype=torch.float64)
    target, domain = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    # anchors 0,1: d_ap = 4, d_an = 1 → 4 - 1 + 0.2 = 3.2; anchors 2,3: d_ap = 0, d_an = 1 → 0.
    expected_triplet = (3.2 + 3.2 + 0 + 0) / 4
    loss = create_loss("triplet-city", normalize=False)
    assert (loss.alpha, loss.gamma, loss.pairing, loss.supports_mixup) == (0.2, 10.0, "cross-domain", False)
    terms = loss(_out(logits, emb), target, domain)
    assert terms["triplet"].item() == pytest.approx(expected_triplet)
    assert terms["ce"].item() == pytest.approx(F.cross_entropy(logits, target).item())
    assert terms["loss"].item() == pytest.approx(terms["ce"].item() + 10 * expected_triplet)
    custom = create_loss("triplet-city", alpha=1.0, gamma=2.0, normalize=False)(_out(logits, emb), target, domain)
    assert custom["triplet"].item() == pytest.approx((4.0 + 4.0 + 0 + 0) / 4)  # 4-1+1 = 4; 0-1+1 = 0


def test_triplet_normalised_by_default_equals_hand_computation() -> None:
    # Unit vectors: anchors 0,1 (scene 0): d_ap = |(1,0)-(-1,0)|² = 4, d_an = |(1,0)-(0,1)|² = 2
    # → 4 - 2 + 0.2 = 2.2; anchors 2,3 (scene 1): d_ap = 0, d_an = 2 → 0.
    emb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    logits = torch.zeros(4, 10)
    target, domain = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    loss = create_loss("triplet-city")
    assert loss.normalize
    assert loss(_out(logits, emb), target, domain)["triplet"].item() == pytest.approx(1.1)
    # Normalised: the scale of the embedding does not matter; raw: it does.
    assert loss(_out(logits, 7 * emb), target, domain)["triplet"].item() == pytest.approx(1.1)
    raw = create_loss("triplet-city", normalize=False)(_out(logits, 7 * emb), target, domain)["triplet"].item()
    assert raw == pytest.approx((49 * 4 - 49 * 2 + 0.2) / 2)


def _check_selection(name: str, cross: bool) -> None:
    loss = create_loss(name)
    rng = np.random.default_rng(0)
    target = torch.as_tensor(np.repeat(np.arange(3), 6))
    domain = torch.as_tensor(np.tile([0, 0, 1, 1, 2, 2], 3))
    seen_pos: set[tuple[int, int]] = set()
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    for _ in range(300):
        pos, neg = loss.select(target, domain, gen)
        assert (target[pos] == target).all() and (pos != torch.arange(18)).all()
        assert (target[neg] != target).all()
        if cross:
            assert (domain[pos] != domain).all()
        seen_pos |= {(i, int(p)) for i, p in enumerate(pos)}
    # Every valid positive of anchor 0 turns up (uniform choice, not a fixed partner).
    valid0 = {j for j in range(1, 18) if target[j] == 0 and (not cross or domain[j] != domain[0])}
    assert {p for i, p in seen_pos if i == 0} == valid0


def test_cross_city_selection_rules() -> None:
    _check_selection("triplet-city", cross=True)
    _check_selection("triplet-device", cross=True)


def test_random_selection_allows_the_same_city() -> None:
    _check_selection("triplet-random", cross=False)
    assert create_loss("triplet-random").pairing == "any-domain"


def test_selection_is_reproducible_with_a_generator() -> None:
    loss = create_loss("triplet-city")
    target, domain = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 1, 2, 0, 1, 2])
    a = loss.select(target, domain, torch.Generator().manual_seed(7))
    b = loss.select(target, domain, torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_anchor_without_positive_is_a_clear_error() -> None:
    loss = create_loss("triplet-city")
    out = _out(torch.zeros(4, 10), torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="anchor 2 .*no positive"):
        loss(out, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 0]))
    with pytest.raises(ConfigError, match="no negative"):
        loss(out, torch.tensor([0, 0, 0, 0]), torch.tensor([0, 1, 0, 1]))


def test_triplet_refuses_mixup() -> None:
    loss = create_loss("triplet-city")
    with pytest.raises(ConfigError, match="mixup"):
        loss.check_augmentations(["mixup", "spec"])
    loss.check_augmentations(["spec"])
    create_loss("ce").check_augmentations(["mixup"])
    soft = F.one_hot(torch.tensor([0, 0, 1, 1]), 10).double()
    with pytest.raises(ConfigError, match="not discrete"):
        loss(_out(torch.zeros(4, 10), torch.zeros(4, 2)), soft, torch.tensor([0, 1, 0, 1]))


def test_gradients_reach_the_embedding_and_the_conv_trunk() -> None:
    torch.manual_seed(0)
    model = create_architecture("fcnn", n_mels=40, n_frames=20, channels=[4, 8])
    labels = np.repeat(np.arange(4), 4)
    domains = np.tile([0, 1], 8)
    batch = next(iter(PairedBatchSampler(labels, domains, 8, cross_domain=True, seed=0)))
    x = torch.randn(len(labels), 2, 40, 20)[batch]
    out = model(x)
    out.embedding.retain_grad()
    loss = create_loss("triplet-city", alpha=1e3)  # margin large enough that every anchor is active
    terms = loss(out, torch.as_tensor(labels[batch]), torch.as_tensor(domains[batch]))
    terms["triplet"].backward()
    assert out.embedding.grad.abs().sum() > 0
    for trunk in model.trunks:
        assert trunk.block1[0].freq.weight.grad.abs().sum() > 0
        assert trunk.block2[0].time.weight.grad.abs().sum() > 0
    # The triplet term depends on the conv embedding only, not on the dense layers after it.
    assert all(p.grad is None for p in model.global_head.parameters())
