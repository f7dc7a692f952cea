"""Sound primitives of the synthetic scenes: scene events and the spectral shapes they are built from.

Why its own module: the world (``world.py``) decides which events a scene has, how often, how
loud and at what pitch; this module only knows how each event sounds. Each event is mono
float32 with RMS ~1 over its length; ``p`` scales its pitch (city / location timbre), ``n_max``
caps the length at the clip length. Everything is a pure function of its random generator, so
the same seed gives the same samples.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.fft as sfft

Rng = np.random.Generator


# --------------------------------------------------------------------------- events


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


def place(out: np.ndarray, x: np.ndarray, start: int) -> None:
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
        place(out, note.astype(np.float32), i * step)
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
        place(out, v / (np.std(v) + 1e-9) * rng.uniform(0.3, 1.0), int(rng.integers(0, len(out) - n + 1)))
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
        place(out, (click / (np.abs(click).max() + 1e-9) + thump) * (1.0 if i % 2 else 0.7), int(i * gap * sr))
    return out


def _ev_bell(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    f, gap, k = rng.uniform(800, 1200) * p, rng.uniform(0.18, 0.3), rng.integers(2, 5)
    out = np.zeros(min(n_max, int((k * gap + 0.9) * sr)), np.float32)
    t = _t(int(0.9 * sr), sr)
    strike = sum(a * np.sin(2 * np.pi * f * r * t) * _decay(t, tau)
                 for r, a, tau in ((1, 1, 0.6), (2.01, 0.6, 0.4), (2.74, 0.4, 0.3), (5.3, 0.2, 0.15))
                 if f * r < 0.45 * sr)  # fmt: skip
    for i in range(k):
        place(out, np.asarray(strike, np.float32), int(i * gap * sr))
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
        place(out, tone, 2 * i * on)
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
        place(out, _fade(sum(_harmonics(f, n, sr, 4, roll=2.0) for f in chord), sr, 0.05, 0.1), pos)
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
        place(out, hit.astype(np.float32), int(rng.integers(0, max(1, len(out) - len(t)))))
    return out


def _ev_rustle(rng: Rng, sr: int, p: float, n_max: int) -> np.ndarray:
    n = min(n_max, int(rng.uniform(1.0, 3.0) * sr))
    env = _arch(n, 2)
    return _band_noise(rng, n, sr, rng.uniform(3000, 6000) * p, 1.5) * env


#: Event kind -> ``fn(rng, sample_rate, pitch, n_max)``: what a scene model names in its recipe.
EVENTS: dict[str, Callable[[Rng, int, float, int], np.ndarray]] = {
    "announce": _ev_announce, "babble": _ev_babble, "beep": _ev_beep, "bell": _ev_bell, "chime": _ev_chime,
    "chirp": _ev_chirp, "clatter": _ev_clatter, "horn": _ev_horn, "idle": _ev_idle, "kids": _ev_kids,
    "music": _ev_music, "pass": _ev_pass, "rolling": _ev_rolling, "rumble": _ev_rumble, "rustle": _ev_rustle,
    "siren": _ev_siren, "squeal": _ev_squeal, "steps": _ev_steps,
}  # fmt: skip


# --------------------------------------------------------------------------- spectral shapes


def curve(o: np.ndarray, tilt: float, bumps: np.ndarray) -> np.ndarray:
    """dB curve on an octave axis (0 = 20 Hz): tilt around 1 kHz plus Gaussian bumps (c, w, g)."""
    db = tilt * (o - np.log2(1000 / 20))
    for c, w, g in bumps:
        db = db + g * np.exp(-0.5 * ((o - c) / w) ** 2)
    return db


def unit_variance(amp: np.ndarray, n: int) -> np.ndarray:
    """Scale an rfft amplitude so irfft(amp * complex unit noise) has variance 1."""
    return amp * (n / (2.0 * np.sqrt(np.sum(amp**2)) + 1e-12))


def complex_noise(rng: Rng, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal((*shape, 2), dtype=np.float32).view(np.complex64)[..., 0]


def modulation(rng: Rng, n: int, sr: int, rate: float, depth_db: float) -> np.ndarray:
    """Slow random level modulation: three sinusoids near ``rate`` Hz, ``depth_db`` dB peak-ish."""
    t = _t(n, sr)
    m = sum(np.sin(2 * np.pi * rate * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    return (10 ** (depth_db * m / 3 / 20)).astype(np.float32)

