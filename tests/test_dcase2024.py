"""The DCASE 2024 Task 1 baseline: its published complexity, its front end, budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchaudio

from harness.complexity import Budget, ChallengeComplexity, challenge_count, input_shape, load_budget
from harness.errors import ConfigError
from harness.features.cache import feature_key
from harness.features.logmel import FeatureConfig, LogMelExtractor, feature_preset
from harness.model import count_parameters
from harness.registry import create_architecture
from harness.runner.config import RunConfig


def _baseline_1s():
    shape = input_shape(feature_preset("dcase2024"), 1, 44100, 1)
    return shape, create_architecture("dcase2024-baseline", n_mels=shape[1], n_frames=shape[2], in_channels=shape[0])


def test_published_parameters_and_macs_for_one_second() -> None:
    # CPJKU/dcase2024_task1_baseline README: 61,148 parameters and 29,419,156 MACs (NeSsi, batch norm included)
    shape, model = _baseline_1s()
    assert shape == (1, 256, 65)
    assert count_parameters(model) == 61_148
    assert challenge_count(model, shape) == (29_419_156, 61_148)


def test_published_layer_widths() -> None:
    _, model = _baseline_1s()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # in_c: 1→8→32; stages 32 / 56 / 104 channels with expansions 64 / 120 (README's per-layer table)
    assert [c.out_channels for c in convs[:2]] == [8, 32]
    assert {c.out_channels for c in convs[2:-1]} == {64, 32, 56, 120, 104}
    assert model(torch.randn(2, 1, 256, 65)).logits.shape == (2, 10)


def test_front_end_equals_the_baselines_torchaudio_pipeline() -> None:
    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((2, 44100))).astype(np.float32)
    ours = LogMelExtractor(feature_preset("dcase2024"), 44100)(stereo)
    x = torchaudio.transforms.Resample(44100, 32000)(torch.from_numpy(stereo).mean(0, keepdim=True))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=32000, n_fft=4096, win_length=3072, hop_length=500,
                                               n_mels=256)(x)
    ref = (mel + 1e-5).log().numpy()
    assert ours.shape == ref.shape == (1, 256, 65)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_new_feature_fields_keep_old_cache_keys_and_run_ids() -> None:
    # Values from before the front-end fields existed: caches and stored runs stay valid.
    assert feature_key("stamp", FeatureConfig(n_mels=200)) == "6c82fe4ff5c69a02995c755dfe8188270b0319b6efcc88aa7ae28def5fb02237"
    # split="fold1" is what binding to a TAU-layout dataset fills in (RunConfig.for_dataset); runs
    # stored before --precision existed trained in fp32 (what `auto` resolves to varies by CPU).
    assert RunConfig(dataset_identity="abc", split="fold1", precision="fp32").resolved().run_id() \
        == "fcnn-ce-none-m40-s0-f668dfa4fd"
    assert RunConfig(dataset_identity="abc", split="fold1", precision="fp32", dataset="tau2019",
                     audio={"sample_rate": 48000, "channels": 2, "clip_samples": 480000, "exact": True,
                            "pad": "zero"}).resolved().run_id() == "fcnn-ce-none-m40-s0-f668dfa4fd"
    other = RunConfig(dataset_identity="abc", features="dcase2024", n_mels=256).resolved()
    assert other.run_id() != RunConfig(dataset_identity="abc", n_mels=256).resolved().run_id()
    assert other.feature_config() == feature_preset("dcase2024")
    with pytest.raises(ConfigError, match="--features"):
        RunConfig(features="nope").resolved()


def test_dcase2024_budget_is_data_and_judges_precision() -> None:
    b = load_budget("dcase2024")
    assert (b.param_bytes, b.macs_per_second) == (128_000, 30_000_000)
    c = ChallengeComplexity(params=61_148, macs_1s=29_419_156, macs_per_s_10s=27e6)
    assert c.param_bytes("fp16") == 122_296 and b.verdict(c, "fp16") == "fits"
    assert b.verdict(c, "fp32").startswith("over: params 244,592 B")
    assert "MACs 31.0 M > 30 M" in b.verdict(ChallengeComplexity(1, 31_000_000, 0.0), "int8")


def test_budget_files_and_their_errors(tmp_path) -> None:
    f = tmp_path / "tiny.json"
    f.write_text(json.dumps({"name": "tiny", "param_bytes": 1000, "macs_per_second": 5}))
    assert load_budget(str(f)) == Budget("tiny", 1000, 5)
    with pytest.raises(ConfigError, match="unknown budget 'dcase2099'"):
        load_budget("dcase2099")
    f.write_text("{}")
    with pytest.raises(ConfigError, match="param_bytes"):
        load_budget(str(f))


def test_budget_table_rows(monkeypatch) -> None:
    from harness.report import budget

    monkeypatch.setattr(budget, "BUDGET_CONFIGS", [("DCASE 2024 baseline", "dcase2024-baseline", "dcase2024", 256),
                                                   ("FCNN", "fcnn", "dcase2019", 40)])
    t = budget.build_budget_table("dcase2024", "fp16")
    rec = {r["arch"]: r for r in t.records()}
    assert rec["dcase2024-baseline"]["param_bytes"] == 122_296 and rec["dcase2024-baseline"]["verdict"] == "fits"
    assert rec["dcase2024-baseline"]["macs_1s"] == 29_419_156
    assert rec["fcnn"]["params"] == 113_160 and rec["fcnn"]["verdict"].startswith("over: params 226,320 B")


@pytest.mark.slow
def test_baseline_trains_on_its_front_end_and_records_complexity(tiny_synth, tmp_path, capsys) -> None:
    from harness.cli import main

    code = main(["run", "--arch", "dcase2024-baseline", "--features", "dcase2024", "--data", str(tiny_synth),
                 "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--results", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "256 mels" in out and "budget dcase2024 (fp32)" in out
    summary = json.loads(next(tmp_path.glob("runs/*/summary.json")).read_text())
    # 8 kHz, 1-s stereo clips resampled to 32 kHz mono: the baseline's own 1 × 256 × 65 input
    assert summary["macs_per_s_1s"] == 29_419_156 and summary["param_bytes"] == 4 * 61_148
    config = json.loads(next(tmp_path.glob("runs/*/config.json")).read_text())
    assert config["config"]["features"] == "dcase2024"
