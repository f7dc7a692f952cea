"""Synthetic acoustic scenes in the exact TAU Urban Acoustic Scenes 2019 layout.

Why: the harness must run end to end (and its tests must mean something) without the ~40 GB
TAU download, and the synthetic data must pose the paper's problem: scenes recorded in several
cities, where a classifier trained on nine cities loses accuracy on an unseen one (Milan).

Signal model (every clip, per channel, built in the FFT domain with numpy/scipy)::

    clip = level * [ m_lo(t) * ambience_lo + m_hi(t) * ambience_hi      (stationary part)
                     + reverb(events)                                   (short scene events)
                     + noise floor ]                                    (recording chain)
           all coloured by the city's microphone EQ

* **Scene** = a long-term stationary ambience with a scene-specific spectral envelope (tilt plus
  broad peaks, e.g. engine rumble in bus, a mid-frequency crowd hump in shopping_mall), split in
  two bands that are slowly and independently modulated (traffic surges, passing crowds), plus
  short scene-specific events placed as a Poisson process: bird chirps (park), car horns and
  engine pass-bys (street_traffic), door chimes, brake squeals and motor whine (metro, tram),
  PA announcements (airport, metro_station), voice babble and footsteps (street_pedestrian,
  shopping_mall, public_square), the tram bell, the bus engine's idle harmonic series, background
  music in malls, luggage wheels in airports. Each scene has its own room (reverberation time).
* **City** = a change of recording conditions and of local sound sources, every deviation drawn
  once per city and multiplied by ``city_shift`` (0 = all cities identical): microphone EQ (a
  smooth random tilt, low shelf and three peaks/dips, plus a small left/right mismatch), a
  reverberation-time factor and direct-to-reverberant ratio, the noise-floor level and colour,
  the stereo image (microphone spacing, hence inter-channel coherence, and a channel level
  offset), the event mix (rate and level of each event type) and event timbre (pitch of horns,
  bells, chimes, voices), a city-specific variant of each scene's envelope (local vehicles,
  materials) and the overall level.
* **Location** = a smaller perturbation inside a city, scaled by ``location_spread``: envelope
  tilt and peaks, level, event rates and levels, reverberation, modulation speed.
* **Segment** = a fresh draw of noise, events and modulation phases, a small tilt and level jitter.

Difficulty knobs: ``location_spread`` sets how much scenes overlap (overall accuracy), and
``city_shift`` sets how far cities, and thus the unseen Milan, drift from each other (the
seen-minus-unseen accuracy gap). Both defaults (1.0) were calibrated on the default config
(seed 0, 2,400 clips of 4 s at 16 kHz) with a proxy: 40-band log-mel (n_fft 1024, 40 ms window,
20 ms hop, both channels), per-band train normalisation, a 2-layer CNN (2->16->32, BN, ReLU,
max-pool, mean over time, linear), Adam 1e-3, batch 32, 10 epochs, CPU; mean of 2-3 seeds,
accuracy on fold1 evaluate (overall / seen cities / Milan evaluate rows / all Milan rows):

    city_shift 0.0:  78 / 78 / 79 / 77 %   (no city effect: no unseen-city gap)
    city_shift 1.0:  63 / 64 / 52 / 51 %   (default: Milan ~12 points below seen cities)
    city_shift 2.0:  62 / 65 / 29 / 27 %

Same config and seed give byte-identical files (also across worker counts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import scipy.fft as sfft
import soundfile as sf

from harness.errors import ConfigError, DataError, StorageError
from harness.paths import cache_dir

#: Bumped whenever the generated audio changes, so cached default datasets are regenerated.
GENERATOR_VERSION = 2
#: Part of every seed, kept apart from the version so a bump re-keys the cache without re-drawing
#: the cities and clips the calibration numbers above were measured on.
_RNG_STREAM = 1
DATASET_DIRNAME = "TAU-urban-acoustic-scenes-2019-development"
CITIES = ("barcelona", "helsinki", "lisbon", "london", "lyon", "milan", "paris", "prague", "stockholm", "vienna")
SCENES = (
    "airport", "bus", "metro", "metro_station", "park",
    "public_square", "shopping_mall", "street_pedestrian", "street_traffic", "tram",
)  # fmt: skip
SUBTYPES = ("PCM_16", "PCM_24")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the generated files (and the cache key of the default set)."""

    seed: int = 0
    sample_rate: int = 16000
    seconds: float = 4.0
    channels: int = 2
    subtype: str = "PCM_16"  # WAV sample format: PCM_16 or PCM_24
    locations_per_scene_city: int = 3
    segments_per_location: int = 8
    city_shift: float = 1.0  # strength of the per-city recording/source shift; 0 = none
    location_spread: float = 1.0  # within-city variation between locations (scene overlap)
    train_fraction: float = 2 / 3  # locations of a seen (scene, city) that go to fold1_train
    cities: tuple[str, ...] = CITIES
    scenes: tuple[str, ...] = SCENES
    unseen_city: str = "milan"  # only in fold1_evaluate or in no fold file

    def __post_init__(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"synthetic dataset config: {msg}")

        # Lists (e.g. from JSON) become tuples so the config stays hashable (it keys caches).
        object.__setattr__(self, "cities", tuple(self.cities))
        object.__setattr__(self, "scenes", tuple(self.scenes))
        if not 8000 <= self.sample_rate <= 192000:
            raise bad(f"sample_rate {self.sample_rate} is outside 8000..192000 Hz")
        if not 0.05 <= self.seconds <= 60:
            raise bad(f"seconds {self.seconds} is outside 0.05..60")
        if self.channels not in (1, 2):
            raise bad(f"channels must be 1 or 2, got {self.channels}")
        if self.subtype not in SUBTYPES:
            raise bad(f"subtype must be one of {', '.join(SUBTYPES)}, got {self.subtype!r}")
        if self.locations_per_scene_city < 2:
            raise bad("locations_per_scene_city must be >= 2 (one for train, one for evaluate)")
        if self.segments_per_location < 1:
            raise bad("segments_per_location must be >= 1")
        if self.city_shift < 0 or self.location_spread < 0:
            raise bad("city_shift and location_spread must be >= 0")
        if not 0 < self.train_fraction < 1:
            raise bad(f"train_fraction {self.train_fraction} is outside (0, 1)")
        unknown = [s for s in self.scenes if s not in _SCENE_MODELS]
        if unknown or not self.scenes or len(set(self.scenes)) != len(self.scenes):
            raise bad(f"scenes must be distinct names from {', '.join(SCENES)} (bad: {unknown or self.scenes})")
        if len(set(self.cities)) != len(self.cities) or any(not c.isalpha() for c in self.cities):
            raise bad(f"cities must be distinct alphabetic names, got {self.cities}")
        if self.unseen_city not in self.cities or len(self.cities) < 2:
            raise bad(f"unseen_city {self.unseen_city!r} must be one of at least two cities {self.cities}")

    @classmethod
    def tau_format(cls, **overrides: object) -> "SynthConfig":
        """The real TAU audio format: 48 kHz, 24-bit, stereo, 10 s (benchmarks, 48 kHz path)."""
        base = dict(sample_rate=48000, subtype="PCM_24", channels=2, seconds=10.0)
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]

    @property
    def clip_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["cities"], d["scenes"] = list(self.cities), list(self.scenes)
        return d

    def key(self) -> str:
        """Short hash of the config and the generator version (the cache folder name)."""
        blob = json.dumps({"v": GENERATOR_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- scene models


@dataclass(frozen=True)
class _Scene:
    """A scene archetype: ambience envelope, its modulation, room and event recipe."""

    tilt: float  # dB per octave around 1 kHz
    bumps: tuple[tuple[float, float, float], ...]  # (centre Hz, width in octaves, gain dB)
    split_hz: float  # crossover between the two independently modulated ambience bands
    mod_rate: float  # Hz of the slow level modulation
    mod_depth: tuple[float, float]  # dB, low and high band
    t60: float  # seconds
    level: float  # dBFS of the ambience before EQ
    events: tuple[tuple[str, float, float], ...]  # (kind, rate per s — or probability if continuous, SNR dB)


_SCENE_MODELS: dict[str, _Scene] = {
    "airport": _Scene(-3.0, ((150, 1.0, 4), (700, 1.5, 6), (2500, 1.0, 2)), 400, 0.15, (2, 3), 1.3, -40,
                      (("babble", 0.35, -3), ("announce", 0.08, 2), ("rolling", 0.25, -6), ("steps", 0.2, -9),
                       ("chime", 0.03, -2))),
    "bus": _Scene(-6.0, ((60, 1.0, 10), (250, 1.2, 5), (1200, 1.0, 1)), 300, 0.3, (5, 2), 0.4, -34,
                  (("idle", 0.7, -2), ("pass", 0.1, -3), ("beep", 0.05, -4), ("babble", 0.12, -8))),
    "metro": _Scene(-4.5, ((90, 1.0, 6), (450, 1.0, 7), (1500, 0.8, 2)), 700, 0.25, (6, 5), 0.5, -32,
                    (("rumble", 0.15, 0), ("squeal", 0.08, -2), ("chime", 0.05, -2), ("announce", 0.04, -1),
                     ("beep", 0.04, -4))),
    "metro_station": _Scene(-3.5, ((120, 1.2, 5), (600, 1.3, 4), (2000, 1.0, 2)), 500, 0.12, (5, 2), 1.6, -39,
                            (("rumble", 0.08, 2), ("announce", 0.1, 2), ("steps", 0.3, -7), ("babble", 0.2, -5),
                             ("squeal", 0.04, -2), ("beep", 0.03, -3))),
    "park": _Scene(-4.0, ((80, 1.2, 5), (300, 1.0, 2), (4500, 1.2, 3)), 1500, 0.1, (3, 4), 0.15, -46,
                   (("chirp", 0.5, 2), ("rustle", 0.15, -4), ("babble", 0.08, -10), ("steps", 0.08, -10))),
    "public_square": _Scene(-3.5, ((100, 1.2, 5), (500, 1.2, 4), (3000, 1.0, 1)), 600, 0.15, (3, 3), 0.3, -41,
                            (("babble", 0.3, -3), ("steps", 0.25, -7), ("chirp", 0.12, -2), ("kids", 0.08, -3),
                             ("pass", 0.05, -6), ("horn", 0.015, -3))),
    "shopping_mall": _Scene(-3.0, ((200, 1.0, 3), (800, 1.4, 6), (3000, 1.0, 2)), 450, 0.12, (2, 3), 1.0, -39,
                            (("babble", 0.45, -3), ("music", 0.5, -8), ("steps", 0.25, -8), ("clatter", 0.12, -6),
                             ("announce", 0.02, 0), ("chime", 0.02, -4))),
    "street_pedestrian": _Scene(-3.8, ((90, 1.2, 6), (550, 1.2, 4), (2500, 1.0, 1)), 600, 0.2, (4, 3), 0.25, -39,
                                (("steps", 0.5, -5), ("babble", 0.35, -4), ("pass", 0.08, -5), ("horn", 0.02, -4),
                                 ("chirp", 0.04, -5), ("rolling", 0.05, -8))),
    "street_traffic": _Scene(-4.0, ((80, 1.2, 7), (400, 1.5, 6), (1500, 1.0, 2)), 500, 0.3, (6, 4), 0.2, -33,
                             (("pass", 0.4, 2), ("horn", 0.05, 0), ("siren", 0.01, -2), ("steps", 0.05, -12))),
    "tram": _Scene(-5.0, ((75, 1.0, 7), (350, 1.0, 6), (1200, 0.8, 2)), 600, 0.25, (5, 3), 0.45, -34,
                   (("bell", 0.07, 2), ("rumble", 0.12, -2), ("squeal", 0.05, -3), ("beep", 0.04, -4),
                    ("announce", 0.03, -2), ("babble", 0.1, -8))),
}  # fmt: skip

_CONTINUOUS = frozenset({"idle", "music"})  # present for the whole clip with the given probability


# --------------------------------------------------------------------------- event synthesis
# Each event is mono float32 with RMS ~1 over its length; `p` scales its pitch (city / location
# timbre), `n_max` caps the length at the clip length.

Rng = np.random.Generator


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32) / np.float32(sr)


def _fade(x: np.ndarray, sr: int, a: float = 0.01, r: float = 0.03) -> np.ndarray:
    na, nr = max(1, min(len(x) // 2, int(a * sr))), max(1, min(len(x) // 2, int(r * sr)))
    x[:na] *= np.linspace(0, 1, na, dtype=np.float32)
    x[-nr:] *= np.linspace(1, 0, nr, dtype=np.float32)
    return x


def _harmonics(f0: np.ndarray | float, n: int, sr: int, n_harm: int, roll: float = 1.0) -> np.ndarray:
    """Sum of harmonics of a (time-varying) f0, dropping partials above 0.45 * sr."""
    f0 = np.broadcast_to(np.asarray(f0, dtype=np.float32), (n,))
    phase = np.cumsum(f0, dtype=np.float64) * (2 * np.pi / sr)
    k = np.arange(1, n_harm + 1)
    k = k[k * float(f0.max()) < 0.45 * sr]
    if k.size == 0:
        return np.zeros(n, np.float32)
    out = (np.sin(phase[None, :] * k[:, None]) / k[:, None] ** roll).sum(axis=0)
    return out.astype(np.float32)


def _band_noise(rng: Rng, n: int, sr: int, centre: float, width_oct: float) -> np.ndarray:
    """White noise shaped by a Gaussian bump on a log-frequency axis (FFT domain)."""
    m = sfft.next_fast_len(n, real=True)
    spec = sfft.rfft(rng.standard_normal(m).astype(np.float32))
    f = np.maximum(sfft.rfftfreq(m, 1 / sr), 1.0)
    spec *= np.exp(-0.5 * (np.log2(f / centre) / width_oct) ** 2).astype(np.float32)
    return sfft.irfft(spec, m)[:n].astype(np.float32)


def _arch(n: int, power: float) -> np.ndarray:
    """A rise-and-fall envelope: sin(pi t / T) ** power, safe for fractional powers."""
    return np.maximum(np.sin(np.linspace(0, np.pi, n, dtype=np.float32)), 0) ** power


def _decay(t: np.ndarray, tau: float) -> np.ndarray:
    return np.exp(-t / tau).astype(np.float32)


def _place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    """Add ``x`` into ``out`` starting at ``start`` (clip-local, truncating the tail)."""
    end = min(len(out), start + len(x))
    if end > start:
        out[start:end] += x[: end - start]


def _ev_chirp(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    notes, f0 = [], rng.uniform(2500, 4500) * p
    for _ in range(rng.integers(2, 7)):
        n = int(rng.uniform(0.04, 0.12) * sr)
        f = np.linspace(f0, f0 * rng.uniform(0.6, 1.6), n, dtype=np.float32)
        notes.append(_harmonics(f, n, sr, 2, roll=2.5) * _arch(n, 2))
        notes.append(np.zeros(int(rng.uniform(0.03, 0.12) * sr), np.float32))
    return np.concatenate(notes)[:n_max]


def _ev_horn(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n, f0 = min(n_max, int(rng.uniform(0.25, 0.8) * sr)), rng.uniform(380, 440) * p
    return _fade(_harmonics(f0, n, sr, 10) + _harmonics(f0 * 1.25, n, sr, 10), sr)


def _ev_pass(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(1.5, 3.5) * sr))
    t = _t(n, sr)
    d = n / sr
    env = np.exp(-0.5 * ((t - d * rng.uniform(0.35, 0.65)) / (d / 5)) ** 2)
    f0 = rng.uniform(60, 120) * p * np.linspace(1.05, 0.95, n, dtype=np.float32)
    x = _band_noise(rng, n, sr, rng.uniform(150, 600) * p, 1.5) + 0.5 * _band_noise(rng, n, sr, 1000 * p, 1.0)
    x /= np.std(x) + 1e-9
    return (env * (x + 0.3 * _harmonics(f0, n, sr, 8))).astype(np.float32)


def _ev_chime(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    out, f = np.zeros(min(n_max, int(1.6 * sr)), np.float32), rng.uniform(600, 900) * p
    step = int(rng.uniform(0.3, 0.4) * sr)
    for i, ratio in enumerate((1.0, 0.8, 0.667)[: rng.integers(2, 4)]):
        t = _t(int(0.8 * sr), sr)
        note = (np.sin(2 * np.pi * f * ratio * t) + 0.3 * np.sin(2 * np.pi * 2.76 * f * ratio * t)) * _decay(t, 0.35)
        _place(out, note.astype(np.float32), i * step)
    return out


def _ev_squeal(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(0.4, 1.5) * sr))
    t = _t(n, sr)
    f = rng.uniform(2500, 4500) * p * (1 + 0.015 * np.sin(2 * np.pi * rng.uniform(5, 8) * t))
    return (_harmonics(f, n, sr, 2, roll=1.7) * _arch(n, 0.5)).astype(np.float32)


def _voice(rng: Rng, sr: int, n: int, f0: float, band: tuple[float, float]) -> np.ndarray:
    """Speech-like sound: a glottal pulse train through static formants, syllable-modulated."""
    t = _t(n, sr)
    f = f0 * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 6.3)))
    phase = np.cumsum(f, dtype=np.float64) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0).astype(np.float32)
    m = sfft.next_fast_len(n, real=True)
    spec = sfft.rfft(pulses, m)
    fr = sfft.rfftfreq(m, 1 / sr)
    shape = np.zeros_like(fr)
    for centre, bw in ((rng.uniform(400, 800), 120), (rng.uniform(1100, 2000), 180), (rng.uniform(2300, 3000), 250)):
        shape += np.exp(-0.5 * ((fr - centre) / bw) ** 2)
    shape *= (fr > band[0]) & (fr < band[1])
    x = sfft.irfft(spec * shape.astype(np.float32), m)[:n].astype(np.float32)
    syl = np.abs(np.sin(np.pi * rng.uniform(3.0, 5.0) * t + rng.uniform(0, 3.1))) ** 1.5
    return x * syl.astype(np.float32)


