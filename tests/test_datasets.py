"""Dataset plugins: layout detection, ESC-50, UrbanSound8K, manifests, broken variants, group leakage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from dataset_factory import edit_csv, rename_column, write_esc50, write_manifest, write_urbansound8k
from split_checks import shared_groups

from harness.cli import main
from harness.data.registry import DATASETS, open_dataset, resolve_layout
from harness.data.splits import inner_validation, make_split
from harness.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def esc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_esc50(tmp_path_factory.mktemp("esc") / "ESC-50-master")


@pytest.fixture(scope="module")
def us8k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_urbansound8k(tmp_path_factory.mktemp("us8k") / "UrbanSound8K")


@pytest.fixture(scope="module")
def bird(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("birds")
    write_manifest(root)
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _every_split(ds) -> list:
    specs = ([ds.protocols.holdout] if ds.protocols.holdout else []) + [f"fold:{f}" for f in ds.protocols.folds]
    if ds.has_domains:
        specs += [f"leave-one-domain-out:{d}" for d in sorted(ds.clips["domain"].unique())[:4]]
    return [make_split(ds, s) for s in specs]


def _assert_no_leak(ds) -> None:
    for split in _every_split(ds):
        assert len(split.train) and len(split.evaluate)
        assert shared_groups(ds, split.train, split.evaluate) == set(), split.name
        inner = inner_validation(ds, split.train, fraction=0.25, seed=1)
        assert shared_groups(ds, inner.train, inner.val) == set()
        assert not set(inner.val) & set(split.evaluate)


# --------------------------------------------------------------------------- detection


def test_detection_names_each_layout(esc: Path, us8k: Path, bird: Path, tmp_path: Path) -> None:
    assert resolve_layout(esc) == "esc50"
    assert resolve_layout(us8k) == "urbansound8k"
    assert resolve_layout(bird) == "csv" and resolve_layout(bird / "manifest.csv") == "csv"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as err:
        resolve_layout(tmp_path / "empty")
    msg = str(err.value)
    assert "no known dataset layout" in msg and "meta/esc50.csv" in msg and "UrbanSound8K.csv" in msg and "\n" not in msg
    assert set(DATASETS.names()) >= {"tau2019", "tau2020-mobile", "synthetic", "esc50", "urbansound8k", "csv"}


def test_ambiguous_layout_is_one_line(esc: Path, tmp_path: Path) -> None:
    both = _copy(esc, tmp_path / "both")
    write_manifest(both)  # a manifest.csv beside ESC-50's own layout
    with pytest.raises(DataError, match="ambiguous dataset layout: matches csv, esc50"):
        resolve_layout(both)
    assert open_dataset(both, dataset="esc50").name == "esc50"


def test_unknown_dataset_name(esc: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'esc5'.*did you mean 'esc50'"):
        open_dataset(esc, dataset="esc5")


# --------------------------------------------------------------------------- ESC-50


def test_esc50(esc: Path) -> None:
    ds = open_dataset(esc)
    assert ds.name == "esc50" and ds.classes == ("dog", "rooster", "rain", "sea_waves")  # by target
    assert ds.domain_kind == "source recording" and ds.protocols.folds == ("1", "2", "3", "4", "5")
    assert ds.protocols.default_split == "fold:1" and (ds.sample_rate, ds.channels) == (8000, 1) and ds.audio.exact
    assert (ds.clips["domain"] == ds.clips["group"]).all() and len(ds.clips) == 40
    s = make_split(ds, "fold:3")
    assert set(ds.clips["fold"].to_numpy()[s.evaluate]) == {"3"} and "3" not in set(ds.clips["fold"].to_numpy()[s.train])
    assert len(s.unseen) == len(s.evaluate)  # every test recording is absent from training
    sub = open_dataset(esc, subset="esc10")
    assert sub.classes == ("dog", "rain") and len(sub.clips) == 20 and sub.identity != ds.identity
    with pytest.raises(ConfigError, match="unknown subset"):
        open_dataset(esc, subset="esc20")
    _assert_no_leak(ds)


@pytest.mark.parametrize("case,needle", [
    ("header", "wrong header"),
    ("fold", "line 2: fold '6' is not a valid value (expected 1..5)"),
    ("label", "line 3: target 0 is 'dog' here but 'cat' elsewhere"),
    ("missing", "audio file listed in meta/esc50.csv is missing"),
    ("esc10", "unknown esc10 'maybe'"),
])
def test_esc50_broken(esc: Path, tmp_path: Path, case: str, needle: str) -> None:
    root = _copy(esc, tmp_path / "esc")
    meta = root / "meta" / "esc50.csv"
    if case == "header":
        rename_column(meta, "src_file", "source")
    elif case == "fold":
        edit_csv(meta, 0, "fold", "6")
    elif case == "label":
        edit_csv(meta, 0, "category", "cat")
    elif case == "missing":
        next((root / "audio").iterdir()).unlink()
    else:
        edit_csv(meta, 0, "esc10", "maybe")
    with pytest.raises(DataError) as err:
        open_dataset(root)
    assert needle in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- UrbanSound8K


def test_urbansound8k_converts_mixed_formats(us8k: Path) -> None:
    ds = open_dataset(us8k)
    assert ds.name == "urbansound8k" and ds.classes == ("air_conditioner", "car_horn", "dog_bark")
    assert ds.protocols.folds == tuple(str(k) for k in range(1, 11)) and ds.protocols.default_split == "fold:1"
    assert not ds.audio.exact and (ds.sample_rate, ds.channels, ds.clip_samples) == (22050, 1, 88200)
    for i in range(5):  # every format of the factory: stereo 44.1k, 48k, short 16k, ...
        x = ds.read(ds.clips["filename"].iloc[i])
        assert x.shape == (1, 88200) and x.dtype == np.float32
        assert np.abs(x[0, :2000]).max() > 0.05 and np.abs(x[0, -2000:]).max() == 0  # padded with silence at the end
    rep = open_dataset(us8k, pad="repeat")
    assert np.abs(rep.read(rep.clips["filename"].iloc[0])[0, -2000:]).max() > 0.05
    assert rep.options == {"pad": "repeat"} and rep.audio != ds.audio
    _assert_no_leak(ds)


def test_urbansound8k_pad_rule_keys_the_feature_cache(us8k: Path) -> None:
    from harness.features.cache import feature_path
    from harness.features.logmel import FeatureConfig

    a, b = open_dataset(us8k), open_dataset(us8k, pad="repeat")
    assert feature_path(a, FeatureConfig()) != feature_path(b, FeatureConfig())


@pytest.mark.parametrize("case,needle", [
    ("header", "wrong header"),
    ("fold", "fold '11' is not a valid value (expected 1..10)"),
    ("label", "classID '12' is not a valid value"),
    ("leak", "is in 2 folds; slices of one recording must share a fold"),
    ("missing", "audio file listed in metadata/UrbanSound8K.csv is missing"),
    ("corrupt", "unreadable or corrupt WAV"),
])
def test_urbansound8k_broken(us8k: Path, tmp_path: Path, case: str, needle: str) -> None:
    root = _copy(us8k, tmp_path / "us")
    meta = root / "metadata" / "UrbanSound8K.csv"
    if case == "header":
        rename_column(meta, "fsID", "freesound_id")
    elif case == "fold":
        edit_csv(meta, 0, "fold", "11")
    elif case == "label":
        edit_csv(meta, 0, "classID", "12")
    elif case == "leak":
        edit_csv(meta, 1, "fold", "2")  # slice 2 of the first recording moves to another fold
        src = root / "audio" / "fold1" / "1000-0-0-1.wav"
        (root / "audio" / "fold2").mkdir(exist_ok=True)
        shutil.copy(src, root / "audio" / "fold2" / src.name)
    elif case == "missing":
        (root / "audio" / "fold1" / "1000-0-0-0.wav").unlink()
    else:
        (root / "audio" / "fold1" / "1000-0-0-0.wav").write_bytes(b"not a wav" * 10)
    with pytest.raises(DataError) as err:
        open_dataset(root)
    assert needle in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- manifests


@pytest.mark.parametrize("columns", [
    ("domain", "group", "fold"), ("domain", "group", "split"), ("group", "fold"), ("domain", "fold"),
    ("domain", "group"), ("domain",), ("group",), ()])
def test_manifest_with_each_optional_column_missing(tmp_path: Path, columns: tuple[str, ...]) -> None:
    write_manifest(tmp_path, columns=columns, groups_per=3)
    ds = open_dataset(tmp_path)
    assert ds.name == "csv" and ds.classes == ("crow", "owl", "wren")
    assert ds.has_domains == ("domain" in columns)
    if "split" in columns:
        assert ds.protocols.holdout == "given" and set(ds.clips["fold"]) == {"train", "evaluate"}
    else:
        assert ds.protocols.folds and ds.protocols.default_split == "fold:1"
    if "group" not in columns:
        assert (ds.clips["group"] == ds.clips["filename"]).all()
    _assert_no_leak(ds)


def test_manifest_grouped_folds_keep_groups_whole_and_balance_classes(tmp_path: Path) -> None:
    write_manifest(tmp_path, columns=("group",), groups_per=5)
    ds = open_dataset(tmp_path)
    assert ds.protocols.folds == ("1", "2", "3", "4", "5")
    assert (ds.clips.groupby("group")["fold"].nunique() == 1).all()
    counts = ds.clips.groupby(["fold", "class"]).size().unstack()
    assert counts.min().min() >= 4 and counts.max().max() <= 8  # 30 clips a class, 6 per fold give or take a group
    assert open_dataset(tmp_path).clips["fold"].equals(ds.clips["fold"])  # deterministic
    assert len(open_dataset(tmp_path, folds=3).protocols.folds) == 3


def test_manifest_file_path_and_declared_classes(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, name="labels.csv")
    ds = open_dataset(path)
    assert ds.root == tmp_path.resolve() and len(ds.clips) == 90
    assert open_dataset(path, classes="wren,owl,crow").classes == ("wren", "owl", "crow")


@pytest.mark.parametrize("case,needle", [
    ("header", "wrong header: no column 'label'"),
    ("fold", "line 2: fold '0' is not a valid value"),
    ("label", "line 2: unknown label 'eagle'"),
    ("missing", "audio file listed in manifest.csv is missing"),
    ("both", "has both a fold and a split column"),
    ("split", "line 2: unknown split 'dev'"),
    ("group", "is in more than one fold"),
])
def test_manifest_broken(tmp_path: Path, case: str, needle: str) -> None:
    cols = ("domain", "group", "fold", "split") if case == "both" else (
        ("domain", "split") if case == "split" else ("domain", "group", "fold"))
    path = write_manifest(tmp_path, columns=cols, groups_per=2)
    opts = {}
    if case == "header":
        rename_column(path, "label", "class")
    elif case == "fold":
        edit_csv(path, 0, "fold", "0")
    elif case == "label":
        edit_csv(path, 0, "label", "eagle")
        opts = {"classes": "crow,owl,wren"}
    elif case == "missing":
        (tmp_path / "clips" / "crow-mic1-0-0.wav").unlink()
    elif case == "split":
        edit_csv(path, 0, "split", "dev")
    elif case == "group":
        edit_csv(path, 0, "fold", "4")
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path, dataset="csv", **opts)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cli_one_line_errors_and_detection_message(esc: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "nothing").mkdir()
    assert main(["data", "info", str(tmp_path / "nothing"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error:") and "no known dataset layout" in err and "\n" not in err
    assert main(["data", "info", str(esc), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "detected as esc50" in out.out and "fold:1" in out.out and "source recording" in out.out
    assert main(["run", "--data", str(esc), "--split", "fold:9", "--no-progress", "--results", str(tmp_path / "r")]) == 2
    assert "unknown fold '9'" in capsys.readouterr().err


# --------------------------------------------------------------------------- metrics


def test_metrics_from_predictions() -> None:
    from harness.metrics import Predictions, compute

    labels = np.array([0, 0, 0, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 0, 2])
    logits = np.full((6, 3), -5.0)
    logits[np.arange(6), pred] = 5.0
    domains = np.array(["a", "a", "s1", "s1", "s4", "s4"])
    unseen = domains == "s4"
    p = Predictions(logits, labels, domains, np.ones(6, bool), unseen, ("x", "y", "z"),
                    {"recording": {"a": "real", "s1": "simulated", "s4": "simulated"}})
    m = compute(p)
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["macro_acc"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert m["seen_acc"] == pytest.approx(3 / 4) and m["unseen_acc"] == pytest.approx(1 / 2)
    assert m["acc_class_x"] == pytest.approx(2 / 3) and m["acc_domain_s1"] == pytest.approx(1 / 2)
    assert m["acc_recording_real"] == 1.0 and m["acc_recording_simulated"] == pytest.approx(2 / 4)
    import torch

    ce = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    assert m["log_loss"] == pytest.approx(float(ce))


def test_tau2020_declares_real_and_simulated_devices(tmp_path: Path) -> None:
    from tau_factory import write_tau

    ds = open_dataset(write_tau(tmp_path / "t20", layout="tau2020"))
    assert ds.protocols.groupings["recording"] == {"a": "real", "b": "real", "s1": "simulated", "s4": "simulated"}


# --------------------------------------------------------------------------- cross-validation: grid and tables


def test_grid_folds_all_plans_every_fold(esc: Path, tmp_path: Path, capsys) -> None:
    args = ["grid", "--data", str(esc), "--folds", "all", "--mels", "40", "--seeds", "1", "--variants", "FCNN",
            "--results", str(tmp_path / "r"), "--dry-run", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "grid: 5 runs (1 variants × 1 mel settings × 1 seeds × 5 folds)" in out
    assert all(f"fold:{k}" in out for k in range(1, 6))
    assert main(args[:3] + ["--folds", "7"] + args[5:]) == 2
    assert "unknown fold '7'" in capsys.readouterr().err


def _cv_store(root: Path, folds: int = 3, clips_per_fold: int = 20) -> None:
    """Two variants × 2 seeds × ``folds`` folds with fabricated predictions on disjoint clips."""
    from harness.results.store import ResultsStore, save_npz

    store = ResultsStore(root)
    rng = np.random.default_rng(0)
    for variant, (arch, loss, aug, skill) in {"FCNN": ("fcnn", "ce", "none", 0.6),
                                              "FCNN-spec": ("fcnn", "ce", "spec", 0.8)}.items():
        for seed in (0, 1):
            for k in range(1, folds + 1):
                run_id = f"{variant}-s{seed}-f{k}"
                labels = np.random.default_rng(k).integers(0, 3, clips_per_fold)  # a clip keeps its label
                right = rng.random(clips_per_fold) < skill
                logits = np.zeros((clips_per_fold, 3), np.float32)
                logits[np.arange(clips_per_fold), np.where(right, labels, (labels + 1) % 3)] = 3.0
                files = np.array([f"audio/f{k}-{i}.wav" for i in range(clips_per_fold)])
                store.run_dir(run_id).mkdir(parents=True)
                save_npz(store.run_dir(run_id) / "predictions.npz", filenames=files, labels=labels,
                         domains=files, classes=np.array(["a", "b", "c"]), logits=logits,
                         embeddings=np.zeros((clips_per_fold, 2), np.float16), official=np.ones(clips_per_fold, bool),
                         unseen=np.ones(clips_per_fold, bool))
                acc = float(right.mean())
                store.write_summary(run_id, {
                    "run_id": run_id, "status": "complete", "arch": arch, "loss": loss, "aug": aug, "n_mels": 40,
                    "seed": seed, "epochs": 30, "batch_size": 32, "lr": 0.001, "preset": "quick", "split": f"fold:{k}",
                    "dataset": "/data/ESC-50", "dataset_kind": "esc50", "dataset_identity": "esc" * 10,
                    "unseen_protocol": "official", "unseen_domains": "20 source recordings", "acc_score": acc,
                    "unseen_score": acc, "score_window": 5, "scores": {"acc": acc, "unseen_acc": acc, "macro_acc": acc},
                    "created": f"2024-01-01T00:00:{seed}{k}", "run_dir": f"runs/{run_id}"})


def test_tables_pool_folds_and_pair_statistics_over_folds(tmp_path: Path) -> None:
    from harness.report.stats import build_stats
    from harness.report.tables import build_table1, load_index

    _cv_store(tmp_path)
    index = load_index(tmp_path)
    t = build_table1(index, mels=(40,), seeds=(0, 1), results=tmp_path)
    assert t.selection.folds == ("fold:1", "fold:2", "fold:3")
    cell = t.cells[("FCNN-spec", 40, "overall")]
    expected = 100 * index.loc[index["aug"] == "spec", "acc_score"]
    assert cell.n == 6 and cell.mean == pytest.approx(expected.mean()) and cell.std == pytest.approx(expected.std())
    assert any("3 folds (folds pooled)" in n for n in t.notes())
    missing = [m for m in t.missing if m.variant == "SubSpectralNet"]
    assert len(missing) == 6 and "--split fold:2" in missing[1].command
    macro = build_table1(index, mels=(40,), seeds=(0, 1), results=tmp_path, metric="macro_acc")
    assert macro.cells[("FCNN-spec", 40, "overall")].mean == pytest.approx(expected.mean())
    # The paper's TAU 2019 numbers are not put beside another dataset's.
    assert not t.selection.beside_paper and cell.paper is None and cell.diff is None
    assert any("the paper's values are left out" in n for n in t.notes())
    stats = build_stats(t.runs, t.selection, tmp_path, mels=(40,))
    spec = [c for c in stats.comparisons if c.variant == "FCNN-spec" and c.subset == "overall"][0]
    assert spec.n_clips == 60 and spec.seeds == (0, 1)  # every fold's test clips, paired per seed


# --------------------------------------------------------------------------- run identity


def test_run_id_ignores_how_and_binds_the_dataset(esc: Path) -> None:
    from harness.runner.config import RunConfig

    ds = open_dataset(esc)
    a = RunConfig(arch="fcnn", data=str(esc)).resolved().for_dataset(ds)
    b = RunConfig(arch="fcnn", data="/elsewhere/ESC-50", dataset="esc50", device="cpu",
                  arch_options={"conv_impl": "reference"}).resolved().for_dataset(ds)
    assert a.run_id() == b.run_id() and a.split == "fold:1" and a.dataset == "esc50"
    assert RunConfig(arch="fcnn", split="fold:2").resolved().for_dataset(ds).run_id() != a.run_id()
    sub = open_dataset(esc, subset="esc10")
    assert RunConfig(arch="fcnn").resolved().for_dataset(sub).run_id() != a.run_id()
    assert RunConfig(arch="fcnn", arch_options={"dropout": 0.5}).resolved().for_dataset(ds).run_id() != a.run_id()
