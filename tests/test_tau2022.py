"""TAU 2022 Mobile: the synthetic preset, the ``tau2022-mobile`` plugin and the DCASE 2024 split files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from split_checks import shared_groups

from harness.data.registry import open_dataset
from harness.data.synthetic import tau2022 as sm
from harness.data.splits import inner_validation, make_split
from harness.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def mobile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = sm.MobileSynthConfig(sample_rate=8000, recording_seconds=2, cities=("lisbon", "lyon", "paris"),
                               locations_per_scene_city=3)
    return sm.generate(cfg, tmp_path_factory.mktemp("m") / sm.DATASET_DIRNAME, progress=False)


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def _copy(mobile: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(mobile, out)
    return out


# -- the synthetic preset ----------------------------------------------------------------------------------------

def test_layout_as_distributed(mobile: Path) -> None:
    meta = _tsv(mobile / "meta.csv")
    assert list(meta.columns) == ["filename", "scene_label", "identifier", "source_label"]
    pattern = re.compile(r"^audio/([a-z_]+)-([a-z]+)-(\d+)-(\d+)-(\d)-(a|b|c|s[1-6])\.wav$")
    for f, scene, ident, dev in meta.itertuples(index=False):
        m = pattern.match(f)
        assert m and m[1] == scene and f"{m[2]}-{m[3]}" == ident and m[6] == dev
    import soundfile as sf

    info = sf.info(str(mobile / meta.filename[0]))
    assert (info.samplerate, info.channels, info.frames) == (8000, 1, 8000)  # 1-s mono
    train, test = _tsv(mobile / "evaluation_setup/fold1_train.csv"), _tsv(mobile / "evaluation_setup/fold1_evaluate.csv")
    dev = dict(zip(meta.filename, meta.source_label))
    assert {dev[f] for f in train.filename} <= {"a", "b", "c", "s1", "s2", "s3"}
    assert {dev[f] for f in test.filename} == set(sm.DEVICES)  # every device, s4-s6 only here
    ident = dict(zip(meta.filename, meta.identifier))
    assert not {ident[f] for f in train.filename} & {ident[f] for f in test.filename}  # whole locations


def test_split_files_nested_whole_recordings(mobile: Path) -> None:
    meta = _tsv(mobile / "meta.csv")
    recording = lambda f: f[len("audio/"):].rsplit("-", 2)[0]  # noqa: E731  scene-city-loc-segment
    train = set(_tsv(mobile / "evaluation_setup/fold1_train.csv").filename)
    by_rec = meta[meta.filename.isin(train)].groupby(meta.filename.map(recording)).filename.apply(set)
    previous: set[str] = set()
    for n in sm.SUBSETS:
        split = _tsv(mobile / "split_setup" / f"split{n}.csv")
        assert list(split.columns) == ["filename", "scene_label"]
        files = set(split.filename)
        assert previous <= files <= train  # nested, training clips only
        for rec in {recording(f) for f in files}:  # every 1-s piece on every device of a recording, or none
            assert by_rec[rec] <= files
        assert split.scene_label.nunique() == 10
        previous = files
    assert previous == train
    assert set(_tsv(mobile / "split_setup/test.csv").filename) == set(
        _tsv(mobile / "evaluation_setup/fold1_evaluate.csv").filename)


def test_devices_shift_the_recording(mobile: Path) -> None:
    import soundfile as sf

    stem = next(p.name for p in (mobile / "audio").glob("*-0-s4.wav")).rsplit("-", 1)[0]
    x, _ = sf.read(str(mobile / "audio" / f"{stem}-a.wav"))  # the parallel recording on the reference device
    y, _ = sf.read(str(mobile / "audio" / f"{stem}-s4.wav"))
    assert x.shape == y.shape == (8000,) and abs(x - y).max() > 1e-3


def test_cli_preset_refuses_2019_options(tmp_path: Path, capsys) -> None:
    from harness.cli import main

    assert main(["data", "synth", "--preset", "tau2022", "--seconds", "3", "--out", str(tmp_path)]) == 2
    assert "--seconds" in capsys.readouterr().err
    assert main(["data", "synth", "--device-shift", "2", "--out", str(tmp_path)]) == 2
    assert "--preset tau2022" in capsys.readouterr().err


# -- the plugin ----------------------------------------------------------------------------------------------------

def test_detected_as_tau2022_with_devices_recordings_and_groupings(mobile: Path) -> None:
    from harness.data.registry import resolve_layout

    assert resolve_layout(mobile) == "tau2022-mobile"  # not synthetic (2019 layout) nor tau2020-mobile
    ds = open_dataset(str(mobile), progress=False)
    assert ds.name == "tau2022-mobile" and ds.domain_kind == "device" and ds.is_synthetic
    assert (ds.audio.sample_rate, ds.audio.channels, ds.audio.clip_samples) == (8000, 1, 8000)
    clips = ds.clips
    recording = clips["filename"].str.slice(len("audio/")).str.rsplit("-", n=2).str[0]
    assert (clips["group"] == recording).all()  # a group is one 10-s recording: every piece, every device
    assert ds.protocols.holdout == "fold1" and ds.protocols.groupings["device"] == {
        "a": "real", "b": "real", "c": "real", "s1": "simulated-seen", "s2": "simulated-seen", "s3": "simulated-seen",
        "s4": "unseen", "s5": "unseen", "s6": "unseen"}
    assert set(ds.protocols.groupings["recording"].values()) == {"real", "simulated"}
    split = make_split(ds)
    assert split.unseen_domains == ("s4", "s5", "s6")
    assert not shared_groups(ds, split.train, split.evaluate)
    inner = inner_validation(ds, split.train, seed=0)
    assert not shared_groups(ds, inner.train, inner.val)
    loco = make_split(ds, "loco:s1")
    assert not shared_groups(ds, loco.train, loco.unseen)


def test_subsets_train_on_the_split_files_and_share_the_feature_cache(mobile: Path) -> None:
    full = open_dataset(str(mobile), progress=False)
    s5, s100 = (open_dataset(str(mobile), progress=False, subset=n) for n in ("5", 100))
    assert s5.options == {"subset": 5} and s5.paths == {} and s5.protocols.default_split == "split5"
    files = s5.clips["filename"].to_numpy()
    sp5, sp100 = make_split(s5), make_split(s100)
    assert set(files[sp5.train]) == set(_tsv(mobile / "split_setup/split5.csv").filename)
    assert set(files[sp5.train]) < set(files[sp100.train])
    assert set(files[sp5.official_evaluate]) == set(_tsv(mobile / "split_setup/test.csv").filename)
    assert sp5.unseen_domains == ("s4", "s5", "s6") and not shared_groups(s5, sp5.train, sp5.evaluate)
    assert len({full.identity, s5.identity, s100.identity}) == 3  # the split files are part of the identity
    assert full.stamp == s5.stamp == s100.stamp  # but not of the feature cache's key
    assert s5.protocols.groupings == full.protocols.groupings  # unseen = absent from the official training split


def test_splits_elsewhere_are_a_location_not_a_setting(mobile: Path, tmp_path: Path) -> None:
    from harness.runner.config import RunConfig

    elsewhere = tmp_path / "dcase2024-splits"
    shutil.copytree(mobile / "split_setup", elsewhere)
    here = open_dataset(str(mobile), progress=False, subset=25)
    there = open_dataset(str(mobile), progress=False, subset=25, splits=str(elsewhere))
    assert there.paths == {"splits": str(elsewhere.resolve())} and there.options == here.options
    assert there.identity == here.identity
    a = RunConfig(epochs=1, device="cpu", precision="fp32", data_options={"subset": "25"}).resolved().for_dataset(here)
    b = RunConfig(epochs=1, device="cpu", precision="fp32",
                  data_options={"subset": "25", "splits": str(elsewhere)}).resolved().for_dataset(there)
    assert b.data_paths == there.paths and b.data_options == {"subset": 25}
    assert a.run_id() == b.run_id()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_broken_split_files_are_one_line_errors(mobile: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"split file not found: .*CPJKU/dcase2024_task1_baseline.*--data-opt splits=DIR"):
        open_dataset(str(mobile), progress=False, subset=25, splits=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="--subset must be one of 5, 10, 25, 50, 100"):
        open_dataset(str(mobile), progress=False, subset=30)
    with pytest.raises(ConfigError, match="give --subset N with it"):
        open_dataset(str(mobile), progress=False, splits=str(mobile / "split_setup"))
    broken = tmp_path / "splits"
    shutil.copytree(mobile / "split_setup", broken)
    text = (broken / "split10.csv").read_text().splitlines()

    def opens() -> None:
        open_dataset(str(mobile), progress=False, subset=10, splits=str(broken))

    _write(broken / "split10.csv", text + ["audio/park-nowhere-1-1-0-a.wav\tpark"])
    with pytest.raises(DataError, match=rf"line {len(text) + 1}: audio/park-nowhere-1-1-0-a.wav is not in meta.csv"):
        opens()
    name, label = text[1].split("\t")
    other = "bus" if label != "bus" else "park"
    _write(broken / "split10.csv", [text[0], f"{name}\t{other}", *text[2:]])
    with pytest.raises(DataError, match=f"line 2: scene_label '{other}' for {name} disagrees with meta.csv"):
        opens()
    _write(broken / "split10.csv", text + [text[1]])
    with pytest.raises(DataError, match="is listed twice"):
        opens()
    _write(broken / "split10.csv", ["file\tscene"] + text[1:])
    with pytest.raises(DataError, match="wrong header"):
        opens()
    test_row = (broken / "test.csv").read_text().splitlines()[1]
    _write(broken / "split10.csv", text + [test_row])
    with pytest.raises(DataError, match="in both split10.csv and test.csv"):
        opens()
    # a piece of a test recording (another 1-s piece on another device) put into training: a leak
    test_name = test_row.split("\t")[0]
    stem = test_name.rsplit("-", 2)[0]
    meta = _tsv(mobile / "meta.csv")
    sibling = next(f for f in meta.filename if f.startswith(stem + "-") and f != test_name)
    _write(broken / "split10.csv", text + [f"{sibling}\t{test_row.split(chr(9))[1]}"])
    _write(broken / "test.csv", [ln for ln in (mobile / "split_setup/test.csv").read_text().splitlines()
                                 if not ln.startswith(sibling)])
    with pytest.raises(DataError, match=r"share 1 recording\(s\).*\(leak\)"):
        opens()


def test_broken_layout_is_refused(mobile: Path, tmp_path: Path) -> None:
    copy = _copy(mobile, tmp_path)
    sorted((copy / "audio").iterdir())[0].unlink()
    with pytest.raises(DataError, match="missing"):
        open_dataset(str(copy), progress=False)
    with pytest.raises(DataError, match=r"meta.csv not found; download TAU Urban Acoustic Scenes 2022"):
        open_dataset(str(tmp_path), dataset="tau2022-mobile", progress=False)
    meta = (mobile / "meta.csv").read_text().splitlines()
    name = meta[1].split("\t")[0]
    meta[1] = meta[1].replace(name, name.rsplit("-", 2)[0] + "-" + name.rsplit("-", 1)[1])  # no 1-s piece index
    _write(copy / "meta.csv", meta)
    with pytest.raises(DataError, match="the 2022 Mobile naming"):
        open_dataset(str(copy), dataset="tau2022-mobile", progress=False, check_audio=False)


def test_truncated_clip_is_refused(mobile: Path, tmp_path: Path) -> None:
    copy = _copy(mobile, tmp_path)
    victim = sorted((copy / "audio").iterdir())[3]
    import soundfile as sf

    x, sr = sf.read(str(victim))
    sf.write(str(victim), x[: len(x) // 2], sr, subtype="PCM_16")
    with pytest.raises(DataError, match="truncated"):
        open_dataset(str(copy), progress=False)


@pytest.mark.slow
def test_run_on_a_subset_reports_macro_accuracy_and_device_groups(mobile: Path, tmp_path: Path) -> None:
    from harness.runner.config import RunConfig
    from harness.runner.train import run

    cfg = RunConfig(arch="dcase2024-baseline", features="dcase2024", n_mels=32, epochs=2, batch_size=32,
                    device="cpu", precision="fp32", data=str(mobile), data_options={"subset": 50})
    s = run(cfg, tmp_path / "results", progress=False)
    assert s["status"] == "complete" and s["split"] == "split50" and s["unseen_domains"] == "s4,s5,s6"
    scores = s["scores"]
    for key in ("macro_acc", "log_loss", "acc_device_real", "acc_device_simulated-seen", "acc_device_unseen",
                "acc_recording_real", "acc_recording_simulated", "acc_domain_s6"):
        assert np.isfinite(scores[key]), key
    assert scores["unseen_acc"] == pytest.approx(scores["acc_device_unseen"])


@pytest.mark.slow
def test_summary_prints_device_groups_and_a_rerun_keeps_the_split_folder(mobile: Path, tmp_path: Path, capsys) -> None:
    from harness.cli import main

    mobile = Path(shutil.copytree(mobile, tmp_path / mobile.name))
    elsewhere = tmp_path / "dcase2024-splits"
    shutil.move(str(mobile / "split_setup"), str(elsewhere))
    results = tmp_path / "results"
    common = ["--results", str(results), "--no-progress", "--precision", "fp32"]
    assert main(["run", "--data", str(mobile), "--subset", "25", "--data-opt", f"splits={elsewhere}", "--arch", "fcnn",
                 "--epochs", "1", "--batch-size", "64", *common]) == 0
    out = capsys.readouterr().out
    assert re.search(r"acc % by device \(mean last 1\)\s+real [\d.]+ · simulated-seen [\d.]+ · unseen [\d.]+", out)
    assert re.search(r"acc % per domain .*a [\d.]+ · b .* s6 [\d.]+", out) and re.search(r"log loss .*\s[\d.]+\n", out)
    (run_id,) = [p.name for p in (results / "runs").iterdir()]
    # --from reads the split files from where the first run found them (DATA/split_setup has none)
    shutil.move(str(elsewhere), str(tmp_path / "moved"))
    assert main(["run", "--from", run_id, "--seed", "1", *common]) == 2
    assert f"{elsewhere}/split25.csv: split file not found" in capsys.readouterr().err
    shutil.move(str(tmp_path / "moved"), str(elsewhere))
    assert main(["run", "--from", run_id, "--seed", "1", *common]) == 0
    assert "split25" in json.loads(next((results / "runs").glob("*-s1-*/config.json")).read_text())["config"]["split"]


# -- the DCASE 2024 comparison: a grid over subsets and its table ----------------------------------------------

def test_dcase2024_grid_runs_each_row_on_each_subset_at_its_front_end(mobile: Path, tmp_path: Path, capsys) -> None:
    from harness.cli import main

    assert main(["grid", "--table", "subsets", "--data", str(mobile), "--seeds", "1", "--dry-run",
                 "--results", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "grid: 25 runs (5 variants × each front end's mel bands × 5 subsets × 1 seeds)" in out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(("DCASE 2024 baseline", "FCNN "))]
    assert {(r[3], r[4], r[5]) for r in rows if r[2] == "baseline"} == {("256", "0", f"split{n}") for n in sm.SUBSETS}
    assert main(["grid", "--data", str(mobile), "--subset", "5,30", "--dry-run", "--results", str(tmp_path)]) == 2
    assert "--subset must be one of 5, 10, 25, 50, 100" in capsys.readouterr().err


@pytest.mark.slow
def test_grid_and_table_on_the_synthetic_2022_preset(mobile: Path, tmp_path: Path, capsys) -> None:
    import json

    from harness.cli import main

    results = tmp_path / "results"
    assert main(["grid", "--table", "subsets", "--data", str(mobile), "--subset", "5,100", "--variants",
                 "DCASE 2024 baseline,DCASE 2019 baseline", "--seeds", "1", "--epochs", "1", "--device", "cpu", "--precision", "fp32",
                 "--results", str(results), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["table", "--table", "subsets", "--format", "json", "--results", str(results)]) == 0
    records = json.loads(capsys.readouterr().out)
    rows = {(r["variant"], r["subset"]): r for r in records["subsets"]["rows"]}
    assert set(rows) == {(v, n) for v in ("DCASE 2024 baseline", "DCASE 2019 baseline") for n in (5, 100)}
    for r in rows.values():
        assert 0.0 <= r["macro_acc"] <= 1.0 and r["log_loss"] > 0 and r["runs"] == 1
        assert all(0.0 <= r[f"acc_{g}"] <= 1.0 for g in ("real", "simulated-seen", "unseen"))
    assert rows[("DCASE 2019 baseline", 5)]["published_macro_acc"] == 42.40 and rows[("DCASE 2019 baseline", 100)]["published_macro_acc"] == 56.99
    assert main(["table", "--table", "subsets", "--format", "markdown", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "DCASE 2024 baseline (published)" in out and "42.40 ± 0.42" in out and "not comparable" in out