def _ev_announce(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(1.5, 3.0) * sr))
    speech = _voice(rng, sr, n, rng.uniform(100, 220) * p, (300, 3400))
    speech /= np.std(speech) + 1e-9
    if rng.random() < 0.5:  # a two-tone "ding" before the announcement
        ding = _ev_chime(rng, sr, p * 1.3, n_max)[: int(0.7 * sr)]
        speech = np.concatenate([ding / (np.std(ding) + 1e-9), speech])[:n_max]
    return speech


def _babble(rng: Rng, sr: int, p: float, n_max: int, f0_range: tuple[float, float]) -> np.ndarray:
    out = np.zeros(min(n_max, int(rng.uniform(1.5, 3.0) * sr)), np.float32)
    for _ in range(rng.integers(3, 7)):
        n = min(len(out), int(rng.uniform(0.6, 2.0) * sr))
        v = _voice(rng, sr, n, rng.uniform(*f0_range) * p, (150, 5000))
        _place(out, v / (np.std(v) + 1e-9) * rng.uniform(0.3, 1.0), int(rng.integers(0, len(out) - n + 1)))
    return out


def _ev_babble(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    return _babble(rng, sr, p, n_max, (90, 240))


def _ev_kids(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    return _babble(rng, sr, p, n_max, (250, 420))


def _ev_steps(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    gap, k = rng.uniform(0.45, 0.6), rng.integers(3, 10)
    out = np.zeros(min(n_max, int((k * gap + 0.1) * sr)), np.float32)
    t = _t(int(0.05 * sr), sr)
    for i in range(k):
        click = _band_noise(rng, len(t), sr, 1500 * p, 1.5) * _decay(t, 0.008)
        thump = np.sin(2 * np.pi * rng.uniform(80, 150) * t) * _decay(t, 0.015)
        _place(out, (click / (np.abs(click).max() + 1e-9) + thump) * (1.0 if i % 2 else 0.7), int(i * gap * sr))
    return out


def _ev_bell(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    f, gap, k = rng.uniform(800, 1200) * p, rng.uniform(0.18, 0.3), rng.integers(2, 5)
    out = np.zeros(min(n_max, int((k * gap + 0.9) * sr)), np.float32)
    t = _t(int(0.9 * sr), sr)
    strike = sum(a * np.sin(2 * np.pi * f * r * t) * _decay(t, tau)
                 for r, a, tau in ((1, 1, 0.6), (2.01, 0.6, 0.4), (2.74, 0.4, 0.3), (5.3, 0.2, 0.15))
                 if f * r < 0.45 * sr)  # fmt: skip
    for i in range(k):
        _place(out, np.asarray(strike, np.float32), int(i * gap * sr))
    return out


def _ev_idle(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    t = _t(n_max, sr)
    f0 = rng.uniform(28, 45) * p * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t))
    am = 1 + 0.15 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)
    return (_harmonics(f0, n_max, sr, 20, roll=0.7) * am).astype(np.float32)


def _ev_rumble(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(2.0, 4.0) * sr))
    x = _band_noise(rng, n, sr, 120 * p, 1.2)
    x /= np.std(x) + 1e-9
    env = _arch(n, 1.5)
    f = rng.uniform(400, 900) * p * (1 + 0.5 * np.sin(np.linspace(0, np.pi, n, dtype=np.float32)))
    return (env * (x + 0.4 * _harmonics(f, n, sr, 3))).astype(np.float32)


def _ev_beep(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    f, k, on = rng.uniform(1800, 3000) * p, rng.integers(3, 7), int(0.1 * sr)
    out = np.zeros(min(n_max, 2 * k * on), np.float32)
    tone = _fade(_harmonics(f, on, sr, 5, roll=1.0), sr, 0.005, 0.005)
    for i in range(k):
        _place(out, tone, 2 * i * on)
    return out


def _ev_rolling(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(1.0, 3.0) * sr))
    t = _t(n, sr)
    am = 1 - 0.6 * (np.sin(np.pi * rng.uniform(8, 16) * t) ** 2)
    return _fade(_band_noise(rng, n, sr, rng.uniform(1500, 3000) * p, 1.0) * am, sr, 0.2, 0.2)


def _ev_music(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    out, root, pos = np.zeros(n_max, np.float32), rng.uniform(110, 220) * p, 0
    scale = np.array([1, 9 / 8, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 15 / 8, 2])
    while pos < n_max:
        n = int(rng.uniform(0.5, 1.0) * sr)
        chord = root * scale[rng.choice(8, 3, replace=False)]
        _place(out, _fade(sum(_harmonics(f, n, sr, 4, roll=2.0) for f in chord), sr, 0.05, 0.1), pos)
        pos += n
    return out


def _ev_siren(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(2.0, 4.0) * sr))
    t = _t(n, sr)
    f = p * (750 + 300 * np.sin(2 * np.pi * rng.uniform(0.3, 0.6) * t))
    return _fade(_harmonics(f, n, sr, 3), sr, 0.3, 0.3)


def _ev_clatter(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    out = np.zeros(min(n_max, int(1.0 * sr)), np.float32)
    t = _t(int(0.08 * sr), sr)
    for _ in range(rng.integers(3, 7)):
        hit = np.sin(2 * np.pi * rng.uniform(1500, 5000) * p * t) * _decay(t, 0.02)
        _place(out, hit.astype(np.float32), int(rng.integers(0, max(1, len(out) - len(t)))))
    return out


def _ev_rustle(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(1.0, 3.0) * sr))
    env = _arch(n, 2)
    return _band_noise(rng, n, sr, rng.uniform(3000, 6000) * p, 1.5) * env


_EVENTS: dict[str, Callable[[Rng, int, float, int], np.ndarray]] = {
    "announce": _ev_announce, "babble": _ev_babble, "beep": _ev_beep, "bell": _ev_bell, "chime": _ev_chime,
    "chirp": _ev_chirp, "clatter": _ev_clatter, "horn": _ev_horn, "idle": _ev_idle, "kids": _ev_kids,
    "music": _ev_music, "pass": _ev_pass, "rolling": _ev_rolling, "rumble": _ev_rumble, "rustle": _ev_rustle,
    "siren": _ev_siren, "squeal": _ev_squeal, "steps": _ev_steps,
}  # fmt: skip


# --------------------------------------------------------------------------- world parameters


def _rng(cfg: SynthConfig, *parts: str | int) -> Rng:
    """A generator keyed by the seed and stable names (crc32), independent of list order."""
    key = [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, _RNG_STREAM, *key]))


