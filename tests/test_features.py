"""Log-mel extraction, the feature cache (hits, keys, atomicity, corruption) and band statistics."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
from tau_factory import corrupt_file, write_tau

from harness.data.audio import read_wav
from harness.data.tau import load_dataset
from harness.errors import DataError
from harness.features import cache as fcache
from harness.features.logmel import FeatureConfig, LogMelExtractor, band_stats, normalize


def reference(audio: np.ndarray, cfg: FeatureConfig, sr: int) -> np.ndarray:
    """The same features computed directly with torchaudio's MelSpectrogram."""
    mel = torchaudio.transforms.MelSpectrogram(
        sr, n_fft=cfg.fft_size(sr), win_length=cfg.win_length(sr), hop_length=cfg.hop_length(sr),
        f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, window_fn=torch.hamming_window, power=1.0,
    )
    out = torch.log(mel(torch.from_numpy(audio)) + cfg.log_eps).numpy()
    return out[..., : cfg.n_frames(sr, audio.shape[-1])]


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 stereo 48 kHz clips of 0.5 s (25 frames) in TAU 2019 layout."""
    return write_tau(tmp_path_factory.mktemp("tau") / "TAU-urban-acoustic-scenes-2019-development")


def count_calls(monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> list[int]:
    """Count clips extracted (in this process); raise after ``fail_after`` of them."""
    calls = [0]
    original = LogMelExtractor.__call__

    def wrapped(self: LogMelExtractor, audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if fail_after is not None and calls[0] >= fail_after:
            raise RuntimeError("simulated crash half-way through extraction")
        calls[0] += 1
        return original(self, audio, out=out)

    monkeypatch.setattr(LogMelExtractor, "__call__", wrapped)
    return calls


def complete_caches(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if not p.name.startswith(".")] if root.exists() else []


# --------------------------------------------------------------------------- extraction


def test_config_defaults_give_the_baseline_geometry() -> None:
    cfg = FeatureConfig()
    assert (cfg.win_length(48000), cfg.hop_length(48000), cfg.fft_size(48000)) == (1920, 960, 2048)
    assert cfg.n_frames(48000, 480000) == 500
    assert cfg.fft_size(44100) == 2048 and cfg.n_frames(44100, 441000) == 500
    assert cfg.to_dict()["n_mels"] == 40 and json.dumps(cfg.to_dict())


@pytest.mark.parametrize("n_mels", [40, 200])
def test_ten_second_stereo_clip_shape_and_values(n_mels: int) -> None:
    audio = (0.1 * np.random.default_rng(n_mels).standard_normal((2, 480000))).astype(np.float32)
    cfg = FeatureConfig(n_mels=n_mels)
    out = LogMelExtractor(cfg, 48000)(audio)
    assert out.shape == (2, n_mels, 500) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference(audio, cfg, 48000), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "cfg, sr, shape",
    [
        (FeatureConfig(hop_ms=10.0), 48000, (2, 30011)),  # several padded frames at each edge
        (FeatureConfig(n_fft=4096, f_min=50.0, f_max=8000.0), 44100, (1, 44100)),
        (FeatureConfig(win_ms=30.0, hop_ms=7.0), 16000, (2, 16003)),
    ],
)
def test_matches_torchaudio_for_other_settings(cfg: FeatureConfig, sr: int, shape: tuple[int, int]) -> None:
    audio = (0.1 * np.random.default_rng(1).standard_normal(shape)).astype(np.float32)
    np.testing.assert_allclose(LogMelExtractor(cfg, sr)(audio), reference(audio, cfg, sr), atol=1e-4, rtol=0)


def test_channels_are_kept_separate() -> None:
    t = np.arange(48000) / 48000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.01 * np.random.default_rng(0).standard_normal(48000)
    audio = np.stack([left, right]).astype(np.float32)
    ext = LogMelExtractor(FeatureConfig(), 48000)
    out = ext(audio)
    assert np.abs(out[0] - out[1]).max() > 1.0
    np.testing.assert_allclose(out[0], ext(audio[:1])[0], atol=1e-5)
    np.testing.assert_allclose(out[1], ext(audio[1:])[0], atol=1e-5)


# --------------------------------------------------------------------------- cache


def test_load_features_rows_follow_meta_and_second_call_hits_cache(
    tiny: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = load_dataset(tiny)
    cfg = FeatureConfig()
    calls = count_calls(monkeypatch)
    feats = load_features_quiet(ds, cfg, workers=1)
    assert calls[0] == len(ds.clips)
    assert feats.shape == (len(ds.clips), 2, 40, 25) and feats.dtype == np.float16
    assert isinstance(feats, np.memmap) and not feats.flags.writeable
    ext = LogMelExtractor(cfg, ds.sample_rate)
    for i in (0, 17, len(ds.clips) - 1):
        audio = read_wav(ds.root / ds.clips["filename"].iloc[i], 48000, 2, ds.clip_samples)
        np.testing.assert_allclose(feats[i].astype(np.float32), ext(audio), atol=0.02)

    def no_recompute(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were recomputed although the cache is complete")

    monkeypatch.setattr(fcache, "_extract", no_recompute)
    again = load_features_quiet(ds, cfg)
    np.testing.assert_array_equal(again, feats)
    assert len(complete_caches(cache_root)) == 1


def test_parallel_extraction_equals_serial(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_dataset(tiny)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "serial"))
    serial = load_features_quiet(ds, FeatureConfig(), workers=1)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "pool"))
    pooled = load_features_quiet(ds, FeatureConfig(), workers=2)
    np.testing.assert_array_equal(serial, pooled)


def test_cache_key_changes_with_every_setting_and_the_dataset() -> None:
    base = FeatureConfig()
    changed = {
        "n_mels": 200, "win_ms": 25.0, "hop_ms": 10.0, "n_fft": 4096, "f_min": 20.0, "f_max": 16000.0,
        "window": "hann", "log_eps": 1e-6, "dtype": "float32",
        "sample_rate": 32000, "mono": True, "power": 2.0, "keep_last_frame": True,
    }
    assert set(changed) == {f.name for f in dataclasses.fields(FeatureConfig)}
    key = fcache.feature_key("data-a", base)
    assert fcache.feature_key("data-a", FeatureConfig()) == key
    keys = {fcache.feature_key("data-a", dataclasses.replace(base, **{k: v})) for k, v in changed.items()}
    assert len(keys) == len(changed) and key not in keys
    assert fcache.feature_key("data-b", base) != key


def test_interrupted_extraction_caches_nothing_and_rerun_recomputes(
    tiny: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = load_dataset(tiny)
    half = len(ds.clips) // 2
    count_calls(monkeypatch, fail_after=half)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load_features_quiet(ds, FeatureConfig(), workers=1)
    assert list(cache_root.iterdir()) == []  # no half cache, no temporary directory left behind
    monkeypatch.undo()
    monkeypatch.setenv("HARNESS_CACHE", str(cache_root.parent))
    calls = count_calls(monkeypatch)
    feats = load_features_quiet(ds, FeatureConfig(), workers=1)
    assert calls[0] == len(ds.clips)
    assert np.isfinite(feats.astype(np.float32)).all() and feats[-1].std() > 0


def test_killed_extraction_leftovers_are_never_used(
    tiny: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory without a complete manifest, at the final name or as a dead temp, is redone."""
    ds = load_dataset(tiny)
    cfg = FeatureConfig()
    good = np.array(load_features_quiet(ds, cfg, workers=1))
    final = fcache.feature_path(ds, cfg)
    manifest = json.loads((final / fcache.MANIFEST_FILE).read_text())
    (final / fcache.MANIFEST_FILE).unlink()  # as if killed before the manifest was written
    dead = cache_root / f".tmp-{final.name}-999999999-deadbeef"
    dead.mkdir()
    calls = count_calls(monkeypatch)
    np.testing.assert_array_equal(load_features_quiet(ds, cfg, workers=1), good)
    assert calls[0] == len(ds.clips) and not dead.exists()
    manifest.pop("complete")
    (final / fcache.MANIFEST_FILE).write_text(json.dumps(manifest))
    load_features_quiet(ds, cfg, workers=1)
    assert calls[0] == 2 * len(ds.clips)


