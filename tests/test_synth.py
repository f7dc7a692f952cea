"""The synthetic TAU-layout generator: exact layout, TAU-like splits, determinism, atomicity,
a measurable city shift, the 48 kHz / 24-bit preset and the cached default dataset."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.data.synthetic import plugin, tau2019, tau2022, world
from harness.errors import ConfigError

TINY = dict(
    sample_rate=8000,
    seconds=0.25,
    locations_per_scene_city=3,
    segments_per_location=2,
    cities=("barcelona", "helsinki", "milan", "paris"),
    scenes=("bus", "park", "street_traffic"),
)
NAME = re.compile(r"^audio/([a-z_]+)-([a-z]+)-(\d+)-(\d+)-a\.wav$")


def tiny(**kw) -> world.SynthConfig:
    return world.SynthConfig(**{**TINY, **kw})


def read_tsv(path: Path) -> tuple[str, list[list[str]]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode().split("\n")[:-1]
    return lines[0], [line.split("\t") for line in lines[1:]]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tau2019.generate(tiny(), tmp_path_factory.mktemp("synth") / "ds", progress=False, workers=1)


def test_layout_and_headers_are_exactly_tau_2019(tiny_root: Path) -> None:
    cfg = tiny()
    assert sorted(p.name for p in tiny_root.iterdir()) == ["README.md", "audio", "evaluation_setup", "meta.csv", "synthetic.json"]
    header, meta = read_tsv(tiny_root / "meta.csv")
    assert header == "filename\tscene_label\tidentifier\tsource_label"
    assert len(meta) == 3 * 4 * 3 * 2 and all(len(r) == 4 for r in meta)
    assert [r[0] for r in meta] != sorted(r[0] for r in meta)  # TAU's meta.csv is not sorted
    segments, places = set(), {}
    for filename, scene, identifier, source in meta:
        m = NAME.match(filename)
        assert m, filename
        assert (m[1], source) == (scene, "a") and identifier == f"{m[2]}-{m[3]}"
        assert m[4] not in segments  # segment ids unique dataset-wide
        segments.add(m[4])
        assert places.setdefault(identifier, scene) == scene  # a location belongs to one scene
    assert sorted(p.name for p in (tiny_root / "audio").iterdir()) == sorted(r[0][6:] for r in meta)
    setup = tiny_root / "evaluation_setup"
    assert sorted(p.name for p in setup.iterdir()) == ["fold1_evaluate.csv", "fold1_test.csv", "fold1_train.csv"]
    scene_of = {r[0]: r[1] for r in meta}
    for name in ("fold1_train.csv", "fold1_evaluate.csv"):
        h, rows = read_tsv(setup / name)
        assert h == "filename\tscene_label" and rows and all(scene_of[f] == s for f, s in rows)
    h, test_rows = read_tsv(setup / "fold1_test.csv")
    assert h == "filename" and [r[0] for r in test_rows] == [r[0] for r in read_tsv(setup / "fold1_evaluate.csv")[1]]
    info = sf.info(str(tiny_root / meta[0][0]))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 2, 2000, "PCM_16")
    readme = (tiny_root / "README.md").read_text().splitlines()
    assert "SYNTHETIC DATASET" in readme[0] and "TAU URBAN ACOUSTIC SCENES 2019" in readme[0]
    assert f"seed {cfg.seed}" in "\n".join(readme) and '"city_shift"' in "\n".join(readme)


def test_default_plan_splits_by_location_like_tau() -> None:
    cfg = world.SynthConfig()
    clips = world.plan(cfg)
    folds: dict[str, set[str]] = {}
    for c in clips:
        folds.setdefault(c.identifier, set()).add(c.fold)
    assert all(len(f) == 1 for f in folds.values()), "a location is split across folds"
    by_fold = {k: [c for c in clips if c.fold == k] for k in ("train", "evaluate", "unused")}
    assert {c.city for c in by_fold["unused"]} == {"milan"}
    assert "milan" not in {c.city for c in by_fold["train"]}
    assert "milan" in {c.city for c in by_fold["evaluate"]}
    assert len({c.city for c in by_fold["train"]}) == 9 and len({c.city for c in by_fold["evaluate"]}) == 10
    for scene in cfg.scenes:  # every seen (scene, city) has whole locations on both sides
        for city in set(cfg.cities) - {"milan"}:
            assert {c.fold for c in clips if (c.scene, c.city) == (scene, city)} == {"train", "evaluate"}
    assert 1400 <= len(by_fold["train"]) <= 1800 and 600 <= len(by_fold["evaluate"]) <= 900
    assert 100 <= len(by_fold["unused"]) <= 400
    assert len({c.segment for c in clips}) == len(clips)


def test_same_seed_gives_byte_identical_files(tmp_path: Path, tiny_root: Path) -> None:
    cfg = tiny(segments_per_location=1, scenes=("metro", "shopping_mall"))
    a = tau2019.generate(cfg, tmp_path / "a", progress=False, workers=1)
    b = tau2019.generate(cfg, tmp_path / "b", progress=False, workers=2)  # worker count must not matter
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert world.SynthConfig(**cfg.to_dict()) == cfg  # round-trips through JSON-style dicts
    c = tau2019.generate(replace(cfg, seed=1), tmp_path / "c", progress=False, workers=1)
    assert sorted(p.read_bytes() for p in (c / "audio").iterdir()) != sorted(p.read_bytes() for p in (a / "audio").iterdir())


def test_interrupted_generation_never_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ds"
    real, calls = tau2019.write_wav, []

    def flaky(path: Path, frames: np.ndarray, sample_rate: int, subtype: str) -> None:
        assert not root.exists() and ".partial-" in str(path)  # writes go to the work folder
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real(path, frames, sample_rate, subtype)

    monkeypatch.setattr(tau2019, "write_wav", flaky)
    with pytest.raises(KeyboardInterrupt):
        tau2019.generate(tiny(), root, progress=False, workers=1)
    assert len(calls) == 5
    assert not root.exists() and list(tmp_path.iterdir()) == []  # nothing complete-looking, work folder gone


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not empty"):
        tau2019.generate(tiny(segments_per_location=1), root, progress=False, workers=1)
    assert (root / "mine.txt").read_text() == "keep"
    tau2019.generate(tiny(segments_per_location=1), root, progress=False, workers=1, overwrite=True)
    assert not (root / "mine.txt").exists() and (root / "meta.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty folder is fine
    assert (tau2019.generate(tiny(segments_per_location=1), empty, progress=False, workers=1) / "meta.csv").is_file()


def _city_spectra(shift: float) -> np.ndarray:
    """Mean log power spectrum (park, first channel) per city, location variation switched off."""
    cfg = world.SynthConfig(sample_rate=8000, seconds=0.512, city_shift=shift, location_spread=0.0)
    out = []
    for city in ("barcelona", "helsinki", "milan", "paris", "vienna"):
        segs = [world.synth_clip(cfg, "park", city, 7, seg)[0] for seg in range(6)]
        power = np.mean([np.abs(np.fft.rfft(x.reshape(-1, 256) * np.hanning(256), axis=1)) ** 2 for x in segs], axis=(0, 1))
        out.append(10 * np.log10(power[1:].reshape(16, 8).mean(axis=1) + 1e-12))
    return np.array(out)


def test_city_shift_moves_city_spectra_apart() -> None:
    spread = {s: np.std(_city_spectra(s) - _city_spectra(s).mean(axis=1, keepdims=True), axis=0).mean() for s in (0.0, 1.0, 2.0)}
    # Shapes (level removed) of the same scene differ across cities only through city_shift.
    assert spread[0.0] < 1.0, spread
    assert spread[1.0] > 2 * spread[0.0] and spread[2.0] > 1.5 * spread[1.0], spread


def test_clips_are_finite_bounded_and_stereo_for_every_scene() -> None:
    cfg = world.SynthConfig(sample_rate=8000, seconds=0.3)
    for scene in cfg.scenes:
        x = world.synth_clip(cfg, scene, "lyon", 3, 1)
        assert x.shape == (2, 2400) and x.dtype == np.float32
        assert np.isfinite(x).all() and np.abs(x).max() <= 1.0 and 1e-4 < x.std() < 0.5
        assert not np.allclose(x[0], x[1])
    mono = world.synth_clip(world.SynthConfig(sample_rate=8000, seconds=0.3, channels=1), "park", "lyon", 3, 1)
    assert mono.shape == (1, 2400)


def test_tau_format_preset_writes_48k_24bit_stereo(tmp_path: Path) -> None:
    full = world.SynthConfig.tau_format()
    assert (full.sample_rate, full.subtype, full.channels, full.seconds) == (48000, "PCM_24", 2, 10.0)
    cfg = world.SynthConfig.tau_format(
        seconds=0.2, locations_per_scene_city=2, segments_per_location=1, cities=("lyon", "milan"), scenes=("tram",)
    )
    root = tau2019.generate(cfg, tmp_path / "tau48", progress=False, workers=1)
    wavs = sorted((root / "audio").iterdir())
    assert len(wavs) == 4
    for wav in wavs:
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.frames, info.subtype, info.format) == (48000, 2, 9600, "PCM_24", "WAV")


@pytest.mark.parametrize(
    "bad",
    [dict(channels=3), dict(subtype="FLOAT"), dict(locations_per_scene_city=1), dict(city_shift=-1.0),
     dict(scenes=("airport", "beach")), dict(unseen_city="rome"), dict(seconds=0.0)],
)  # fmt: skip
def test_bad_config_is_a_one_line_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError) as err:
        tiny(**bad)
    assert "\n" not in str(err.value)


def test_default_dataset_is_generated_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    cfg = tiny(segments_per_location=1)
    root = plugin.default_dataset(progress=False, cfg=cfg)
    assert root == tmp_path / "datasets" / f"synthetic-{cfg.key()}" / "TAU-urban-acoustic-scenes-2019-development"
    assert (root / "meta.csv").is_file()
    before = (root / "meta.csv").stat().st_mtime_ns
    assert plugin.default_dataset(progress=False, cfg=cfg) == root
    assert (root / "meta.csv").stat().st_mtime_ns == before
    assert plugin.default_root() != root and plugin.default_config().key() == world.SynthConfig().key()
    assert tiny(seed=1).key() != cfg.key()


def test_data_synthetic_opens_the_plugins_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--data synthetic``: the registry opens the folder the plugin declares as its default root."""
    from harness.data.recorded import RecordedDataset
    from harness.data.registry import open_dataset

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    cfg = tiny(segments_per_location=1)
    monkeypatch.setattr(plugin, "default_config", lambda: cfg)
    ds = open_dataset("synthetic", progress=False)
    assert ds.root == plugin.default_root(cfg) and ds.name == "synthetic" and ds.is_synthetic
    assert RecordedDataset.from_record(ds.record()).data_arg == "synthetic"  # a table re-runs it with --data synthetic
    assert open_dataset(ds.root).identity == ds.identity  # the same folder given as a path