def _curve(o: np.ndarray, tilt: float, bumps: np.ndarray) -> np.ndarray:
    """dB curve on an octave axis (0 = 20 Hz): tilt around 1 kHz plus Gaussian bumps (c, w, g)."""
    db = tilt * (o - np.log2(1000 / 20))
    for c, w, g in bumps:
        db = db + g * np.exp(-0.5 * ((o - c) / w) ** 2)
    return db


def _random_bumps(rng: Rng, n: int, gain_sd: float) -> np.ndarray:
    """``n`` bumps on the 80 Hz..12 kHz octave range, unit-free gains scaled by ``gain_sd``."""
    c = rng.uniform(2.0, 9.2, n)
    w = rng.uniform(0.4, 1.2, n)
    return np.stack([c, w, rng.standard_normal(n) * gain_sd], axis=1)


@dataclass(frozen=True)
class _City:
    eq_tilt: float
    eq_bumps: np.ndarray
    low_shelf: float  # dB below ~150 Hz
    channel_db: tuple[np.ndarray, float]  # (L/R mismatch bumps, level difference dB)
    t60_factor: float
    drr_db: float
    floor_db: float
    floor_tilt: float
    mic_spacing: float  # m
    level_db: float
    mod_factor: float
    event_rate: dict[str, float]
    event_snr: dict[str, float]
    event_pitch: dict[str, float]


