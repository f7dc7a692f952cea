"""The TAU loader: both layouts, counts, line endings, and a one-line DataError for every bad input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from tau_factory import (
    copy_tau,
    corrupt_file,
    read_rows,
    to_crlf,
    truncate_file,
    write_rows,
    write_tau,
    write_wav,
)

from harness.data import tau
from harness.data.synthetic.writer import SYNTHETIC_MARKER
from harness.data.summary import describe, summary_text
from harness.errors import DataError

META_COLUMNS = ["filename", "label", "class", "domain", "group", "fold", "scene", "identifier", "source", "city", "location"]
TRAIN = "evaluation_setup/fold1_train.csv"
EVAL = "evaluation_setup/fold1_evaluate.csv"


@pytest.fixture(scope="module")
def tau2019(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tau(tmp_path_factory.mktemp("t19") / "TAU-urban-acoustic-scenes-2019-development")


@pytest.fixture(scope="module")
def tau2020(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tau(tmp_path_factory.mktemp("t20") / "tau2020", layout="tau2020")


@pytest.fixture
def broken(tau2019: Path, tmp_path: Path) -> Path:
    """A private copy of the 2019 dataset that a test may damage."""
    return copy_tau(tau2019, tmp_path / "copy")


def test_loads_2019(tau2019: Path) -> None:
    ds = tau.load_dataset(tau2019)
    meta = ds.clips
    assert ds.name == "tau2019" and ds.domain_kind == "city"
    assert list(meta.columns) == META_COLUMNS
    # 3 scenes x (3 cities x 2 locations + milan 1 evaluate + 1 unused location) x 2 segments
    assert len(meta) == 48
    assert meta["fold"].value_counts().to_dict() == {"evaluate": 24, "train": 18, "unused": 6}
    assert (ds.sample_rate, ds.channels, ds.clip_samples) == (48000, 2, 24000)
    assert meta["filename"].tolist() == [r[0] for r in read_rows(tau2019 / "meta.csv")[1:]]  # file order
    assert (meta["domain"] == meta["city"]).all() and (meta["location"] == meta["identifier"]).all()
    assert set(meta.loc[meta["fold"] == "train", "city"]) == {"barcelona", "lyon", "prague"}
    assert set(meta.loc[meta["fold"] == "unused", "city"]) == {"milan"}
    assert meta["label"].dtype == np.int64
    assert ds.classes == ("airport", "bus", "park")  # from the data, in TAU's order
    assert [ds.classes[i] for i in meta["label"]] == meta["scene"].tolist() == meta["class"].tolist()
    assert (meta["group"] == meta["location"]).all() and ds.protocols.default_split == "fold1"
    assert not ds.is_synthetic
    assert ds.path(meta["filename"][0]) == tau2019.resolve() / meta["filename"][0]


def test_loads_2020_with_device_domains(tau2020: Path) -> None:
    ds = tau.load_dataset(tau2020)
    meta = ds.clips
    assert ds.name == "tau2020-mobile" and ds.domain_kind == "device"
    assert (ds.sample_rate, ds.channels, ds.clip_samples) == (44100, 1, 22050)
    assert (meta["domain"] == meta["source"]).all()
    assert set(meta.loc[meta["fold"] == "train", "domain"]) == {"a", "b", "s1"}
    assert set(meta.loc[meta["fold"] == "evaluate", "domain"]) == {"a", "b", "s1", "s4"}
    assert meta["city"].isin(tau.CITIES_2019).all()
    assert set(meta["source"]) <= set(tau.DEVICES_2020)


def test_constants() -> None:
    assert len(tau.SCENES) == 10 and list(tau.SCENES) == sorted(tau.SCENES)
    assert len(tau.CITIES_2019) == 10 and "milan" in tau.CITIES_2019
    assert tau.DEVICES_2020[:3] == ("a", "b", "c") and tau.DEVICES_2020[-1] == "s6"


def test_synthetic_comes_from_the_plugin_not_the_readme(tmp_path: Path) -> None:
    from harness.data.registry import open_dataset, resolve_layout

    root = write_tau(tmp_path / "s", scenes=("bus", "tram"), cities=("lyon",), synthetic=True)
    assert resolve_layout(root) == "tau2019" and not open_dataset(root).is_synthetic  # a README says nothing
    (root / SYNTHETIC_MARKER).write_text("{}")
    assert resolve_layout(root) == "synthetic"
    ds = open_dataset(root)
    assert ds.is_synthetic and ds.name == "synthetic" and "SYNTHETIC" in summary_text(ds)
    assert not open_dataset(root, dataset="tau2019").is_synthetic


def test_crlf_and_lf_give_the_same_dataset(tau2019: Path, broken: Path) -> None:
    for rel in ("meta.csv", TRAIN, EVAL, "evaluation_setup/fold1_test.csv"):
        to_crlf(broken / rel)
    assert b"\r\n" in (broken / "meta.csv").read_bytes()
    a, b = tau.load_dataset(tau2019).clips, tau.load_dataset(broken).clips
    assert a.equals(b)


def test_check_audio_false_reads_one_header_and_agrees(tau2019: Path) -> None:
    full, quick = tau.load_dataset(tau2019), tau.load_dataset(tau2019, check_audio=False)
    for field in ("sample_rate", "channels", "clip_samples", "name"):
        assert getattr(quick, field) == getattr(full, field)
    assert quick.identity == full.identity


def test_identity_tracks_audio_and_metadata(tau2019: Path, broken: Path) -> None:
    base = tau.load_dataset(broken)
    same = tau.load_dataset(tau2019)
    assert (base.identity, base.stamp) == (same.identity, same.stamp)  # same names, sizes, mtimes (hard links)
    wav = broken / base.clips["filename"][3]
    st = wav.stat()
    data = wav.read_bytes()
    wav.unlink()  # break the hard link to the shared fixture before touching it
    wav.write_bytes(data)
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    touched = tau.load_dataset(broken)
    assert touched.stamp != base.stamp  # the feature cache is rebuilt for a file rewritten in place
    assert touched.identity == base.identity  # results are keyed by content, not by file times
    wav.write_bytes(data[:-6])  # one sample shorter: a different file
    assert tau.load_dataset(broken, check_audio=False).identity != base.identity
    wav.write_bytes(data)
    rows = read_rows(broken / TRAIN)
    write_rows(broken / TRAIN, [rows[0]] + rows[:0:-1])  # same rows, other order
    reordered = tau.load_dataset(broken)
    assert reordered.identity != base.identity and reordered.stamp != touched.stamp


def test_a_copy_has_the_same_identity(tau2019: Path, tmp_path: Path) -> None:
    """Another machine's copy (new file times) keys the same runs: run ids and tables agree across machines."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tau2019, copy, copy_function=shutil.copyfile)  # contents only, fresh mtimes
    os.utime(copy / tau.load_dataset(copy).clips["filename"][0], ns=(0, 0))
    a, b = tau.load_dataset(tau2019), tau.load_dataset(copy)
    assert a.identity == b.identity and a.stamp != b.stamp