def test_default_dataset_loses_a_race_gracefully(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process publishes first (e.g. without a working lock): its copy is kept and used."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    cfg = tiny(segments_per_location=1)
    root = plugin.default_root(cfg)
    stale = root.with_name(root.name + ".partial-999999999")  # left by a killed generator
    stale.mkdir(parents=True)
    real_fill = tau2019._fill

    def fill_then_lose(cfg_, work, progress, workers):
        assert not stale.exists()
        real_fill(cfg_, work, progress, workers)
        root.mkdir()
        (root / "meta.csv").write_text("winner\n")

    monkeypatch.setattr(tau2019, "_fill", fill_then_lose)
    assert plugin.default_dataset(progress=False, cfg=cfg) == root
    assert (root / "meta.csv").read_text() == "winner\n"
    assert sorted(p.name for p in root.parent.iterdir()) == [".lock", root.name]


def _call_default(cache: str, queue) -> None:
    os.environ["HARNESS_CACHE"] = cache
    queue.put(str(plugin.default_dataset(progress=False, cfg=tiny(segments_per_location=1))))


def test_concurrent_default_dataset_calls_agree(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_call_default, args=(str(tmp_path), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    paths = {queue.get(timeout=5) for _ in procs}
    assert len(paths) == 1
    root = Path(paths.pop())
    assert (root / "meta.csv").is_file() and sorted(p.name for p in root.parent.iterdir()) == [".lock", root.name]


def test_the_real_loader_reads_it(tiny_root: Path) -> None:
    from harness.data.registry import open_dataset

    ds = open_dataset(tiny_root)  # detected from synthetic.json, read by the TAU 2019 loader
    assert ds.is_synthetic and ds.name == "synthetic" and ds.sample_rate == 8000 and ds.channels == 2
    milan = ds.clips[ds.clips["city"] == "milan"]
    assert set(milan["fold"]) == {"evaluate", "unused"} and "milan" not in set(ds.clips.loc[ds.clips["fold"] == "train", "city"])


def _digest(root: Path) -> tuple[int, str]:
    """sha256 over every file's name and bytes but the README (which names the generator's module)."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "README.md")
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + (root / f).read_bytes())
    return len(files), h.hexdigest()


def test_generated_files_are_pinned(tmp_path: Path) -> None:
    """The generators' bytes never change unnoticed: a dataset's identity (file names, sizes and
    metadata) keys run ids and its files key the feature cache. A change that is meant must bump
    ``GENERATOR_VERSION`` and update these digests."""
    cfg = tiny(segments_per_location=1, locations_per_scene_city=2, cities=("lyon", "milan"), scenes=("bus", "park"))
    root = tau2019.generate(cfg, tmp_path / "2019", progress=False, workers=1)
    assert _digest(root) == (13, "6f04bda928bd9fce2652f3dc5cd5e6e29b61e1c2b5e29c2020a6308df2477ee7")
    mobile = tau2022.MobileSynthConfig(sample_rate=8000, recording_seconds=1, cities=("lyon", "paris"), locations_per_scene_city=2)
    root = tau2022.generate(mobile, tmp_path / "2022", progress=False)
    assert _digest(root) == (251, "9a154ce116dcd4dc52958c94b56407d94c257a67309d2117c249aad0687a453e")
    assert world.GENERATOR_VERSION == 2