def _city(cfg: SynthConfig, city: str) -> _City:
    """Recording conditions of a city: unit draws (fixed by the seed) times ``city_shift``."""
    r, s = _rng(cfg, "city", city), cfg.city_shift
    z = r.standard_normal(11)
    kinds = sorted(_EVENTS)
    ev = r.standard_normal((3, len(kinds)))
    return _City(
        eq_tilt=s * 0.72 * z[0],
        eq_bumps=_random_bumps(r, 3, 3.15 * s),
        low_shelf=s * 2.7 * z[1],
        channel_db=(_random_bumps(r, 2, 0.9 * s), s * 0.9 * z[2]),
        t60_factor=float(np.exp(s * 0.315 * z[3])),
        drr_db=s * 2.7 * z[4],
        floor_db=float(np.clip(-42 + s * 5.4 * z[5], -70, -15)),
        floor_tilt=-1.0 + s * 1.8 * z[6],
        mic_spacing=0.17 * float(np.exp(s * 0.36 * z[7])),
        level_db=s * 1.8 * z[8],
        mod_factor=float(np.exp(s * 0.27 * z[9])),
        event_rate={k: float(np.exp(s * 0.36 * ev[0, i])) for i, k in enumerate(kinds)},
        event_snr={k: s * 2.25 * ev[1, i] for i, k in enumerate(kinds)},
        event_pitch={k: float(np.exp(s * 0.072 * ev[2, i])) for i, k in enumerate(kinds)},
    )