def test_read_audio(tau2019: Path) -> None:
    ds = tau.load_dataset(tau2019)
    x = ds.read(ds.clips["filename"][0])
    assert x.shape == (2, 24000) and x.dtype == np.float32 and np.abs(x).max() > 0.05


def test_read_audio_reports_a_file_damaged_after_loading(broken: Path) -> None:
    ds = tau.load_dataset(broken)
    name = ds.clips["filename"][5]
    write_wav(broken / name, 48000, 2, 100)
    with pytest.raises(DataError, match="truncated") as err:
        ds.read(name)
    assert Path(name).name in str(err.value)


def test_describe_and_summary(tau2019: Path) -> None:
    ds = tau.load_dataset(tau2019)
    table = describe(ds)
    assert table["total"].sum() == len(ds.clips)
    assert table.loc[("train", "bus"), "lyon"] == 2
    assert table.loc[("unused", "bus"), "milan"] == 2 and table.loc[("train", "bus"), "milan"] == 0
    assert list(table.index.get_level_values("fold").unique()) == ["train", "evaluate", "unused"]
    text = summary_text(ds)
    assert "unseen city milan: official = its 6 clips of fold1 evaluate; all = plus its 6 clips in no fold file" in text
    assert "fold train: 18, fold evaluate: 24, fold unused: 6" in text and "48000 Hz" in text


