"""What tables read about a stored run's dataset: from the record where it says, else from the plugin's traits."""

from __future__ import annotations

import pytest

from harness.data.recorded import RecordedDataset
from harness.data.registry import DATASETS, DEFAULT_DATA, opens_by_name

DEFAULT_ROOT = "/home/u/.cache/harness/datasets/synthetic-9a668d3f37/TAU-urban-acoustic-scenes-2019-development"


def test_traits_are_declared_by_the_plugins() -> None:
    assert DATASETS.paper_dataset() == "tau2019"
    assert DATASETS.traits_of("synthetic").synthetic and DATASETS.traits_of("synthetic").paper_layout
    assert not DATASETS.traits_of("esc50").paper_layout and DATASETS.traits_of("no-such-plugin") == DATASETS.traits_of(None)
    assert opens_by_name(DEFAULT_DATA) and not opens_by_name("tau2019") and not opens_by_name("/data/TAU")


def test_a_record_written_before_the_synthetic_field_reads_as_synthetic() -> None:
    old = RecordedDataset.from_record({"name": "synthetic", "root": DEFAULT_ROOT})  # no "synthetic" key
    assert old.synthetic and old.beside_paper and not old.comparable_with_paper
    assert old.data_arg == "synthetic"  # its default root, on any machine's cache
    assert "not comparable with the paper" in old.describe()
    written = RecordedDataset.from_record({"name": "synthetic", "root": "/tmp/out/TAU-urban-acoustic-scenes-2019-development",
                                           "synthetic": True})
    assert written.data_arg == "/tmp/out/TAU-urban-acoustic-scenes-2019-development"  # written with --out: a folder


@pytest.mark.parametrize("record, synthetic, beside, comparable", [
    ({"name": "tau2019", "root": "/data/TAU"}, False, True, True),
    ({"name": "tau2022-mobile", "root": "/data/m", "synthetic": True}, True, False, False),  # a generated 2022 copy
    ({"name": "tau2022-mobile", "root": "/data/m"}, False, False, False),
    ({"name": "esc50", "root": "/data/ESC-50", "synthetic": False}, False, False, False),
])
def test_each_question_has_one_answer(record: dict, synthetic: bool, beside: bool, comparable: bool) -> None:
    data = RecordedDataset.from_record(record)
    assert (data.synthetic, data.beside_paper, data.comparable_with_paper) == (synthetic, beside, comparable)
    assert data.data_arg == record["root"]
    if not beside:
        assert data.describe().endswith("(the paper used tau2019)")


def test_no_run_yet() -> None:
    assert RecordedDataset().plugin == DEFAULT_DATA and RecordedDataset().data_arg == DEFAULT_DATA
    fresh = RecordedDataset(root="/data/new")
    assert fresh.plugin is None and fresh.describe() == "a dataset no stored run has used yet" and fresh.data_arg == "/data/new"