@dataclass
class _Location:
    """Everything shared by the segments of one recording location, on the clip's FFT grid."""

    octaves: np.ndarray  # octave position of each rfft bin
    amb: tuple[np.ndarray, np.ndarray]  # low/high band amplitude, normalised to unit variance
    eq: np.ndarray  # (channels, bins) linear amplitude: city EQ incl. channel mismatch
    reverb: np.ndarray  # (channels, bins) complex transfer function of the room
    floor: np.ndarray  # (bins,) noise-floor amplitude
    coherence: np.ndarray  # (bins,) inter-channel coherence of the ambience
    mod_rate: float
    mod_depth: tuple[float, float]
    level_db: float
    events: tuple[tuple[str, float, float, float], ...]  # (kind, rate, snr dB, pitch factor)


def _unit_variance(amp: np.ndarray, n: int) -> np.ndarray:
    """Scale an rfft amplitude so irfft(amp * complex unit noise) has variance 1."""
    return amp * (n / (2.0 * np.sqrt(np.sum(amp**2)) + 1e-12))


@lru_cache(maxsize=4)
def _location(cfg: SynthConfig, scene: str, city: str, loc_id: int) -> _Location:
    sc, ct = _SCENE_MODELS[scene], _city(cfg, city)
    s, spread, sr, n = cfg.city_shift, cfg.location_spread, cfg.sample_rate, cfg.clip_samples
    r_cs, r_loc = _rng(cfg, "city-scene", city, scene), _rng(cfg, "location", city, scene, loc_id)
    f = sfft.rfftfreq(n, 1 / sr)
    o = np.log2(np.maximum(f, 20.0) / 20.0)
    # Ambience: scene archetype + city variant of the scene + location perturbation (all in dB).
    scene_bumps = np.array([(np.log2(c / 20), w, g) for c, w, g in sc.bumps])
    cs_z = r_cs.standard_normal(len(sc.events) * 2 + 1)
    loc_z = r_loc.standard_normal(len(sc.events) * 2 + 5)
    db = _curve(o, sc.tilt, scene_bumps)
    db += _curve(o, s * 0.72 * cs_z[0], _random_bumps(r_cs, 3, 3.6 * s))
    db += _curve(o, spread * 0.24 * loc_z[0], _random_bumps(r_loc, 3, 1.2 * spread))
    db -= 6.0 * np.maximum(0.0, o - np.log2(6000 / 20))  # natural high-frequency roll-off
    db[f < 20] = -120.0
    amp = 10 ** (db / 20)
    w_lo = 1 / (1 + np.exp((o - np.log2(sc.split_hz / 20)) / 0.3))
    amb = (_unit_variance(amp * np.sqrt(w_lo), n), _unit_variance(amp * np.sqrt(1 - w_lo), n))
    # Microphone EQ of the city (common) plus a small left/right mismatch.
    eq_db = _curve(o, ct.eq_tilt, ct.eq_bumps) + ct.low_shelf / (1 + np.exp((o - np.log2(150 / 20)) / 0.3))
    mism_bumps, ld = ct.channel_db
    mism = _curve(o, 0.0, mism_bumps)
    eq = np.stack([eq_db + mism / 2 + ld / 2, eq_db - mism / 2 - ld / 2])[: cfg.channels]
    # Room: exponentially decaying noise tail behind a direct path, one tail per channel.
    t60 = sc.t60 * ct.t60_factor * float(np.exp(spread * 0.12 * loc_z[1]))
    drr = 10 ** ((3.0 + ct.drr_db + spread * 0.9 * loc_z[2]) / 20)
    m = min(n, int(1.2 * t60 * sr))
    t = np.arange(m) / sr
    tails = r_loc.standard_normal((cfg.channels, m)) * np.exp(-6.91 * t / t60)
    tails /= np.sqrt(np.sum(tails**2, axis=1, keepdims=True)) + 1e-12
    ir = tails / drr
    ir[:, 0] += 1.0
    reverb = sfft.rfft(ir, n, axis=1).astype(np.complex64)
    floor_amp = _unit_variance(10 ** (ct.floor_tilt * (o - np.log2(1000 / 20)) / 20), n) * 10 ** (ct.floor_db / 20)
    coherence = np.sinc(2 * f * ct.mic_spacing / 343.0)
    events = []
    for i, (kind, rate, snr) in enumerate(sc.events):
        rate_f = ct.event_rate[kind] * np.exp(s * 0.27 * cs_z[1 + i] + spread * 0.24 * loc_z[3 + i])
        snr_d = ct.event_snr[kind] + s * 1.35 * cs_z[1 + len(sc.events) + i] + spread * 1.2 * loc_z[3 + len(sc.events) + i]
        pitch = ct.event_pitch[kind] * np.exp(spread * 0.018 * r_loc.standard_normal())
        events.append((kind, float(rate * rate_f), float(snr + snr_d), float(pitch)))
    return _Location(
        octaves=o.astype(np.float32),
        amb=(amb[0].astype(np.float32), amb[1].astype(np.float32)),
        eq=(10 ** (eq / 20)).astype(np.float32),
        reverb=reverb,
        floor=floor_amp.astype(np.float32),
        coherence=coherence.astype(np.float32),
        mod_rate=sc.mod_rate * ct.mod_factor * float(np.exp(spread * 0.18 * loc_z[-1])),
        mod_depth=(sc.mod_depth[0] * ct.mod_factor, sc.mod_depth[1] * ct.mod_factor),
        level_db=sc.level + ct.level_db + spread * 1.8 * loc_z[-2],
        events=tuple(events),
    )