def test_publish_keeps_a_complete_cache_another_process_wrote_first(tiny: Path, cache_root: Path) -> None:
    """The race of two extractions: the second rename finds the first cache and drops its own."""
    ds = load_dataset(tiny)
    cfg = FeatureConfig()
    good = np.array(load_features_quiet(ds, cfg, workers=1))
    final = fcache.feature_path(ds, cfg)
    expected = fcache._expected(ds, cfg)
    (final / "first").touch()
    late = fcache._extract_to_temp(ds, cfg, expected, final, False, 1)
    fcache._publish(late, final, expected)
    assert (final / "first").exists() and not late.exists()
    (final / fcache.MANIFEST_FILE).unlink()  # the one there is incomplete: replaced
    late = fcache._extract_to_temp(ds, cfg, expected, final, False, 1)
    fcache._publish(late, final, expected)
    assert not (final / "first").exists() and not late.exists()
    np.testing.assert_array_equal(load_features_quiet(ds, cfg), good)
    assert [p.name for p in cache_root.iterdir()] == [final.name]


@pytest.mark.parametrize("damage", ["truncate", "filenames", "shape"])
def test_corrupt_cache_is_recomputed(
    tiny: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    ds = load_dataset(tiny)
    cfg = FeatureConfig()
    good = np.array(load_features_quiet(ds, cfg, workers=1))
    final = fcache.feature_path(ds, cfg)
    if damage == "truncate":
        data = final / fcache.DATA_FILE
        os.truncate(data, data.stat().st_size // 2)
    else:
        manifest = json.loads((final / fcache.MANIFEST_FILE).read_text())
        if damage == "filenames":
            manifest["filenames"] = manifest["filenames"][::-1]
        else:
            manifest["shape"][0] -= 1
        (final / fcache.MANIFEST_FILE).write_text(json.dumps(manifest))
    calls = count_calls(monkeypatch)
    np.testing.assert_array_equal(load_features_quiet(ds, cfg, workers=1), good)
    assert calls[0] == len(ds.clips)
    assert len(complete_caches(cache_root)) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_wav_raises_data_error_naming_file_and_caches_nothing(
    tiny: Path, tmp_path: Path, cache_root: Path, workers: int
) -> None:
    from tau_factory import copy_tau

    root = copy_tau(tiny, tmp_path / "broken")
    ds = load_dataset(root)
    bad = root / ds.clips["filename"].iloc[len(ds.clips) // 2]
    corrupt_file(bad)
    with pytest.raises(DataError, match=str(bad.name)) as info:
        load_features_quiet(ds, FeatureConfig(), workers=workers)
    assert "\n" not in str(info.value) and "corrupt" in str(info.value)
    assert list(cache_root.iterdir()) == []


# --------------------------------------------------------------------------- statistics


def test_band_stats_uses_only_the_given_rows() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(0.0, 1.0, (10, 2, 3, 7)).astype(np.float16)
    feats[:4] += np.array([1.0, 5.0, -3.0], np.float16)[None, None, :, None]  # "train" rows differ
    feats[:4, 1] *= 2
    train = [3, 0, 2, 1]
    mean, std = band_stats(feats, train, chunk=3)  # chunks of 3: the merge across chunks is exercised
    sub = feats[:4].astype(np.float64)
    assert mean.shape == std.shape == (2, 3, 1) and mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean[..., 0], sub.mean(axis=(0, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std[..., 0], sub.std(axis=(0, 3)), rtol=1e-5)
    all_mean, _ = band_stats(feats, np.arange(10))
    assert np.abs(all_mean - mean).max() > 0.5
    z = normalize(feats[:4], mean, std)
    np.testing.assert_allclose(z.mean(axis=(0, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 3)), 1, atol=1e-4)
    zt = normalize(torch.from_numpy(feats[:4]), mean, std)
    np.testing.assert_allclose(zt.numpy(), z, atol=1e-6)


def test_band_stats_constant_band_does_not_divide_by_zero() -> None:
    feats = np.zeros((3, 1, 2, 5), np.float16)
    feats[:, :, 1] = np.arange(5)
    mean, std = band_stats(feats, [0, 1, 2])
    assert np.isfinite(normalize(feats, mean, std)).all()


def load_features_quiet(ds: object, cfg: FeatureConfig, workers: int | None = None) -> np.ndarray:
    return fcache.load_features(ds, cfg, progress=False, workers=workers)  # type: ignore[arg-type]
