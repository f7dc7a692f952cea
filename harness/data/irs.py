"""Device impulse responses: read a folder of WAVs (any rate, any length), resample once, cache.

A device impulse response (DIR) is what a recording device does to the sound: its microphone's
frequency response (and, for a long response, some room). Without an external set the harness
generates a small deterministic bank of microphone-like EQ responses (low-frequency roll-off,
a presence peak or dip, a high-frequency roll-off; :func:`generated_irs`), so DIR augmentation
runs with no download. Real measured device responses can be given as a folder of WAVs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from harness.atomic import atomic_path
from harness.errors import DataError
from harness.paths import cache_dir

GENERATED_VERSION = 1
GENERATED_RATE = 48000  # written at 48 kHz so that every run resamples, as with real responses
GENERATED_COUNT = 8


def _response(rng: np.random.Generator, f: np.ndarray) -> np.ndarray:
    """One microphone-like magnitude response at frequencies ``f`` (Hz)."""
    f_hp = rng.uniform(100, 600)
    f_lp = rng.uniform(4000, 12000)
    centre, peak_db, width = rng.uniform(1500, 5000), rng.uniform(-6, 8), rng.uniform(0.3, 0.8)
    hp = (f / f_hp) ** 2 / (1 + (f / f_hp) ** 2)
    lp = 1 / np.sqrt(1 + (f / f_lp) ** 4)
    peak = 10 ** (peak_db / 20 * np.exp(-0.5 * (np.log2(np.maximum(f, 1) / centre) / width) ** 2))
    return hp * lp * peak


def generate_irs(folder: str | Path, count: int = GENERATED_COUNT, seed: int = 0) -> Path:
    """Write ``count`` linear-phase FIR responses (511 taps at 48 kHz) as float WAVs."""
    from scipy.signal import firwin2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    f = np.linspace(0, GENERATED_RATE / 2, 513)
    for i in range(count):
        taps = firwin2(511, f, _response(rng, f), fs=GENERATED_RATE)
        with atomic_path(folder / f"generated-mic-{i:02d}.wav") as tmp:
            sf.write(str(tmp), taps.astype(np.float32), GENERATED_RATE, subtype="FLOAT", format="WAV")
    return folder


def generated_irs() -> Path:
    """The generated bank in the cache, written on first use (concurrent callers: the first rename wins)."""
    final = cache_dir() / "irs" / f"generated-v{GENERATED_VERSION}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".generated-", dir=final.parent))
    try:
        generate_irs(tmp)
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def ir_files(folder: str | Path) -> list[Path]:
    """The WAV files under ``folder`` (recursively), sorted; a one-line error when there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError("--dir-irs: not a folder of impulse-response WAV files", folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise DataError("--dir-irs: no .wav impulse response in this folder", folder)
    return files


def ir_identity(folder: str | Path) -> str:
    """A hash of the responses' names and contents: what run ids are keyed by, not the folder's path."""
    folder = Path(folder).expanduser()
    h = hashlib.sha256()
    for path in ir_files(folder):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _read(path: Path) -> tuple[np.ndarray, int]:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise DataError(f"unreadable impulse response ({exc})", path) from exc
    if data.shape[0] == 0 or not np.isfinite(data).all() or not np.abs(data).max() > 0:
        raise DataError("impulse response is empty, silent or not finite", path)
    return data[:, 0], int(rate)  # the first channel: a device response is mono


def load_irs(folder: str | Path, sample_rate: int) -> list[np.ndarray]:
    """Every response of ``folder`` at ``sample_rate``; resampled once and cached by content."""
    folder = Path(folder).expanduser()
    cached = cache_dir() / "irs" / "resampled" / f"{ir_identity(folder)}-{int(sample_rate)}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as z:
            return [z[k] for k in sorted(z.files)]
    out = []
    for path in ir_files(folder):
        data, rate = _read(path)
        if rate != sample_rate:
            data = torchaudio.functional.resample(torch.from_numpy(data), rate, int(sample_rate)).numpy()
        out.append(data.astype(np.float32))
    with atomic_path(cached) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f"ir{i:05d}": a for i, a in enumerate(out)})
    return out


def mel_log_gains(irs: list[np.ndarray], filterbank: torch.Tensor, n_fft: int, power: float = 1.0) -> np.ndarray:
    """``(n_irs, n_mels)`` natural-log gain of each response in each mel band.

    The log-mel of a clip filtered by ``h`` is, for a response short against the analysis
    window, the clip's log-mel plus ``log(Σ_k fb[k, m] |H_k| / Σ_k fb[k, m])``: the band's
    filterbank-weighted mean magnitude gain (exact where the clip's spectrum is flat inside a
    band). ``filterbank`` is the ``(n_fft // 2 + 1, n_mels)`` mel matrix of the features; ``power``
    2 weights ``|H_k|²`` for a power mel spectrum.
    """
    fb = filterbank.double().numpy()
    weight = fb.sum(axis=0)
    gains = []
    for h in irs:
        n = n_fft * max(1, -(-len(h) // n_fft))  # a multiple of n_fft covering the whole response
        mag = np.abs(np.fft.rfft(h.astype(np.float64), n=n))[:: n // n_fft][: n_fft // 2 + 1] ** power
        band = np.where(weight > 0, (fb.T @ mag) / np.where(weight > 0, weight, 1), 1.0)
        gains.append(np.log(np.maximum(band, 1e-12)))
    return np.asarray(gains)