# --------------------------------------------------------------------------- one clip


def _complex_noise(rng: Rng, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal((*shape, 2), dtype=np.float32).view(np.complex64)[..., 0]


def _modulation(rng: Rng, n: int, sr: int, rate: float, depth_db: float) -> np.ndarray:
    """Slow random level modulation: three sinusoids near ``rate`` Hz, ``depth_db`` dB peak-ish."""
    t = _t(n, sr)
    m = sum(np.sin(2 * np.pi * rate * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    return (10 ** (depth_db * m / 3 / 20)).astype(np.float32)


def synth_clip(cfg: SynthConfig, scene: str, city: str, location: int, segment: int) -> np.ndarray:
    """One clip as ``(channels, samples)`` float32 in [-1, 1], a pure function of its arguments."""
    loc = _location(cfg, scene, city, location)
    rng = _rng(cfg, "clip", city, scene, location, segment)
    n, sr, c = cfg.clip_samples, cfg.sample_rate, cfg.channels
    jitter = 10 ** ((0.3 * rng.standard_normal() * (loc.octaves - 5.6)) / 20)  # segment tilt jitter
    # Ambience: two bands, each with inter-channel coherence from the microphone spacing.
    amb = np.zeros((c, n), np.float32)
    rho = loc.coherence
    for band, depth in zip(loc.amb, loc.mod_depth):
        z = _complex_noise(rng, (2, len(rho)))
        zc = np.stack([z[0], rho * z[0] + np.sqrt(1 - rho**2) * z[1]])[:c]
        mod = _modulation(rng, n, sr, loc.mod_rate, depth)
        amb += sfft.irfft(zc * (band * jitter * loc.eq), n, axis=1) * mod
    # Events: Poisson onsets within the clip, panned (level + time difference), then the room.
    dry = np.zeros((c, n), np.float32)
    for kind, rate, snr, pitch in loc.events:
        count = int(rng.random() < rate) if kind in _CONTINUOUS else rng.poisson(rate * cfg.seconds)
        for _ in range(count):
            x = _EVENTS[kind](rng, sr, pitch, n)
            x *= 10 ** (snr / 20) / (np.sqrt(np.mean(x**2)) + 1e-9)
            start = 0 if kind in _CONTINUOUS else int(rng.integers(-len(x) // 2, n))
            ild, itd = rng.uniform(-6, 6), int(rng.uniform(-0.0006, 0.0006) * sr)
            for ch in range(c):
                sign = 1 if ch == 0 else -1
                g = 10 ** (sign * ild / 40) if c == 2 else 1.0
                d = max(0, sign * itd)
                if start + d < 0:
                    _place(dry[ch], g * x[-(start + d) :], 0)
                else:
                    _place(dry[ch], g * x, start + d)
    spec = sfft.rfft(dry, axis=1) * loc.reverb * loc.eq + _complex_noise(rng, (c, len(rho))) * loc.floor
    level = 10 ** ((loc.level_db + rng.standard_normal()) / 20)
    return np.clip((amb + sfft.irfft(spec, n, axis=1)) * level, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- dataset plan


@dataclass(frozen=True)
class ClipSpec:
    """One row of meta.csv."""

    scene: str
    city: str
    location: int
    segment: int
    fold: str  # train, evaluate or unused

    @property
    def filename(self) -> str:
        return f"audio/{self.scene}-{self.city}-{self.location}-{self.segment}-a.wav"

    @property
    def identifier(self) -> str:
        return f"{self.city}-{self.location}"


def plan(cfg: SynthConfig) -> list[ClipSpec]:
    """All clips in generation order (grouped by location), with TAU-style location splits.

    Per (scene, city) whole locations go to train (about ``train_fraction``) or evaluate; the
    unseen city's locations go to evaluate (the same share) or to no fold at all ("unused").
    Location ids are unique dataset-wide, segment ids too, as in TAU 2019.
    """
    rng = _rng(cfg, "plan")
    n_loc = cfg.locations_per_scene_city
    groups = [(sc, ct) for sc in cfg.scenes for ct in cfg.cities]
    loc_ids = np.sort(rng.choice(int(len(groups) * n_loc * 2.4), len(groups) * n_loc, replace=False))
    n_eval = max(1, min(n_loc - 1, round(n_loc * (1 - cfg.train_fraction))))
    clips, seg = [], 0
    for g, (scene, city) in enumerate(groups):
        order = rng.permutation(n_loc)
        for j in range(n_loc):
            if order[j] < n_eval:
                fold = "evaluate"
            else:
                fold = "unused" if city == cfg.unseen_city else "train"
            for _ in range(cfg.segments_per_location):
                clips.append(ClipSpec(scene, city, int(loc_ids[g * n_loc + j]), seg, fold))
                seg += 1
    return clips


# --------------------------------------------------------------------------- writing


def _write_chunk(args: tuple[SynthConfig, str, list[ClipSpec]]) -> int:
    cfg, root, clips = args
    for clip in clips:
        audio = synth_clip(cfg, clip.scene, clip.city, clip.location, clip.segment)
        _write_wav(Path(root) / clip.filename, audio, cfg)
    return len(clips)


def _write_wav(path: Path, audio: np.ndarray, cfg: SynthConfig) -> None:
    buf = io.BytesIO()  # encoded in memory: a refused write is then an OSError naming the file
    sf.write(buf, audio.T, cfg.sample_rate, subtype=cfg.subtype, format="WAV")
    path.write_bytes(buf.getvalue())


def _tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        f.writelines("\t".join(r) + "\n" for r in rows)


def _readme(cfg: SynthConfig, clips: list[ClipSpec]) -> str:
    folds = {k: sum(c.fold == k for c in clips) for k in ("train", "evaluate", "unused")}
    unseen = sum(c.city == cfg.unseen_city and c.fold == "evaluate" for c in clips)
    return (
        "# SYNTHETIC DATASET IN TAU URBAN ACOUSTIC SCENES 2019 LAYOUT — NOT REAL RECORDINGS\n\n"
        f"Generated by `harness.data.synth` (generator version {GENERATOR_VERSION}) with seed {cfg.seed}.\n"
        f"{len(clips)} clips of {cfg.seconds} s, {cfg.sample_rate} Hz, {cfg.subtype}, {cfg.channels} channel(s); "
        f"fold1: {folds['train']} train, {folds['evaluate']} evaluate ({unseen} from the unseen city "
        f"{cfg.unseen_city}), {folds['unused']} {cfg.unseen_city} clips in no fold file.\n\n"
        "Each scene is a stationary ambience with a scene-specific spectrum and slow modulation plus\n"
        "short scene-specific events; each city shifts the recording conditions (microphone EQ,\n"
        "reverberation, noise floor, stereo image, event mix and timbre) by `city_shift`.\n"
        "See the docstring of `harness/data/synth.py` for the full signal model.\n\n"
        "## Generator config\n\n```json\n" + json.dumps(cfg.to_dict(), indent=2) + "\n```\n"
    )


def _write_metadata(cfg: SynthConfig, root: Path, clips: list[ClipSpec]) -> None:
    rows = [[c.filename, c.scene, c.identifier, "a"] for c in clips]
    order = _rng(cfg, "meta-order").permutation(len(rows))  # TAU's meta.csv is not sorted
    _tsv(root / "meta.csv", ["filename", "scene_label", "identifier", "source_label"], [rows[i] for i in order])
    setup = root / "evaluation_setup"
    setup.mkdir()
    train = sorted((c.filename, c.scene) for c in clips if c.fold == "train")
    evaluate = sorted((c.filename, c.scene) for c in clips if c.fold == "evaluate")
    _tsv(setup / "fold1_train.csv", ["filename", "scene_label"], [list(r) for r in train])
    _tsv(setup / "fold1_evaluate.csv", ["filename", "scene_label"], [list(r) for r in evaluate])
    _tsv(setup / "fold1_test.csv", ["filename"], [[f] for f, _ in evaluate])
    (root / "README.md").write_text(_readme(cfg, clips), encoding="utf-8")
    write_marker(cfg, root)


def write_marker(cfg: SynthConfig, root: Path) -> None:
    """``synthetic.json``: marks the folder as generated (the ``synthetic`` dataset plugin detects it)."""
    from harness.atomic import write_json
    from harness.data.tau import SYNTHETIC_MARKER

    write_json(root / SYNTHETIC_MARKER, {"generator_version": GENERATOR_VERSION, "config": cfg.to_dict()})


def _workers(requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # not Linux
        return max(1, min(8, os.cpu_count() or 1))


def _partial_dir(root: Path) -> Path:
    """Sibling work folder; the pid keeps concurrent generators apart. Never looks complete."""
    return root.with_name(f"{root.name}.partial-{os.getpid()}")


def _non_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def generate(
    cfg: SynthConfig,
    root: str | Path,
    progress: bool = True,
    overwrite: bool = False,
    workers: int | None = None,
) -> Path:
    """Write the dataset to ``root`` atomically and return ``root``.

    Files are written into ``<root>.partial-<pid>`` and renamed into place at the end, so an
    interrupted run never leaves a complete-looking ``root``. An existing non-empty ``root`` is
    refused unless ``overwrite``. ``workers`` processes (default: the usable cores) share the work.
    """
    return write_folder(root, lambda work: _fill(cfg, work, progress, workers), overwrite)


def write_folder(root: str | Path, fill: Callable[[Path], None], overwrite: bool = False) -> Path:
    """``fill(work)`` a sibling work folder, then rename it to ``root``: all or nothing (see :func:`generate`)."""
    root = Path(root).expanduser()
    if _non_empty(root) and not overwrite:
        raise ConfigError("output folder exists and is not empty (pass overwrite=True / --overwrite)", root)
    work = _partial_dir(root)
    try:
        if work.exists():
            shutil.rmtree(work)
        fill(work)
        _publish(work, root, overwrite)
    except OSError as exc:  # a folder that cannot be written: one line naming it, nothing left
        raise StorageError.from_os(exc, root, "cannot write the synthetic dataset") from exc
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return root


def _fill(cfg: SynthConfig, work: Path, progress: bool, workers: int | None) -> None:
    from harness.progress import progress as progress_bar

    clips = plan(cfg)
    (work / "audio").mkdir(parents=True)
    n_workers = min(_workers(workers), max(1, len(clips) // 8))
    chunk = max(1, min(32, len(clips) // (n_workers * 4) or 1))
    jobs = [(cfg, str(work), clips[i : i + chunk]) for i in range(0, len(clips), chunk)]
    bar = progress_bar(total=len(clips), desc="synthesising clips", unit="clip", enabled=progress)
    with bar:
        if n_workers == 1 or "fork" not in mp.get_all_start_methods():
            for job in jobs:
                bar.update(_write_chunk(job))
        else:
            # fork: workers inherit the imported module; nothing here uses threads or torch.
            with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("fork")) as pool:
                for done in pool.map(_write_chunk, jobs):
                    bar.update(done)
    _write_metadata(cfg, work, clips)


def _publish(work: Path, root: Path, overwrite: bool) -> None:
    """Rename the finished folder into place (replacing an old one only when ``overwrite``)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    old = root.with_name(f"{root.name}.old-{os.getpid()}")
    if overwrite and root.exists():
        os.rename(root, old)
    try:
        os.rename(work, root)  # atomic; fails if another process already put a non-empty root there
    except OSError as exc:
        if old.exists():
            os.rename(old, root)
        raise DataError(f"could not move the generated dataset into place ({exc.strerror})", root) from exc
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the default dataset


def default_config() -> SynthConfig:
    """The embedded default dataset (calibrated: see the module docstring)."""
    return SynthConfig()


def default_root(cfg: SynthConfig | None = None) -> Path:
    cfg = cfg or default_config()
    return cache_dir() / "datasets" / f"synthetic-{cfg.key()}" / DATASET_DIRNAME


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An advisory inter-process lock; a no-op where flock is unavailable (rename still decides)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")
    except OSError as exc:
        raise StorageError.from_os(exc, path.parent, "cannot write the synthetic dataset") from exc
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_stale_partials(root: Path) -> None:
    """Delete work folders of generators that died (their pid no longer runs on this host)."""
    for p in root.parent.glob(f"{root.name}.partial-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


def default_dataset(progress: bool = True, cfg: SynthConfig | None = None) -> Path:
    """The default synthetic dataset, generated into the cache on first use and reused after.

    Concurrent callers queue on a lock file; should locking not work (e.g. some network file
    systems) each generates into its own partial folder and the first rename wins.
    """
    root = default_root(cfg)
    if (root / "meta.csv").is_file():
        from harness.data.tau import SYNTHETIC_MARKER

        if not (root / SYNTHETIC_MARKER).is_file():  # generated before the marker existed
            write_marker(cfg or default_config(), root)
        return root
    with _lock(root.parent / ".lock"):
        if (root / "meta.csv").is_file():
            return root
        _remove_stale_partials(root)
        try:
            generate(cfg or default_config(), root, progress=progress)
        except (ConfigError, DataError):
            if (root / "meta.csv").is_file():  # another process won the race
                return root
            raise
    return root
