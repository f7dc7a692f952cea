"""Augmentation plugins against hand computations: Frequency-MixStyle statistics, DIR as a
direct convolution, roll wrapping; the pipeline, the registry and the option checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.contracts import AugmentContext
from harness.errors import ConfigError, DataError
from harness.features.logmel import FeatureConfig, LogMelExtractor, extract
from harness.registry import AUGMENTATIONS, create_augmentation, create_loss
from harness.runner.augment import BatchAugment
from harness.runner.config import RunConfig


def ctx(n_mels: int = 40, n_frames: int = 50, sample_rate: int = 16000, channels: int = 2, **kw) -> AugmentContext:
    return AugmentContext(n_classes=10, n_mels=n_mels, n_frames=n_frames, sample_rate=sample_rate,
                          features=FeatureConfig(n_mels=n_mels), mean=torch.zeros(channels, n_mels, 1),
                          std=torch.ones(channels, n_mels, 1), **kw)


# -- Frequency-MixStyle -------------------------------------------------------------------------
def test_freq_mixstyle_matches_hand_computation() -> None:
    from augmentations.freq_mixstyle import EPS, mix_band_statistics

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 6, 30)) * rng.uniform(0.5, 3, size=(4, 2, 6, 1)) + rng.normal(size=(4, 2, 6, 1))
    lam, perm = np.array([0.1, 0.5, 0.9, 1.0]), np.array([2, 0, 3, 1])
    mu = x.mean(-1, keepdims=True)
    sig = np.sqrt(x.var(-1, ddof=1, keepdims=True) + EPS)
    lam4 = lam[:, None, None, None]
    mu_mix, sig_mix = lam4 * mu + (1 - lam4) * mu[perm], lam4 * sig + (1 - lam4) * sig[perm]
    expected = (x - mu) / sig * sig_mix + mu_mix
    got = mix_band_statistics(torch.from_numpy(x), torch.from_numpy(lam), torch.from_numpy(perm)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    # The result carries the mixed statistics: per-band mean over time = mixed mean, std = mixed std.
    np.testing.assert_allclose(got.mean(-1, keepdims=True), mu_mix, atol=1e-10)
    np.testing.assert_allclose(got.std(-1, ddof=1, keepdims=True), sig_mix, rtol=1e-5)  # up to the ε under the root
    np.testing.assert_allclose(got[3], x[3], atol=1e-10)  # λ = 1 keeps the clip


def test_freq_mixstyle_probability_and_labels() -> None:
    x, y = torch.randn(8, 2, 10, 20), torch.arange(8) % 3
    torch.manual_seed(0)
    same, y0 = create_augmentation("freq-mixstyle", ctx(), p=0.0)(x, y)
    assert torch.equal(same, x) and torch.equal(y0, y)
    mixed, y1 = create_augmentation("freq-mixstyle", ctx(), p=1.0)(x, y)
    assert not torch.allclose(mixed, x) and torch.equal(y1, y) and y1.dtype == torch.long


def test_freq_mixstyle_combines_with_the_triplet_loss() -> None:
    """Labels stay discrete, so every anchor keeps its scene and the cross-city triplet term applies."""
    from harness.contracts import ModelOutput

    pipe = BatchAugment(["freq-mixstyle"], {"freq-mixstyle": {"p": 1.0}}, ctx())
    assert not pipe.mixes_labels
    y = torch.tensor([0, 0, 1, 1]); d = torch.tensor([0, 1, 0, 1])
    x, y_aug = pipe(torch.randn(4, 2, 10, 20), y)
    assert torch.equal(y_aug, y)
    emb = x.flatten(1)
    terms = create_loss("triplet-city")(ModelOutput(torch.randn(4, 10), emb), y_aug, d)
    assert torch.isfinite(terms["loss"]) and "triplet" in terms
    RunConfig(loss="triplet-city", aug="freq-mixstyle").resolved()  # accepted (mixup is refused by the runner)


# -- device impulse responses -------------------------------------------------------------------
def test_dir_gain_of_a_two_tap_filter_is_the_closed_form() -> None:
    from harness.data.irs import mel_log_gains

    ex = LogMelExtractor(FeatureConfig(n_mels=20), 16000)
    a = 0.6
    w = 2 * np.pi * np.arange(ex.n_fft // 2 + 1) / ex.n_fft
    mag = np.sqrt(1 + a * a + 2 * a * np.cos(w))  # |1 + a e^{-jω}|
    fb = ex.filterbank.double().numpy()
    expected = np.log((fb.T @ mag) / fb.sum(0))
    got = mel_log_gains([np.array([1.0, a], np.float32)], ex.filterbank, ex.n_fft)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_dir_equals_a_direct_convolution_of_a_known_response() -> None:
    """Log-mel of (noise * h) − log-mel of noise = the per-band log gain the augmentation adds."""
    from scipy.signal import firwin2

    from harness.data.irs import mel_log_gains

    sr, cfg = 16000, FeatureConfig(n_mels=40)
    f = np.linspace(0, sr / 2, 65)
    h = firwin2(63, f, (f / 300) ** 2 / (1 + (f / 300) ** 2) / np.sqrt(1 + (f / 5000) ** 4), fs=sr)  # a small mic: HP + LP
    noise = np.random.default_rng(1).normal(size=sr * 20).astype(np.float32)
    wet = np.convolve(noise, h)[: len(noise)].astype(np.float32)
    shift = (extract(wet, cfg, sr) - extract(noise, cfg, sr))[0, :, 5:-5].mean(-1)
    ex = LogMelExtractor(cfg, sr)
    gains = mel_log_gains([h.astype(np.float32)], ex.filterbank, ex.n_fft)[0]
    # Equal up to the estimate's noise over 1,000 frames (measured: under 0.01); the gains span 1.5 nats.
    assert np.ptp(gains) > 1
    np.testing.assert_allclose(shift, gains, atol=0.02)


def test_dir_plugin_adds_the_response_in_normalised_units(tmp_path: Path) -> None:
    from harness.data.irs import mel_log_gains

    irs = tmp_path / "irs"
    irs.mkdir()
    sf.write(str(irs / "one.wav"), np.array([1.0, 0.5, 0.25], np.float32), 8000, subtype="FLOAT")  # 8 kHz: resampled
    c = ctx(n_mels=20, sample_rate=16000, ir_folder=irs)
    c.std = torch.rand(2, 20, 1) + 0.5
    aug = create_augmentation("dir", c, p=1.0)
    x = torch.randn(3, 2, 20, 7)
    out, _ = aug(x, torch.zeros(3, dtype=torch.long))
    from harness.data.irs import load_irs

    ex = LogMelExtractor(c.features, 16000)
    g = mel_log_gains(load_irs(irs, 16000), ex.filterbank, ex.n_fft)[0]
    g = torch.as_tensor(g - g.mean(), dtype=torch.float32)
    torch.testing.assert_close(out - x, (g[None, None, :, None] / c.std[None]).expand_as(x))
    same, _ = create_augmentation("dir", c, p=0.0)(x, torch.zeros(3, dtype=torch.long))
    assert torch.equal(same, x)


def test_generated_responses_and_bad_folders(tmp_path: Path) -> None:
    from harness.data.irs import generated_irs, ir_identity, load_irs

    folder = generated_irs()
    assert len(list(folder.glob("*.wav"))) == 8 and generated_irs() == folder
    a = load_irs(folder, 16000)
    assert len(a) == 8 and all(len(h) < 511 for h in a)  # 48 kHz → 16 kHz
    assert ir_identity(folder) == ir_identity(folder)
    with pytest.raises(DataError, match="no .wav"):
        load_irs(tmp_path, 16000)
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(DataError, match="bad.wav"):
        load_irs(tmp_path, 16000)


# -- roll ---------------------------------------------------------------------------------------
def test_roll_wraps_around() -> None:
    from augmentations.roll import roll_frames

    x = torch.arange(2 * 1 * 2 * 6, dtype=torch.float32).view(2, 1, 2, 6)
    out = roll_frames(x, torch.tensor([1, -2]))
    torch.testing.assert_close(out[0], torch.roll(x[0], 1, -1))
    torch.testing.assert_close(out[1], torch.roll(x[1], -2, -1))
    assert out[0, 0, 0, 0] == x[0, 0, 0, -1]  # the last frame wrapped to the front


def test_roll_plugin_shifts_by_at_most_max_s() -> None:
    aug = create_augmentation("roll", ctx(n_frames=50), max_s=0.1)  # 20 ms hop: up to 5 frames
    assert aug.max_frames == 5
    x = torch.randn(16, 2, 4, 50)
    out, _ = aug(x, torch.zeros(16, dtype=torch.long))
    for i in range(16):
        assert any(torch.equal(out[i], torch.roll(x[i], s, -1)) for s in range(-5, 6))


# -- pipeline, registry, options ----------------------------------------------------------------
def test_every_augmentation_is_listed_and_ordered() -> None:
    assert {"dir", "freq-mixstyle", "mixup", "roll", "spec"} <= set(AUGMENTATIONS.names())
    pipe = BatchAugment(["spec", "mixup", "dir", "roll", "freq-mixstyle"], {}, ctx())
    assert [s.name for s in pipe.steps] == ["dir", "roll", "freq-mixstyle", "spec", "mixup"]
    assert pipe.mixes_labels
    x, y = pipe(torch.randn(5, 2, 40, 50), torch.arange(5))
    assert x.shape[0] == 4 and y.shape == (4, 10)  # mixup: even batch, soft labels


def test_aug_options_resolve_into_the_run_id() -> None:
    a = RunConfig(aug="roll,freq-mixstyle").resolved()
    b = RunConfig(aug="freq-mixstyle,roll", aug_options={"freq-mixstyle": {"p": 0.5}}).resolved()
    assert a.aug == b.aug == "freq-mixstyle,roll"
    assert a.run_id() != b.run_id() and "freq-mixstyle+roll" in a.run_id()
    with pytest.raises(ConfigError, match="'roll'.*not in --aug"):
        RunConfig(aug="spec", aug_options={"roll": {"max_s": 1}}).resolved()
    with pytest.raises(ConfigError, match="cutout"):
        RunConfig(aug="cutout").resolved()
    with pytest.raises(ConfigError, match="takes no option 'q'"):
        BatchAugment(["freq-mixstyle"], {"freq-mixstyle": {"q": 1}}, ctx())
    with pytest.raises(ConfigError, match="p must be in"):
        BatchAugment(["dir"], {"dir": {"p": 2}}, ctx())


def test_dcase2024_preset_recipe() -> None:
    cfg = RunConfig(preset="dcase2024").resolved()
    assert (cfg.optimizer, cfg.weight_decay, cfg.lr, cfg.schedule, cfg.batch_size) == ("adamw", 1e-4, 5e-3, "cosine", 256)
    assert cfg.warmup_epochs > 0 and cfg.aug == "freq-mixstyle,roll,spec"
    assert cfg.aug_options["freq-mixstyle"] == {"p": 0.4, "alpha": 0.3} and cfg.aug_options["roll"] == {"max_s": 0.1}
    assert RunConfig(preset="paper").resolved().optimizer == "adam"
    assert RunConfig(preset="paper").resolved().schedule == "constant"
    # A user's option wins over the preset's, the others stay.
    mine = RunConfig(preset="dcase2024", aug_options={"freq-mixstyle": {"p": 0.7}}).resolved()
    assert mine.aug_options["freq-mixstyle"] == {"p": 0.7, "alpha": 0.3}


def test_aug_opt_flag_parsing() -> None:
    from harness.flags import split_aug_pairs

    assert split_aug_pairs(["freq-mixstyle.p=0.5", "freq-mixstyle.alpha=0.2", "roll.max_s=0.2"]) == {
        "freq-mixstyle": {"p": "0.5", "alpha": "0.2"}, "roll": {"max_s": "0.2"}}
    for bad in ("p=0.5", ".p=1"):
        with pytest.raises(ConfigError, match="NAME.KEY=VALUE"):
            split_aug_pairs([bad])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        split_aug_pairs(["freq-mixstyle.p"])
    # Values are typed from the plugin's declaration, as --arch-opt / --loss-opt are.
    cfg = RunConfig(aug="freq-mixstyle", aug_options=split_aug_pairs(["freq-mixstyle.p=5e-1"])).resolved()
    assert cfg.aug_options["freq-mixstyle"] == {"p": 0.5, "alpha": 0.3}
    with pytest.raises(ConfigError, match="--aug-opt p"):
        RunConfig(aug="freq-mixstyle", aug_options={"freq-mixstyle": {"p": "abc"}}).resolved()
    with pytest.raises(ConfigError, match="takes no option 'q'"):
        RunConfig(aug="freq-mixstyle", aug_options={"freq-mixstyle": {"q": "1"}}).resolved()


def test_runs_stored_before_augmentation_plugins_keep_their_ids() -> None:
    """mixup / SpecAugment runs hash what they hashed as fixed fields, and no new field at its default."""
    for aug in ("none", "mixup", "spec", "mixup,spec"):
        h = RunConfig(aug=aug, dataset_identity="abc", split="fold1").resolved().hashed_fields()
        assert {k: h[k] for k in ("mixup_alpha", "freq_masks", "freq_mask_width", "time_masks", "time_mask_width")} == {
            "mixup_alpha": 0.4, "freq_masks": 2, "freq_mask_width": None, "time_masks": 2, "time_mask_width": None}
        assert not {"aug_options", "optimizer", "weight_decay", "schedule", "warmup_epochs", "dir_irs_identity"} & set(h)
    # --mixup-alpha is --aug-opt mixup.alpha, hashed under its old key.
    short = RunConfig(aug="mixup", mixup_alpha=0.3).resolved()
    long = RunConfig(aug="mixup", aug_options={"mixup": {"alpha": "0.3"}}).resolved()
    assert short.run_id() == long.run_id() and short.aug_options["mixup"] == {"alpha": 0.3}
    assert short.hashed_fields()["mixup_alpha"] == 0.3 and "aug_options" not in short.hashed_fields()
    with pytest.raises(ConfigError, match="two values"):
        RunConfig(aug="mixup", mixup_alpha=0.3, aug_options={"mixup": {"alpha": "0.5"}}).resolved()
    with pytest.raises(ConfigError, match="needs the mixup augmentation"):
        RunConfig(aug="spec", mixup_alpha=0.3).resolved()


def test_augmentation_options_survive_experiment_files_and_reruns(tmp_path: Path) -> None:
    """--dump-config writes --aug-opt as a table, --config reads it back, and a record's nested
    aug_options turn back into the same flags (harness run --from)."""
    import argparse

    from harness.flags import config_from_args, recipe_parser
    from harness.experiment import as_table, dumps, flag_keys, merge, read_file, to_argv
    from harness.rerun import record_flags

    parser = recipe_parser()
    args = parser.parse_args(["--aug", "freq-mixstyle,roll", "--aug-opt", "freq-mixstyle.p=0.5", "--aug-opt", "roll.max_s=0.2",
                              "--optimizer", "adamw", "--schedule", "cosine", "--warmup-epochs", "1"])
    want = config_from_args(args).resolved()
    path = tmp_path / "x.toml"
    path.write_text(dumps({"aug": args.aug, "aug-opt": as_table(args.aug_opt), "optimizer": "adamw",
                           "schedule": "cosine", "warmup-epochs": 1.0}))
    back = merge(parser, parser.parse_args([]), set(), read_file(path), str(path))
    assert config_from_args(back).resolved().run_id() == want.run_id()
    flags = record_flags(want, parser)
    assert flags["aug-opt"] == {"freq-mixstyle": {"alpha": 0.3, "p": 0.5}, "roll": {"max_s": 0.2}}
    again = parser.parse_args(to_argv(flags, flag_keys(parser), "record"))
    assert config_from_args(again).resolved().run_id() == want.run_id()
    assert isinstance(again, argparse.Namespace)
