"""Synthetic scenes in the TAU Urban Acoustic Scenes 2022 Mobile layout, with the DCASE 2024 split files.

The 2022 Mobile development set is the 2020 Mobile material cut into 1-s segments: a 10-s
recording made in parallel on several devices becomes ``audio/<scene>-<city>-<loc>-<segment>-<sub>-
<device>.wav`` for each 1-s piece ``sub`` and each device. Devices a, b, c are real, s1–s6
simulated; s4–s6 never occur in training. The DCASE 2024 data-efficient splits
(``split{5,10,25,50,100}.csv``, nested, whole recordings) and ``test.csv`` are distributed apart
from the audio; here they are written to ``split_setup/`` inside the dataset folder.

Signal model: a recording is :func:`harness.data.synthetic.world.synth_clip` (scene, city, location as in
the 2019 layout, mono) heard through a **device**: a recording-condition shift drawn once per
device (microphone EQ: tilt, low shelf and three peaks/dips; noise-floor level and colour; level),
scaled by ``device_shift`` (0 = all devices identical). Device a gets no shift (the reference
device, as in TAU, where the others were recorded or simulated against it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from harness.data.synthetic.sounds import curve, unit_variance
from harness.data.synthetic.world import GENERATOR_VERSION, SynthConfig, synth_clip
from harness.data.synthetic.writer import generate_once, write_folder, write_marker, write_tsv, write_wav
from harness.data.tau import SCENES
from harness.data.tau2022 import SPLITS_DIRNAME, SUBSETS
from harness.errors import ConfigError

DATASET_DIRNAME = "TAU-urban-acoustic-scenes-2022-mobile-development"
REAL_DEVICES = ("a", "b", "c")
SEEN_SIMULATED = ("s1", "s2", "s3")
UNSEEN_DEVICES = ("s4", "s5", "s6")
DEVICES = REAL_DEVICES + SEEN_SIMULATED + UNSEEN_DEVICES


@dataclass(frozen=True)
class MobileSynthConfig:
    """Everything that determines the generated files."""

    seed: int = 0
    sample_rate: int = 44100
    recording_seconds: int = 4  # each recording is cut into this many 1-s segments (10 in TAU)
    cities: tuple[str, ...] = ("barcelona", "helsinki", "lisbon", "london", "lyon", "paris")
    locations_per_scene_city: int = 3  # one of them goes to the test side
    recordings_per_location: int = 1
    train_devices_per_recording: int = 2  # besides device a, drawn from b, c, s1-s3
    device_shift: float = 1.0
    city_shift: float = 1.0
    subtype: str = "PCM_16"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cities", tuple(self.cities))
        if not 1 <= self.recording_seconds <= 10:
            raise ConfigError(f"synthetic 2022 dataset: recording_seconds must be 1..10, got {self.recording_seconds}")
        if self.locations_per_scene_city < 2 or self.recordings_per_location < 1:
            raise ConfigError("synthetic 2022 dataset: need >= 2 locations per (scene, city) and >= 1 recording per location")
        if not 0 <= self.train_devices_per_recording <= 5:
            raise ConfigError(f"synthetic 2022 dataset: train_devices_per_recording must be 0..5, got {self.train_devices_per_recording}")
        if self.device_shift < 0:
            raise ConfigError("synthetic 2022 dataset: device_shift must be >= 0")

    def scene_config(self) -> SynthConfig:
        """The 2019-layout generator that makes each recording (mono, the recording's length)."""
        return SynthConfig(seed=self.seed, sample_rate=self.sample_rate, seconds=float(self.recording_seconds),
                                 channels=1, subtype=self.subtype, locations_per_scene_city=self.locations_per_scene_city,
                                 city_shift=self.city_shift, cities=self.cities, unseen_city=self.cities[-1])

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["cities"] = list(self.cities)
        return d

    def key(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, "layout": "tau2022", **self.to_dict()}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Recording:
    scene: str
    city: str
    location: int
    segment: int
    side: str  # train or test
    devices: tuple[str, ...]

    @property
    def stem(self) -> str:
        return f"{self.scene}-{self.city}-{self.location}-{self.segment}"

    def filename(self, sub: int, device: str) -> str:
        return f"audio/{self.stem}-{sub}-{device}.wav"


def plan(cfg: MobileSynthConfig) -> list[Recording]:
    """Recordings with their side (whole locations) and devices: test recordings on all nine."""
    rng = np.random.default_rng([cfg.seed, 2022])
    recs, loc_id, seg = [], 0, 0
    for scene in SCENES:
        for city in cfg.cities:
            test_loc = int(rng.integers(cfg.locations_per_scene_city))
            for j in range(cfg.locations_per_scene_city):
                loc_id += 1
                for _ in range(cfg.recordings_per_location):
                    seg += 1
                    if j == test_loc:
                        recs.append(Recording(scene, city, loc_id, seg, "test", DEVICES))
                    else:
                        others = rng.choice(len(DEVICES[1:6]), cfg.train_devices_per_recording, replace=False)
                        devs = ("a",) + tuple(DEVICES[1 + i] for i in sorted(others))
                        recs.append(Recording(scene, city, loc_id, seg, "train", devs))
    return recs


def _device_response(cfg: MobileSynthConfig, device: str, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(EQ amplitude per rfft bin, noise-floor amplitude, level) of a device; device a is neutral."""
    f = sfft.rfftfreq(n, 1 / cfg.sample_rate)
    o = np.log2(np.maximum(f, 20.0) / 20.0)
    if device == "a" or cfg.device_shift == 0:
        return np.ones_like(o, np.float32), np.zeros_like(o, np.float32), 1.0
    r, s = np.random.default_rng([cfg.seed, _crc(device)]), cfg.device_shift
    z = r.standard_normal(5)
    bumps = np.stack([r.uniform(1.0, 9.0, 3), r.uniform(0.3, 1.2, 3), r.standard_normal(3) * 4.0 * s], axis=1)
    db = curve(o, s * 1.2 * z[0], bumps) + s * 6.0 * z[1] / (1 + np.exp((o - np.log2(300 / 20)) / 0.3))
    db -= s * 8.0 * abs(z[2]) * np.maximum(0.0, o - np.log2(8000 / 20))  # small-microphone high-frequency loss
    floor = 10 ** ((-50 + s * 6.0 * z[3]) / 20) * unit_variance(np.ones_like(o), n)
    return (10 ** (db / 20)).astype(np.float32), floor.astype(np.float32), float(10 ** (s * 1.5 * z[4] / 20))


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def recording_audio(cfg: MobileSynthConfig, rec: Recording) -> dict[str, np.ndarray]:
    """The recording as each of its devices heard it: device -> (samples,) float32."""
    base = synth_clip(cfg.scene_config(), rec.scene, rec.city, rec.location, rec.segment)[0]
    n = len(base)
    spec = sfft.rfft(base)
    out = {}
    for device in rec.devices:
        eq, floor, level = _device_response(cfg, device, n)
        noise = np.random.default_rng([cfg.seed, rec.segment, _crc(device)]).standard_normal((2, len(eq)))
        y = sfft.irfft(spec * eq + (noise[0] + 1j * noise[1]) * floor, n) * level
        out[device] = np.clip(y, -1.0, 1.0).astype(np.float32)
    return out


def nested_subsets(cfg: MobileSynthConfig, recs: list[Recording]) -> dict[int, set[str]]:
    """Recording stems of each split: one seeded order per scene, split N = its first N % (nested)."""
    rng = np.random.default_rng([cfg.seed, 2024])
    out: dict[int, set[str]] = {n: set() for n in SUBSETS}
    for scene in SCENES:
        stems = [r.stem for r in recs if r.side == "train" and r.scene == scene]
        order = [stems[i] for i in rng.permutation(len(stems))]
        for n in SUBSETS:
            out[n].update(order[: max(1, math.ceil(len(order) * n / 100))])
    return out


def generate(cfg: MobileSynthConfig, root: str | Path, progress: bool = True, overwrite: bool = False) -> Path:
    """Write the dataset (and ``split_setup/``) to ``root`` atomically, as :func:`harness.data.synthetic.tau2019.generate`; returns ``root``."""
    return write_folder(root, lambda work: _fill(cfg, work, progress), overwrite)


def _fill(cfg: MobileSynthConfig, work: Path, progress: bool) -> None:
    from harness.progress import progress as progress_bar

    (work / "audio").mkdir(parents=True)
    recs = plan(cfg)
    meta, train, test = [], [], []
    sr = cfg.sample_rate
    for rec in progress_bar(recs, desc="synthesising recordings", unit="rec", enabled=progress):
        for device, audio in recording_audio(cfg, rec).items():
            for sub in range(cfg.recording_seconds):
                name = rec.filename(sub, device)
                write_wav(work / name, audio[sub * sr:(sub + 1) * sr], sr, cfg.subtype)
                meta.append([name, rec.scene, f"{rec.city}-{rec.location}", device])
                (train if rec.side == "train" else test).append([name, rec.scene])
    order = np.random.default_rng([cfg.seed, 7]).permutation(len(meta))  # TAU's meta.csv is not sorted
    write_tsv(work / "meta.csv", ["filename", "scene_label", "identifier", "source_label"], [meta[i] for i in order])
    setup = work / "evaluation_setup"
    write_tsv(setup / "fold1_train.csv", ["filename", "scene_label"], sorted(train))
    write_tsv(setup / "fold1_evaluate.csv", ["filename", "scene_label"], sorted(test))
    write_tsv(setup / "fold1_test.csv", ["filename"], [[f] for f, _ in sorted(test)])
    for n, stems in nested_subsets(cfg, recs).items():
        rows = sorted(r for r in train if r[0][len("audio/"):].rsplit("-", 2)[0] in stems)
        write_tsv(work / SPLITS_DIRNAME / f"split{n}.csv", ["filename", "scene_label"], rows)
    write_tsv(work / SPLITS_DIRNAME / "test.csv", ["filename", "scene_label"], sorted(test))
    (work / "README.md").write_text(
        "# SYNTHETIC DATASET IN TAU URBAN ACOUSTIC SCENES 2022 MOBILE LAYOUT — NOT REAL RECORDINGS\n\n"
        f"Generated by `harness.data.synthetic` with seed {cfg.seed}: {len(meta)} 1-s mono clips at "
        f"{sr} Hz from {len(recs)} recordings of {cfg.recording_seconds} s; devices a, b, c (real), s1-s3 "
        "(simulated, seen), s4-s6 (simulated, only in the test split). `split_setup/` holds the DCASE 2024 "
        "style split5/10/25/50/100.csv and test.csv.\n\n## Generator config\n\n```json\n"
        + json.dumps(cfg.to_dict(), indent=2) + "\n```\n", encoding="utf-8")
    write_marker(work, {"generator_version": GENERATOR_VERSION, "layout": "tau2022", "config": cfg.to_dict()})


def default_root(cfg: MobileSynthConfig) -> Path:
    """Where a generated copy of ``cfg`` is kept in the cache."""
    from harness.paths import cache_dir

    return cache_dir() / "datasets" / f"synthetic-tau2022-{cfg.key()}" / DATASET_DIRNAME


def cached_dataset(cfg: MobileSynthConfig, progress: bool = True) -> Path:
    """A copy of ``cfg`` in the cache, generated by the first caller and reused after (benchmarks)."""
    return generate_once(default_root(cfg), lambda root: generate(cfg, root, progress=progress))
