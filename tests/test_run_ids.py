"""Run ids are what stored results are found by: the rules that compute them are pinned here.

Every id below was computed by the code as it stood before the run-id rules of earlier versions
moved into ``harness.results.migrate``; a change to how ids are computed fails this test, however
it is made. The configs are bound as ``RunConfig.for_dataset`` binds them (dataset identity, plugin
name, options, audio format, split), with made-up identities.
"""

from __future__ import annotations

import pytest

from harness.runner.config import RunConfig

BOUND = dict(dataset="synthetic", dataset_identity="fixture0001aaaaaaaa", split="fold1", precision="fp32",
             precision_reason="pinned", audio={"sample_rate": 48000, "channels": 2, "clip_samples": 480000,
                                               "exact": True, "pad": "zero"})
MONO_1S = {"sample_rate": 44100, "channels": 1, "clip_samples": 44100, "exact": True, "pad": "zero"}

#: name -> (the config's settings over BOUND, its run id)
PINNED = {
    "plain-ce": ({}, "fcnn-ce-none-m40-s0-dcdcc0704c"),
    "paper-preset": (dict(preset="paper"), "fcnn-ce-none-m40-s0-edde7f1f16"),
    "subspectralnet": (dict(arch="subspectralnet"), "subspectralnet-ce-none-m40-s0-19d7597e12"),
    "triplet-default": (dict(loss="triplet-city"), "fcnn-triplet-city-none-m40-s0-e069a84fc8"),
    "triplet-alpha-gamma": (dict(loss="triplet-city", alpha=0.3, gamma=5.0), "fcnn-triplet-city-none-m40-s0-88050eb450"),
    "triplet-loss-opt": (dict(loss="triplet-random", loss_options={"normalize": False, "band_weight": 0.5}),
                         "fcnn-triplet-random-none-m40-s0-30d0b38839"),
    "mixup-spec-default": (dict(aug="mixup,spec"), "fcnn-ce-mixup+spec-m40-s0-f976463dc7"),
    "mixup-spec-options": (dict(aug="spec,mixup", mixup_alpha=0.3, aug_options={"spec": {"freq_masks": 1, "time_width": 0.2}}),
                           "fcnn-ce-mixup+spec-m40-s0-898e5954b0"),
    "spec-masks-only": (dict(aug="spec", aug_options={"spec": {"time_masks": 0}}), "fcnn-ce-spec-m40-s0-329e972fe1"),
    "dcase2024": (dict(arch="dcase2024-baseline", preset="dcase2024", features="dcase2024", n_mels=256,
                       dataset="tau2022-mobile", split="split25", data_options={"subset": 25}, audio=MONO_1S),
                  "dcase2024-baseline-ce-freq-mixstyle+roll+spec-m256-s0-2c8ff59c74"),
    "dataset-plugin-option": (dict(dataset="esc50", data_options={"subset": "esc10"}, split="fold:1",
                                   audio={**MONO_1S, "clip_samples": 220500}), "fcnn-ce-none-m40-s0-8f956ce2c0"),
    "converted-audio": (dict(dataset="urbansound8k", split="fold:1",
                             audio={"sample_rate": 22050, "channels": 1, "clip_samples": 88200, "exact": False, "pad": "zero"}),
                        "fcnn-ce-none-m40-s0-680cc9da31"),
    "tau2020-mobile": (dict(dataset="tau2020-mobile", loss="triplet-device"), "fcnn-triplet-device-none-m40-s0-9d7391f3d9"),
    "teacher": (dict(loss="kd", teachers=["fcnn-ce-none-m40-s0-0123456789"]), "fcnn-kd-none-m40-s0-f2599e8fb2"),
    "teacher-triplet": (dict(loss="kd-triplet-city", teachers=["a-run", "b-run"], loss_options={"weight": 0.7}),
                        "fcnn-kd-triplet-city-none-m40-s0-1343e3acae"),
    "bf16": (dict(precision="bf16"), "fcnn-ce-none-m40-bf16-s0-7707df37d2"),
    "optimiser": (dict(optimizer="sgd", weight_decay=1e-4, schedule="cosine", warmup_epochs=1.0, lr=0.01),
                  "fcnn-ce-none-m40-s0-d3e1c93409"),
    "arch-options": (dict(arch_options={"dropout": 0.5, "conv_impl": "fused"}), "fcnn-ce-none-m40-s0-3e2940fd01"),
    "dir": (dict(aug="dir", dir_irs_identity="irs0123", aug_options={"dir": {"p": 0.6}}), "fcnn-ce-dir-m40-s0-a915029142"),
    "validation": (dict(evaluate_on="validation", val_fraction=0.25, seed=3, epochs=7), "fcnn-ce-none-m40-s3-dff1a7d87a"),
    "loco": (dict(split="loco:milan"), "fcnn-ce-none-m40-s0-c7df2b2e34"),
}


def bound(**settings) -> RunConfig:
    return RunConfig(**{**BOUND, **settings}).resolved()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_run_ids_are_pinned(name: str) -> None:
    settings, run_id = PINNED[name]
    cfg = bound(**settings)
    assert cfg.run_id() == run_id
    # what config.json stores reads back to the same id
    assert RunConfig.from_dict(cfg.to_dict()).resolved().run_id() == run_id


def test_equal_settings_give_equal_ids() -> None:
    assert bound(dataset=None).run_id() == PINNED["plain-ce"][1]  # synthetic was the unnamed default
    assert bound(loss_options={"alpha": 0.3}, loss="triplet-city", gamma=5.0).run_id() == PINNED["triplet-alpha-gamma"][1]
    assert bound(aug="mixup,spec", aug_options={"mixup": {"alpha": 0.4}}).run_id() == PINNED["mixup-spec-default"][1]
    assert bound(arch_options={"conv_impl": "reference"}).run_id() == PINNED["plain-ce"][1]  # an implementation choice
    assert bound(optimizer="adam", weight_decay=0.0, schedule="constant").run_id() == PINNED["plain-ce"][1]
