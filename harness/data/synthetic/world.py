"""The synthetic world: scenes recorded in several cities at several locations, and one clip of it.

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

Same config and seed give the same samples: every draw comes from a generator keyed by the seed
and stable names (:func:`seeded`). The events' sounds are in ``sounds.py``; the folders written from
this world in ``tau2019.py`` and ``tau2022.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from harness.data.synthetic.sounds import EVENTS, Rng, complex_noise, curve, modulation, place, unit_variance
from harness.data.tau import CITIES_2019, SCENES
from harness.errors import ConfigError

#: Bumped whenever the generated audio changes, so cached default datasets are regenerated.
GENERATOR_VERSION = 2
#: Part of every seed, kept apart from the version so a bump re-keys the cache without re-drawing
#: the cities and clips the calibration numbers above were measured on.
_RNG_STREAM = 1
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
    cities: tuple[str, ...] = CITIES_2019
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


# --------------------------------------------------------------------------- world parameters


def seeded(cfg: SynthConfig, *parts: str | int) -> Rng:
    """A generator keyed by the seed and stable names (crc32), independent of list order."""
    key = [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, _RNG_STREAM, *key]))


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
    r, s = seeded(cfg, "city", city), cfg.city_shift
    z = r.standard_normal(11)
    kinds = sorted(EVENTS)
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


@lru_cache(maxsize=4)
def _location(cfg: SynthConfig, scene: str, city: str, loc_id: int) -> _Location:
    sc, ct = _SCENE_MODELS[scene], _city(cfg, city)
    s, spread, sr, n = cfg.city_shift, cfg.location_spread, cfg.sample_rate, cfg.clip_samples
    r_cs, r_loc = seeded(cfg, "city-scene", city, scene), seeded(cfg, "location", city, scene, loc_id)
    f = sfft.rfftfreq(n, 1 / sr)
    o = np.log2(np.maximum(f, 20.0) / 20.0)
    # Ambience: scene archetype + city variant of the scene + location perturbation (all in dB).
    scene_bumps = np.array([(np.log2(c / 20), w, g) for c, w, g in sc.bumps])
    cs_z = r_cs.standard_normal(len(sc.events) * 2 + 1)
    loc_z = r_loc.standard_normal(len(sc.events) * 2 + 5)
    db = curve(o, sc.tilt, scene_bumps)
    db += curve(o, s * 0.72 * cs_z[0], _random_bumps(r_cs, 3, 3.6 * s))
    db += curve(o, spread * 0.24 * loc_z[0], _random_bumps(r_loc, 3, 1.2 * spread))
    db -= 6.0 * np.maximum(0.0, o - np.log2(6000 / 20))  # natural high-frequency roll-off
    db[f < 20] = -120.0
    amp = 10 ** (db / 20)
    w_lo = 1 / (1 + np.exp((o - np.log2(sc.split_hz / 20)) / 0.3))
    amb = (unit_variance(amp * np.sqrt(w_lo), n), unit_variance(amp * np.sqrt(1 - w_lo), n))
    # Microphone EQ of the city (common) plus a small left/right mismatch.
    eq_db = curve(o, ct.eq_tilt, ct.eq_bumps) + ct.low_shelf / (1 + np.exp((o - np.log2(150 / 20)) / 0.3))
    mism_bumps, ld = ct.channel_db
    mism = curve(o, 0.0, mism_bumps)
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
    floor_amp = unit_variance(10 ** (ct.floor_tilt * (o - np.log2(1000 / 20)) / 20), n) * 10 ** (ct.floor_db / 20)
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


def synth_clip(cfg: SynthConfig, scene: str, city: str, location: int, segment: int) -> np.ndarray:
    """One clip as ``(channels, samples)`` float32 in [-1, 1], a pure function of its arguments."""
    loc = _location(cfg, scene, city, location)
    rng = seeded(cfg, "clip", city, scene, location, segment)
    n, sr, c = cfg.clip_samples, cfg.sample_rate, cfg.channels
    jitter = 10 ** ((0.3 * rng.standard_normal() * (loc.octaves - 5.6)) / 20)  # segment tilt jitter
    # Ambience: two bands, each with inter-channel coherence from the microphone spacing.
    amb = np.zeros((c, n), np.float32)
    rho = loc.coherence
    for band, depth in zip(loc.amb, loc.mod_depth):
        z = complex_noise(rng, (2, len(rho)))
        zc = np.stack([z[0], rho * z[0] + np.sqrt(1 - rho**2) * z[1]])[:c]
        mod = modulation(rng, n, sr, loc.mod_rate, depth)
        amb += sfft.irfft(zc * (band * jitter * loc.eq), n, axis=1) * mod
    # Events: Poisson onsets within the clip, panned (level + time difference), then the room.
    dry = np.zeros((c, n), np.float32)
    for kind, rate, snr, pitch in loc.events:
        count = int(rng.random() < rate) if kind in _CONTINUOUS else rng.poisson(rate * cfg.seconds)
        for _ in range(count):
            x = EVENTS[kind](rng, sr, pitch, n)
            x *= 10 ** (snr / 20) / (np.sqrt(np.mean(x**2)) + 1e-9)
            start = 0 if kind in _CONTINUOUS else int(rng.integers(-len(x) // 2, n))
            ild, itd = rng.uniform(-6, 6), int(rng.uniform(-0.0006, 0.0006) * sr)
            for ch in range(c):
                sign = 1 if ch == 0 else -1
                g = 10 ** (sign * ild / 40) if c == 2 else 1.0
                d = max(0, sign * itd)
                if start + d < 0:
                    place(dry[ch], g * x[-(start + d) :], 0)
                else:
                    place(dry[ch], g * x, start + d)
    spec = sfft.rfft(dry, axis=1) * loc.reverb * loc.eq + complex_noise(rng, (c, len(rho))) * loc.floor
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
    rng = seeded(cfg, "plan")
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