# --------------------------------------------------------------------------- bad data


def _first_audio(root: Path) -> str:
    return read_rows(root / "meta.csv")[1][0]


def _edit(rel: str, fn: Callable[[list[list[str]]], list[list[str]]]) -> Callable[[Path], str]:
    def breaker(root: Path) -> str:
        write_rows(root / rel, fn(read_rows(root / rel)))
        return Path(rel).name

    return breaker


def _audio(fn: Callable[[Path], None], row: int = 7) -> Callable[[Path], str]:
    def breaker(root: Path) -> str:
        name = read_rows(root / "meta.csv")[row][0]
        fn(root / name)
        return Path(name).name

    return breaker


def _set(rows: list[list[str]], line: int, col: int, value: str) -> list[list[str]]:
    rows[line - 1][col] = value
    return rows


def _remove(rel: str) -> Callable[[Path], str]:
    def breaker(root: Path) -> str:
        (root / rel).unlink()
        return Path(rel).name

    return breaker


def _add_unknown_to_train(rows: list[list[str]]) -> list[list[str]]:
    return rows + [["audio/bus-nowhere-9-9-a.wav", "bus"], ["audio/bus-nowhere-9-10-a.wav", "bus"]]


def _evaluate_row_into_train(root: Path) -> str:
    ev = read_rows(root / EVAL)
    write_rows(root / TRAIN, read_rows(root / TRAIN) + [ev[1]])
    return "fold1_evaluate.csv"  # reported where the second copy is met; the message names both


def _leak_location(root: Path) -> str:
    """Relabel an evaluate clip's identifier to a training location."""
    meta = read_rows(root / "meta.csv")
    train = {r[0] for r in read_rows(root / TRAIN)[1:]}
    evaluate = {r[0] for r in read_rows(root / EVAL)[1:]}
    train_row = next(r for r in meta[1:] if r[0] in train)
    eval_row = next(r for r in meta[1:] if r[0] in evaluate)
    eval_row[2] = train_row[2]
    write_rows(root / "meta.csv", meta)
    return "fold1_evaluate.csv"


