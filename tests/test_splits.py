"""Splits: official fold1, leave-one-domain-out, inner validation; never a location on both sides."""

from __future__ import annotations

import numpy as np
import pytest
from tau_factory import write_tau
from split_checks import shared_groups

from harness.data.dataset import Dataset
from harness.data import splits, tau
from harness.data.splits import inner_validation, make_split
from harness.errors import ConfigError


@pytest.fixture(scope="module")
def ds19(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    # 4 locations per scene and city: 3 train, 1 evaluate; milan: 1 evaluate + 2 unused locations.
    root = write_tau(
        tmp_path_factory.mktemp("s19") / "d",
        scenes=("airport", "bus", "park", "tram"),
        cities=("barcelona", "lyon", "paris", "prague"),
        locations_per=4,
        segments_per=2,
        seconds=0.05,
        milan_unused=2,
    )
    return tau.load_dataset(root)


@pytest.fixture(scope="module")
def ds20(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = write_tau(
        tmp_path_factory.mktemp("s20") / "d",
        layout="tau2020",
        locations_per=3,
        devices=("a", "b", "s1", "s2"),
        unseen_devices=("s4", "s5"),
        seconds=0.05,
    )
    return tau.load_dataset(root)


def _col(ds: Dataset, rows: np.ndarray, col: str) -> np.ndarray:
    return ds.clips[col].to_numpy()[rows]


def _assert_disjoint(ds: Dataset, a: np.ndarray, b: np.ndarray) -> None:
    assert len(np.intersect1d(a, b)) == 0
    assert shared_groups(ds, a, b) == set()


def test_fold1_official(ds19: Dataset) -> None:
    s = make_split(ds19)
    meta = ds19.clips
    assert s.name == "fold1" and s.unseen_protocol == "official"
    assert np.array_equal(s.train, np.flatnonzero(meta["fold"] == "train"))
    assert np.array_equal(s.evaluate, np.flatnonzero(meta["fold"] == "evaluate"))
    assert np.array_equal(s.official_evaluate, s.evaluate)
    assert s.unseen_domains == ("milan",)
    assert len(s.unseen) == 4 * 2 and set(_col(ds19, s.unseen, "domain")) == {"milan"}
    assert np.isin(s.unseen, s.evaluate).all()
    assert all(a.dtype == np.int64 and not a.flags.writeable for a in (s.train, s.evaluate, s.unseen))
    _assert_disjoint(ds19, s.train, s.evaluate)
    assert "unseen 8 [milan; protocol official]" in s.describe() and "\n" not in s.describe()


def test_fold1_all_adds_unused_unseen_rows_only_to_unseen_scoring(ds19: Dataset) -> None:
    official, full = make_split(ds19), make_split(ds19, unseen="all")
    unused_milan = np.flatnonzero((ds19.clips["fold"] == "unused") & (ds19.clips["domain"] == "milan"))
    assert len(unused_milan) == 4 * 2 * 2
    assert np.array_equal(full.official_evaluate, official.evaluate)
    assert np.array_equal(full.evaluate, np.union1d(official.evaluate, unused_milan))
    assert len(full.unseen) == len(official.unseen) + len(unused_milan)
    assert np.array_equal(full.train, official.train)
    _assert_disjoint(ds19, full.train, full.evaluate)


def test_fold1_2020_unseen_devices_never_leak_training_locations(ds20: Dataset) -> None:
    s = make_split(ds20, unseen="all")
    assert s.unseen_domains == ("s4", "s5")
    assert set(_col(ds20, s.train, "domain")) == {"a", "b", "s1", "s2"}
    # The factory's unused s4/s5 rows sit at training locations: "all" must not add them.
    assert np.array_equal(s.evaluate, make_split(ds20).evaluate)
    assert set(_col(ds20, s.unseen, "domain")) == {"s4", "s5"}
    _assert_disjoint(ds20, s.train, s.evaluate)


def test_leave_one_city_out(ds19: Dataset) -> None:
    s = make_split(ds19, "leave-one-city-out:Lyon")
    meta = ds19.clips
    assert s.name == "leave-one-city-out:lyon"
    assert "lyon" not in set(_col(ds19, s.train, "city"))
    lyon = np.flatnonzero(meta["city"] == "lyon")
    assert np.isin(lyon, s.evaluate).all()  # every Lyon clip, whatever its fold
    assert s.unseen_domains == ("lyon", "milan")
    assert np.array_equal(s.official_evaluate, make_split(ds19).evaluate)
    assert np.array_equal(s.train, np.setdiff1d(make_split(ds19).train, lyon))
    assert set(_col(ds19, s.unseen, "domain")) == {"lyon", "milan"}
    _assert_disjoint(ds19, s.train, s.evaluate)


def test_leave_one_domain_out_alias_and_2020(ds19: Dataset, ds20: Dataset) -> None:
    a = make_split(ds19, "leave-one-city-out:paris")
    b = make_split(ds19, "leave-one-domain-out:paris")
    assert np.array_equal(a.train, b.train) and np.array_equal(a.evaluate, b.evaluate)
    s = make_split(ds20, "leave-one-domain-out:s1", unseen="all")
    assert "s1" not in set(_col(ds20, s.train, "domain"))
    assert s.unseen_domains == ("s1", "s4", "s5")
    _assert_disjoint(ds20, s.train, s.evaluate)
    with pytest.raises(ConfigError, match="leave-one-domain-out"):
        make_split(ds20, "leave-one-city-out:lyon")


@pytest.mark.parametrize(
    ("spec", "unseen", "match"),
    [
        ("leave-one-city-out:rome", "official", "valid: barcelona, lyon, milan, paris, prague"),
        ("fold2", "official", "valid: fold1"),
        ("leave-one-city-out", "official", "valid: fold1"),
        ("fold1", "some", "official, all"),
    ],
)
def test_bad_split_options(ds19: Dataset, spec: str, unseen: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        make_split(ds19, spec, unseen=unseen)
    assert "\n" not in str(err.value)


def test_inner_validation_by_location_stratified(ds19: Dataset) -> None:
    train = make_split(ds19).train
    inner = inner_validation(ds19, train, fraction=0.25, seed=3)
    assert inner.held_out_domain is None
    assert np.array_equal(np.union1d(inner.train, inner.val), train)
    _assert_disjoint(ds19, inner.train, inner.val)
    scenes = {"airport", "bus", "park", "tram"}
    assert set(_col(ds19, inner.train, "scene")) == set(_col(ds19, inner.val, "scene")) == scenes
    assert 0.15 <= len(inner.val) / len(train) <= 0.35
    tr, va = inner  # unpacks as the design's (train_idx, val_idx)
    assert tr is inner.train and va is inner.val


def test_inner_validation_is_deterministic_and_order_free(ds19: Dataset) -> None:
    train = make_split(ds19).train
    a = inner_validation(ds19, train, seed=1)
    b = inner_validation(ds19, train[::-1].copy(), seed=1)
    assert np.array_equal(a.val, b.val) and np.array_equal(a.train, b.train)
    others = [inner_validation(ds19, train, seed=s).val for s in range(2, 8)]
    assert any(not np.array_equal(a.val, o) for o in others)


def test_inner_validation_holds_out_a_domain(ds19: Dataset, ds20: Dataset) -> None:
    train = make_split(ds19).train
    inner = inner_validation(ds19, train, fraction=0.2, hold_out_domain="paris")
    assert inner.held_out_domain == "paris"
    assert "paris" not in set(_col(ds19, inner.train, "domain"))
    paris = train[_col(ds19, train, "domain") == "paris"]
    assert np.isin(paris, inner.val).all()
    assert {"barcelona", "lyon", "prague"} & set(_col(ds19, inner.val, "domain"))  # plus a seen-domain part
    _assert_disjoint(ds19, inner.train, inner.val)

    auto = inner_validation(ds19, train, hold_out_domain="auto", seed=5)
    assert auto.held_out_domain in {"barcelona", "lyon", "paris", "prague"}
    assert auto.held_out_domain not in set(_col(ds19, auto.train, "domain"))

    # 2020: parallel recordings share locations across devices; the held-out device must not
    # drag a training location into validation.
    t20 = make_split(ds20).train
    dev = inner_validation(ds20, t20, fraction=0.3, hold_out_domain="s2", seed=2)
    assert "s2" not in set(_col(ds20, dev.train, "domain"))
    assert "s2" in set(_col(ds20, dev.val, "domain"))
    _assert_disjoint(ds20, dev.train, dev.val)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fraction": 1.0}, r"\[0, 1\)"),
        ({"fraction": -0.1}, r"\[0, 1\)"),
        ({"hold_out_domain": "milan"}, "not in training; valid: barcelona"),
        ({"fraction": 0.0}, "validation is empty"),
    ],
)
def test_inner_validation_errors(ds19: Dataset, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        inner_validation(ds19, make_split(ds19).train, **kwargs)


def test_inner_validation_needs_two_domains_to_hold_one_out(ds19: Dataset) -> None:
    lyon = np.flatnonzero((ds19.clips["fold"] == "train") & (ds19.clips["city"] == "lyon"))
    with pytest.raises(ConfigError, match="only lyon"):
        inner_validation(ds19, lyon, hold_out_domain="auto")


def test_every_split_is_location_disjoint(ds19: Dataset, ds20: Dataset) -> None:
    cases = [(ds19, "fold1"), (ds20, "fold1")]
    cases += [(ds19, f"leave-one-city-out:{c}") for c in sorted(ds19.clips["city"].unique())]
    cases += [(ds20, f"leave-one-domain-out:{d}") for d in sorted(ds20.clips["domain"].unique())]
    for ds, spec in cases:
        for unseen in splits.UNSEEN_PROTOCOLS:
            s = make_split(ds, spec, unseen)
            _assert_disjoint(ds, s.train, s.evaluate)
            assert np.isin(s.unseen, s.evaluate).all() and np.isin(s.official_evaluate, s.evaluate).all()
            assert not set(_col(ds, s.unseen, "domain")) & set(_col(ds, s.train, "domain"))
            for hold in (None, "auto"):
                inner = inner_validation(ds, s.train, hold_out_domain=hold)
                _assert_disjoint(ds, inner.train, inner.val)
                assert np.isin(inner.train, s.train).all() and np.isin(inner.val, s.train).all()


def test_loco_folds_score_every_clip_once_and_never_train_on_its_domain(ds19: Dataset, ds20: Dataset) -> None:
    meta = ds19.clips
    specs = splits.loco_specs(ds19)
    assert specs == [f"loco:{d}" for d in sorted(meta["domain"].unique())]
    scored = np.concatenate([make_split(ds19, spec).unseen for spec in specs])
    # Cities own their locations, so every clip of the dataset is scored in exactly one fold.
    assert np.array_equal(np.sort(scored), np.arange(len(meta)))
    for spec in specs:
        held = spec.partition(":")[2]
        s = make_split(ds19, spec)
        assert s.name == spec and s.unseen_domains == (held,) and s.unseen_protocol == "all"
        assert set(_col(ds19, s.unseen, "domain")) == {held}
        assert held not in set(_col(ds19, s.train, "domain"))
        assert np.array_equal(s.train, np.setdiff1d(make_split(ds19).train, np.flatnonzero(meta["domain"] == held)))
        assert np.array_equal(s.official_evaluate, make_split(ds19).evaluate)
        _assert_disjoint(ds19, s.train, s.evaluate)  # no location (group) on both sides
    # Devices share locations: a held-out device is scored only where training never recorded.
    for spec in splits.loco_specs(ds20):
        s = make_split(ds20, spec)
        _assert_disjoint(ds20, s.train, s.evaluate)
        assert set(_col(ds20, s.unseen, "domain")) <= {spec.partition(":")[2]}


def test_loco_run_config_scores_all_clips() -> None:
    from harness.runner.config import RunConfig

    a = RunConfig(split="loco:lyon").resolved()
    b = RunConfig(split="loco:lyon", unseen="all").resolved()
    assert a.unseen == "all" and a.run_id() == b.run_id()  # one spelling, one run
