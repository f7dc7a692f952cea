"""The loader and splits on the REAL TAU metadata, with short silent WAVs standing in for the audio.

The metadata is read from ``$HARNESS_TAU_METADATA`` (default ``<repo>/../shared/reference``),
copied into a temporary folder and never into the project.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tau_factory import write_wav
from split_checks import shared_groups

from harness.data.dataset import Dataset
from harness.data import tau
from harness.data.splits import inner_validation, make_split

REFERENCE = Path(os.environ.get("HARNESS_TAU_METADATA") or Path(__file__).resolve().parents[2] / "shared" / "reference")
META_2019 = REFERENCE / "tau2019-metadata"
FOLDS_2020 = REFERENCE / "tau2020-mobile-folds"


def _need(path: Path) -> None:
    if not path.is_dir():
        pytest.skip(f"real TAU metadata not found at {path} (set HARNESS_TAU_METADATA to the reference folder)")


def _link_audio(root: Path, filenames: list[str], sample_rate: int, channels: int) -> None:
    """One tiny silent WAV, hard-linked under every listed name (writing 14,400 files takes <1 s)."""
    template = root / "silence.wav"
    write_wav(template, sample_rate, channels, 480)
    (root / "audio").mkdir(exist_ok=True)
    for name in filenames:
        os.link(template, root / name)
    template.unlink()


@pytest.fixture(scope="module")
def real2019(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    _need(META_2019)
    root = tmp_path_factory.mktemp("real19") / "TAU-urban-acoustic-scenes-2019-development"
    shutil.copytree(META_2019, root)
    os.chmod(root, 0o755)
    names = pd.read_csv(root / "meta.csv", sep="\t")["filename"].tolist()
    _link_audio(root, names, 48000, 2)
    return tau.load_dataset(root, check_audio=True)


@pytest.fixture(scope="module")
def real2020(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The 2020 folds come without meta.csv: build it from the fold rows' file names."""
    _need(FOLDS_2020)
    root = tmp_path_factory.mktemp("real20") / "TAU-urban-acoustic-scenes-2020-mobile-development"
    (root / "evaluation_setup").mkdir(parents=True)
    rows = []
    for fold in ("train", "evaluate"):
        src = FOLDS_2020 / f"fold1_{fold}.csv"
        shutil.copyfile(src, root / "evaluation_setup" / src.name)  # as found (evaluate is CRLF)
        rows.append(pd.read_csv(src, sep="\t", dtype=str).map(str.strip))
    folds = pd.concat(rows, ignore_index=True)
    parts = folds["filename"].str.removeprefix("audio/").str.removesuffix(".wav").str.split("-")
    meta = pd.DataFrame(
        {
            "filename": folds["filename"],
            "scene_label": folds["scene_label"],
            "identifier": parts.str[1] + "-" + parts.str[2],
            "source_label": parts.str[4],
        }
    )
    meta.to_csv(root / "meta.csv", sep="\t", index=False, lineterminator="\n")
    _link_audio(root, meta["filename"].tolist(), 44100, 1)
    return tau.load_dataset(root, check_audio=True)


def test_2019_counts_and_format(real2019: Dataset) -> None:
    meta = real2019.clips
    assert real2019.name == "tau2019" and not real2019.is_synthetic
    assert (real2019.sample_rate, real2019.channels, real2019.clip_samples) == (48000, 2, 480)
    assert len(meta) == 14400
    assert meta["fold"].value_counts().to_dict() == {"train": 9185, "evaluate": 4185, "unused": 1030}
    assert meta["location"].nunique() == 514
    assert (meta["scene"].value_counts() == 1440).all() and sorted(meta["scene"].unique()) == list(tau.SCENES)
    assert sorted(meta["city"].unique()) == list(tau.CITIES_2019)
    train_cities = set(meta.loc[meta["fold"] == "train", "city"])
    assert len(train_cities) == 9 and "milan" not in train_cities
    milan = meta[meta["city"] == "milan"]["fold"].value_counts().to_dict()
    assert milan == {"unused": 1030, "evaluate": 410}
    assert set(meta.loc[meta["fold"] == "unused", "city"]) == {"milan"}


def test_2019_no_location_shared_between_folds(real2019: Dataset) -> None:
    by_fold = real2019.clips.groupby("location")["fold"].nunique()
    assert (by_fold == 1).all()


def test_2019_splits(real2019: Dataset) -> None:
    official, full = make_split(real2019), make_split(real2019, unseen="all")
    assert (len(official.train), len(official.evaluate), len(official.unseen)) == (9185, 4185, 410)
    assert official.unseen_domains == full.unseen_domains == ("milan",)
    assert (len(full.evaluate), len(full.official_evaluate), len(full.unseen)) == (4185 + 1030, 4185, 1440)
    assert shared_groups(real2019, full.train, full.evaluate) == set()
    loco = make_split(real2019, "leave-one-city-out:paris", unseen="all")
    assert loco.unseen_domains == ("milan", "paris")
    assert shared_groups(real2019, loco.train, loco.evaluate) == set()
    assert len(loco.unseen) == 1440 + int((real2019.clips["city"] == "paris").sum())


def test_2019_inner_validation(real2019: Dataset) -> None:
    train = make_split(real2019).train
    inner = inner_validation(real2019, train, fraction=0.2, seed=0)
    assert shared_groups(real2019, inner.train, inner.val) == set()
    assert 0.17 <= len(inner.val) / len(train) <= 0.23
    meta = real2019.clips
    assert meta["scene"].to_numpy()[inner.val].tolist().count("airport") > 0
    assert set(meta["scene"].to_numpy()[inner.val]) == set(tau.SCENES)
    assert set(meta["city"].to_numpy()[inner.val]) == set(meta["city"].to_numpy()[inner.train])  # cities mixed
    held = inner_validation(real2019, train, hold_out_domain="auto", seed=0)
    assert held.held_out_domain in set(meta["city"].to_numpy()[train])
    assert held.held_out_domain not in set(meta["city"].to_numpy()[held.train])
    assert shared_groups(real2019, held.train, held.val) == set()


def test_2020_devices(real2020: Dataset) -> None:
    meta = real2020.clips
    assert real2020.name == "tau2020-mobile"
    assert (real2020.sample_rate, real2020.channels) == (44100, 1)
    assert meta["fold"].value_counts().to_dict() == {"train": 13965, "evaluate": 2970}
    assert (meta["domain"] == meta["source"]).all()
    assert sorted(meta.loc[meta["fold"] == "train", "domain"].unique()) == ["a", "b", "c", "s1", "s2", "s3"]
    assert sorted(meta["domain"].unique()) == list(tau.DEVICES_2020)
    s = make_split(real2020, unseen="all")
    assert s.unseen_domains == ("s4", "s5", "s6")
    assert len(s.unseen) == 3 * 330 and len(s.evaluate) == 2970
    assert shared_groups(real2020, s.train, s.evaluate) == set()
    # 'auto' never holds out device a (three quarters of the training clips).
    for seed in range(5):
        inner = inner_validation(real2020, s.train, hold_out_domain="auto", seed=seed)
        assert inner.held_out_domain in {"b", "c", "s1", "s2", "s3"}
        assert shared_groups(real2020, inner.train, inner.val) == set()
        assert np.isin(inner.val, s.train).all()