BAD_DATA = {
    "missing meta.csv": (_remove("meta.csv"), "meta.csv not found"),
    "missing fold file": (_remove(TRAIN), "file not found"),
    "comma-separated meta": (_edit("meta.csv", lambda r: [[",".join(x)] for x in r]), "wrong header: expected"),
    "renamed column": (_edit("meta.csv", lambda r: _set(r, 1, 1, "scene")), "found 'filename TAB scene TAB"),
    "wrong fold header": (_edit(EVAL, lambda r: _set(r, 1, 1, "label")), "wrong header"),
    "unknown scene": (_edit("meta.csv", lambda r: _set(r, 4, 1, "beach")), "line 4: unknown scene label 'beach'"),
    "missing field": (_edit("meta.csv", lambda r: _set(r, 6, 3, "")), "line 6"),
    "bad identifier": (_edit("meta.csv", lambda r: _set(r, 3, 2, "lyon")), "line 3: identifier 'lyon'"),
    "duplicate meta row": (_edit("meta.csv", lambda r: r + [r[5]]), "duplicate row"),
    "duplicate fold row": (_edit(TRAIN, lambda r: r + [r[2]]), "duplicate row"),
    "fold names absent files": (
        _edit(TRAIN, _add_unknown_to_train),
        "names 2 file(s) absent from meta.csv, first: audio/bus-nowhere-9-9-a.wav",
    ),
    "fold scene disagrees": (
        _edit(EVAL, lambda r: _set(r, 2, 1, "tram" if r[1][1] != "tram" else "bus")),
        "disagrees with meta.csv",
    ),
    "file in both folds": (_evaluate_row_into_train, "is also in evaluation_setup/fold1_train.csv"),
    "location in both folds": (_leak_location, "shares 1 location(s)"),
    "missing audio": (_audio(lambda p: p.unlink()), "missing"),
    "truncated bytes": (_audio(lambda p: truncate_file(p, 4000)), "truncated"),
    "short file": (_audio(lambda p: write_wav(p, 48000, 2, 1000, "PCM_24")), "truncated: 1000 samples"),
    "corrupt wav": (_audio(corrupt_file), "corrupt"),
    "empty wav": (_audio(lambda p: truncate_file(p, 0)), "corrupt"),
    "wrong sample rate": (_audio(lambda p: write_wav(p, 44100, 2, 24000)), "sample rate is 44100 Hz"),
    "wrong channels": (_audio(lambda p: write_wav(p, 48000, 1, 24000)), "has 1 channel(s)"),
    "odd first file": (_audio(lambda p: write_wav(p, 16000, 2, 24000), row=1), "sample rate is 16000 Hz"),
    "truncated first file": (_audio(lambda p: truncate_file(p, 3000), row=1), "truncated"),
}


@pytest.mark.parametrize("case", BAD_DATA, ids=list(BAD_DATA))
def test_bad_data_is_a_one_line_data_error_naming_the_file(case: str, broken: Path) -> None:
    breaker, expected = BAD_DATA[case]
    culprit = breaker(broken)
    with pytest.raises(DataError) as err:
        tau.load_dataset(broken)
    message = str(err.value)
    assert culprit in message, message
    assert expected in message, message
    assert "\n" not in message and "\r" not in message
    assert err.value.path is not None and err.value.path.name == culprit


def test_missing_root_explains_how_to_get_the_data(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        tau.load_dataset(tmp_path / "nowhere")
    message = str(err.value)
    assert "nowhere" in message and "\n" not in message
    assert "2589280" in message and "--data" in message and "harness data synth" in message


def test_parent_folder_hints_the_dataset_inside(tau2019: Path) -> None:
    with pytest.raises(DataError, match="did you mean .*TAU-urban-acoustic-scenes-2019-development"):
        tau.load_dataset(tau2019.parent)


def test_bom_and_missing_test_file_are_accepted(broken: Path) -> None:
    meta = broken / "meta.csv"
    data = meta.read_bytes()
    meta.unlink()
    meta.write_bytes(b"\xef\xbb\xbf" + data)
    (broken / "evaluation_setup/fold1_test.csv").unlink()
    assert len(tau.load_dataset(broken).clips) == 48


def test_identity_is_the_one_first_issued(tmp_path: Path) -> None:
    """Run ids hash the dataset identity: its formula for the TAU layouts must not drift, or every
    stored run of a results folder would look missing and be trained again."""
    import hashlib

    from harness.data.registry import open_dataset
    from harness.data.tau import FOLD_FILES

    root = write_tau(tmp_path / "tau", seconds=1.0, sample_rate=8000)
    ds = open_dataset(root, progress=False)
    h = hashlib.sha256()  # the formula as first issued: metadata contents, then every file's name and size
    for rel in ("meta.csv", *FOLD_FILES.values()):
        h.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())
    for name in sorted(ds.clips["filename"]):
        h.update(f"{name}\t{(root / name).stat().st_size}\n".encode())
    assert ds.identity == h.hexdigest()
