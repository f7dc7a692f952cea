"""A dataset plugin written outside the harness (installed through an entry point) runs end to end."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dataset_factory import write_manifest

from harness.cli import main
from harness.data.registry import DATASETS

PLUGIN = '''
"""A bird-call collection: species from a TSV file, domain = recorder."""
from pathlib import Path

import pandas as pd

from harness.data.dataset import AudioSpec, Dataset, Protocols, clip_table, fingerprint, stat_files
from harness.data.registry import register_dataset


@register_dataset("birds", "bird calls; 5 folds; domain = recorder",
                  detect=lambda root: (root / "birds.tsv").is_file(), looks_for="birds.tsv")
def birds(root: Path) -> Dataset:
    meta = pd.read_csv(root / "birds.tsv", sep="\\t", dtype=str)
    clips, classes = clip_table(meta["file"], meta["species"].tolist(), meta["recorder"], meta["site"], meta["fold"])
    stats = stat_files(root, clips["filename"], "birds.tsv")
    return Dataset(name="birds", root=root, clips=clips, classes=classes, domain_kind="recorder",
                   audio=AudioSpec(8000, 1, 8000, exact=False), protocols=Protocols(folds=("1", "2", "3", "4", "5")),
                   identity=fingerprint(root, ["birds.tsv"], stats, mtimes=False),
                   stamp=fingerprint(root, ["birds.tsv"], stats, mtimes=True), title="bird calls")
'''


@pytest.fixture
def birds_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``birds_plugin`` importable and declared in the ``harness.datasets`` entry-point group."""
    site = tmp_path / "site"
    (site / "birds_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "birds_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (site / "birds_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: birds-plugin\nVersion: 1.0\n")
    (site / "birds_plugin-1.0.dist-info" / "entry_points.txt").write_text("[harness.datasets]\nbirds = birds_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(DATASETS, "_loaded", False)
    yield
    DATASETS.plugins.pop("birds", None)
    DATASETS.layouts.pop("birds", None)
    DATASETS.traits.pop("birds", None)
    sys.modules.pop("birds_plugin", None)


def test_entry_point_plugin_trains_end_to_end_with_its_own_classes(birds_plugin, tmp_path: Path, capsys) -> None:
    data = tmp_path / "calls"
    write_manifest(data, columns=("domain", "group", "fold"), groups_per=4, seconds=1.0, rate=8000)
    m = pd.read_csv(data / "manifest.csv")
    m.rename(columns={"filename": "file", "label": "species", "domain": "recorder", "group": "site"}).to_csv(
        data / "birds.tsv", sep="\t", index=False)
    (data / "manifest.csv").unlink()

    assert main(["list", "--kind", "data"]) == 0
    assert "birds" in capsys.readouterr().out
    results = tmp_path / "results"
    code = main(["run", "--data", str(data), "--arch", "dcase-baseline", "--loss", "triplet-domain", "--epochs", "2",
                 "--batch-size", "8", "--results", str(results), "--no-progress", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "detected as birds" in captured.out
    index = pd.read_csv(results / "index.csv")
    row = index.iloc[0]
    assert row["status"] == "complete" and row["dataset_kind"] == "birds" and row["split"] == "fold:1"
    run = results / row["run_dir"]
    pred = np.load(run / "predictions.npz")
    assert list(pred["classes"]) == ["crow", "owl", "wren"] and pred["logits"].shape[1] == 3
    assert set(pred["domains"]) <= {"mic1", "mic2", "mic3"}
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"]["name"] == "birds" and config["dataset"]["audio"]["exact"] is False
    epochs = pd.read_csv(run / "epochs.csv")
    assert {"acc_class_crow", "acc_domain_mic1"} <= set(epochs.columns)


@pytest.mark.slow
def test_a_manifest_file_is_recorded_as_given(tmp_path: Path, capsys) -> None:
    """A manifest named other than manifest.csv: the record and the table's commands name the file."""
    data = tmp_path / "clips"
    write_manifest(data, columns=("domain", "group", "fold"), groups_per=4, seconds=1.0, rate=8000)
    labels = data / "labels.csv"
    (data / "manifest.csv").rename(labels)
    results = tmp_path / "results"
    code = main(["run", "--data", str(labels), "--arch", "dcase-baseline", "--epochs", "1", "--batch-size", "8",
                 "--results", str(results), "--no-progress", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "unseen nan" not in out.out and "no unseen domain in this split" in out.out
    row = pd.read_csv(results / "index.csv").iloc[0]
    assert row["dataset"] == str(labels.resolve()) and row["dataset_kind"] == "csv"
    assert main(["table", "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert f"--data {labels.resolve()}" in table and "(paper)" in table and "values are left out" in table


def test_a_plugin_that_makes_its_own_folder_opens_by_name(tmp_path: Path) -> None:
    """``register_dataset(..., default_root=fn)``: ``--data NAME`` opens the folder the plugin makes on
    first use, and a table names ``--data NAME`` for runs on it (as for the built-in synthetic data)."""
    from dataclasses import replace

    from harness.data.manifest import manifest
    from harness.data.recorded import RecordedDataset
    from harness.data.registry import open_dataset, opens_by_name, register_dataset

    made: list[bool] = []

    def default_root(progress: bool) -> Path:
        root = tmp_path / "cache" / "tones-1"
        if not root.exists():
            write_manifest(root, columns=("domain", "group"), groups_per=2, seconds=0.25)
            made.append(progress)
        return root

    @register_dataset("tones", "generated tones", default_root=default_root,
                      is_default_root=lambda path: path.parent.name == "cache" and path.name.startswith("tones-"))
    def tones(root: Path, progress: bool = True):
        return replace(manifest(root), name="tones")

    try:
        assert opens_by_name("tones")
        ds = open_dataset("tones", progress=False)
        assert ds.name == "tones" and ds.root == tmp_path / "cache" / "tones-1" and made == [False]
        assert open_dataset("tones").root == ds.root and made == [False]  # made once, reused
        assert RecordedDataset("tones", str(ds.root)).data_arg == "tones"
        assert RecordedDataset("tones", str(tmp_path)).data_arg == str(tmp_path)
        assert open_dataset(ds.root, dataset="csv").name == "csv"  # the folder itself, read by another plugin
    finally:
        for table in (DATASETS.plugins, DATASETS.layouts, DATASETS.traits):
            table.pop("tones", None)
