"""Log-mel features as in the DCASE 2019 Task 1 baseline, with both channels kept.

Settings follow the baseline (40 ms Hamming window, 20 ms hop, magnitude spectrum, natural
log of mel + eps, the first ``samples // hop`` frames of a centred STFT: 40 x 500 at 48 kHz),
and the values equal ``torchaudio.transforms.MelSpectrogram(power=1.0)`` with those settings.
The computation is reorganised for speed on a CPU (see :class:`LogMelExtractor`).

The mel filterbank is torchaudio's default (HTK mel formula, no area normalisation). The
baseline's librosa filterbank is Slaney-style; per-band normalisation removes the difference
in scale, not the slightly different band centres.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torchaudio

from harness.errors import ConfigError

WINDOWS = {"hamming": torch.hamming_window, "hann": torch.hann_window}
STORAGE_DTYPES = ("float16", "float32")
MIN_STD = 1e-5  # floor for band_stats: a constant band (digital silence) must not divide by zero


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that changes the stored features; part of the cache key and of run records."""

    n_mels: int = 40
    win_ms: float = 40.0
    hop_ms: float = 20.0
    n_fft: int | None = None  # None: next power of two >= window (2048 at 48 kHz)
    f_min: float = 0.0
    f_max: float | None = None  # None: Nyquist
    window: str = "hamming"
    log_eps: float = 1e-8
    dtype: str = "float16"  # storage type of the cache
    # Added later; left out of ``to_dict`` (the cache key) at their defaults, so caches made
    # before they existed stay valid.
    sample_rate: int | None = None  # resample to this rate first (torchaudio); None: the data's own
    mono: bool = False  # average the channels into one
    power: float = 1.0  # 1: magnitude mel spectrum (DCASE 2019 baseline); 2: power (DCASE 2024)
    keep_last_frame: bool = False  # keep all samples // hop + 1 centred frames instead of dropping the last

    def __post_init__(self) -> None:
        if int(self.n_mels) != self.n_mels or self.n_mels < 1:
            raise ConfigError(f"n_mels must be a positive integer, got {self.n_mels!r}")
        if not (self.win_ms > 0 and self.hop_ms > 0):
            raise ConfigError(f"win_ms and hop_ms must be > 0, got {self.win_ms!r} and {self.hop_ms!r}")
        if self.window not in WINDOWS:
            raise ConfigError(f"window must be one of {', '.join(WINDOWS)}, got {self.window!r}")
        if self.dtype not in STORAGE_DTYPES:
            raise ConfigError(f"feature dtype must be one of {', '.join(STORAGE_DTYPES)}, got {self.dtype!r}")
        if not self.log_eps > 0:
            raise ConfigError(f"log_eps must be > 0, got {self.log_eps!r}")
        if self.f_min < 0 or (self.f_max is not None and self.f_max <= self.f_min):
            raise ConfigError(f"need 0 <= f_min < f_max, got f_min={self.f_min!r}, f_max={self.f_max!r}")
        if self.sample_rate is not None and (int(self.sample_rate) != self.sample_rate or self.sample_rate < 1):
            raise ConfigError(f"feature sample_rate must be a positive integer, got {self.sample_rate!r}")
        if self.power not in (1.0, 2.0):
            raise ConfigError(f"feature power must be 1 (magnitude) or 2 (power), got {self.power!r}")

    def rate(self, sample_rate: int) -> int:
        """The rate the STFT runs at: ``sample_rate`` of the config, else the data's."""
        return int(self.sample_rate or sample_rate)

    def samples(self, sample_rate: int, clip_samples: int) -> int:
        """Samples of a clip after resampling (torchaudio's resample keeps ceil(n * new / old))."""
        return -(-clip_samples * self.rate(sample_rate) // sample_rate)

    def channels(self, channels: int) -> int:
        return 1 if self.mono else int(channels)

    def win_length(self, sample_rate: int) -> int:
        return int(round(sample_rate * self.win_ms / 1000.0))

    def hop_length(self, sample_rate: int) -> int:
        return int(round(sample_rate * self.hop_ms / 1000.0))

    def fft_size(self, sample_rate: int) -> int:
        """``n_fft``, else the next power of two >= the window length."""
        win = self.win_length(sample_rate)
        if self.n_fft is None:
            return 1 << (win - 1).bit_length()
        if self.n_fft < win:
            raise ConfigError(f"n_fft={self.n_fft} is shorter than the {win}-sample window at {sample_rate} Hz")
        return int(self.n_fft)

    def n_frames(self, sample_rate: int, clip_samples: int) -> int:
        """A centred STFT gives ``samples // hop + 1`` frames; keep the first ``samples // hop`` (or all)."""
        rate = self.rate(sample_rate)
        frames = self.samples(sample_rate, clip_samples) // self.hop_length(rate)
        return frames + 1 if self.keep_last_frame else frames

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d


_LATER_FIELDS = {"sample_rate": None, "mono": False, "power": 1.0, "keep_last_frame": False}

#: Named front ends. ``dcase2019``: the DCASE 2019 baseline's (and the paper's), stereo kept.
#: ``dcase2024``: the DCASE 2024 Task 1 baseline's: resampled to 32 kHz, 3,072-sample (96 ms) Hann
#: window, 500-sample hop, 4,096-point FFT, 256 mel bands, power spectrum, log(mel + 1e-5), mono,
#: all 65 centred frames of a 1-s clip.
FEATURE_PRESETS: dict[str, FeatureConfig] = {
    "dcase2019": FeatureConfig(),
    "dcase2024": FeatureConfig(n_mels=256, win_ms=96.0, hop_ms=15.625, n_fft=4096, window="hann", log_eps=1e-5,
                               sample_rate=32000, mono=True, power=2.0, keep_last_frame=True),
}


def feature_preset(name: str, n_mels: int | None = None) -> FeatureConfig:
    """The named front end, with ``n_mels`` bands if given."""
    if name not in FEATURE_PRESETS:
        raise ConfigError(f"unknown feature preset {name!r}; choose one of {', '.join(FEATURE_PRESETS)}")
    cfg = FEATURE_PRESETS[name]
    return cfg if n_mels is None else replace(cfg, n_mels=int(n_mels))


def _empty_filters(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> int:
    """How many of torchaudio's triangular mel filters cover no FFT bin at all (all zeros)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchaudio's own "filterbank has all zero values" warning
        fb = torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate)
    return int((fb.max(dim=0).values <= 0).sum())


def check_mel_bands(cfg: FeatureConfig, sample_rate: int) -> None:
    """Refuse a band count the front end cannot fill: with more mel bands than the FFT resolves,
    some filters fall between two bins and are empty (constant features that only waste the model's
    input). The limit is found from the filterbank itself, for this rate, FFT size and band edges."""
    rate = cfg.rate(sample_rate)
    n_fft = cfg.fft_size(rate)
    f_max = float(rate) / 2 if cfg.f_max is None else float(cfg.f_max)
    n_freqs = n_fft // 2 + 1
    if not _empty_filters(n_freqs, float(cfg.f_min), f_max, int(cfg.n_mels), rate):
        return
    lo, hi = 1, int(cfg.n_mels) - 1  # the largest count without an empty filter
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _empty_filters(n_freqs, float(cfg.f_min), f_max, mid, rate):
            hi = mid - 1
        else:
            lo = mid
    raise ConfigError(f"--mels {cfg.n_mels}: at {rate} Hz with a {n_fft}-point FFT ({cfg.f_min:g}-{f_max:g} Hz) at most "
                      f"{lo} mel bands have a non-empty filter; give --mels {lo} or fewer")


class LogMelExtractor:
    """``(channels, samples)`` audio -> ``(channels, n_mels, n_frames)`` float32 log-mel.

    Same numbers as torchaudio's centred, reflect-padded STFT + mel filterbank, computed
    faster on one core (measured in ``benchmarks/features.py``):

    * frames are processed in blocks small enough to stay in the L2 cache;
    * the window is applied to its own ``win_length`` samples and the FFT zero-pads to
      ``n_fft`` at the end instead of the centre; that only rotates the frame, so the
      magnitude is unchanged, and only the frames that overlap an edge need padding;
    * the mel filterbank (each FFT bin is in at most two triangles) is a sparse CSR matrix.
    """

    def __init__(self, cfg: FeatureConfig, sample_rate: int, block_frames: int = 64):
        self.cfg = cfg
        self.input_rate = int(sample_rate)
        self.sample_rate = sample_rate = cfg.rate(sample_rate)  # the STFT's rate
        self.win = cfg.win_length(sample_rate)
        self.hop = cfg.hop_length(sample_rate)
        self.n_fft = cfg.fft_size(sample_rate)
        if self.win < 2 or self.hop < 1:
            raise ConfigError(f"window {cfg.win_ms} ms / hop {cfg.hop_ms} ms is too short at {sample_rate} Hz")
        f_max = float(sample_rate) / 2 if cfg.f_max is None else float(cfg.f_max)
        if f_max > sample_rate / 2:
            raise ConfigError(f"f_max={cfg.f_max} is above the Nyquist frequency of {sample_rate} Hz audio")
        self.block_frames = int(block_frames)
        # torchaudio's windowed-sinc resampler (its defaults, as the DCASE 2024 baseline), kernel built once
        self._resample = (torchaudio.transforms.Resample(self.input_rate, sample_rate)
                          if sample_rate != self.input_rate else None)
        self.window = WINDOWS[cfg.window](self.win)  # periodic, as torchaudio's window_fn(win_length)
        # Start of frame t's window in the signal: t * hop - offset (torch.stft centres an
        # n_fft frame on t * hop and the window on the frame).
        self.offset = self.n_fft // 2 - (self.n_fft - self.win) // 2
        fb = torchaudio.functional.melscale_fbanks(
            self.n_fft // 2 + 1, float(cfg.f_min), f_max, int(cfg.n_mels), self.sample_rate
        )  # (bins, n_mels), the defaults of torchaudio.transforms.MelScale
        self.filterbank = fb
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            self._fb_csr = fb.T.contiguous().to_sparse_csr()

    def n_frames(self, samples: int) -> int:
        """Frames of a clip of ``samples`` input samples (at the data's rate)."""
        return self.cfg.n_frames(self.input_rate, samples)

    def __call__(self, audio: np.ndarray | torch.Tensor, out: np.ndarray | None = None) -> np.ndarray:
        """Features of one clip; written into ``out`` (any float dtype, converted by torch) if given."""
        x = torch.as_tensor(audio, dtype=torch.float32)
        if x.ndim == 1:
            x = x[None]
        if self.cfg.mono and x.shape[0] > 1:
            x = x.mean(dim=0, keepdim=True)
        if self._resample is not None:
            x = self._resample(x)
        channels, samples = x.shape
        n_frames = samples // self.hop + (1 if self.cfg.keep_last_frame else 0)
        if n_frames < 1 or samples <= self.n_fft // 2:
            raise ConfigError(f"a {samples}-sample clip is too short for a {self.n_fft}-point centred STFT")
        mel = torch.empty(channels, self.cfg.n_mels, n_frames)
        for t0 in range(0, n_frames, self.block_frames):
            t1 = min(n_frames, t0 + self.block_frames)
            mel[:, :, t0:t1] = self._block(x, t0, t1)
        mel.add_(self.cfg.log_eps).log_()
        if out is None:
            return mel.numpy()
        torch.from_numpy(out).copy_(mel)  # torch converts to float16 ~30x faster than numpy
        return out

    def _block(self, x: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
        """Mel magnitudes ``(channels, n_mels, t1 - t0)`` of frames ``t0 .. t1 - 1``."""
        channels, samples = x.shape
        s0 = t0 * self.hop - self.offset
        s1 = (t1 - 1) * self.hop - self.offset + self.win
        seg = x[:, max(s0, 0) : min(s1, samples)]
        left, right = max(0, -s0), max(0, s1 - samples)
        if left or right:  # reflect about the first / last sample, like torch.stft(center=True)
            parts = [x[:, 1 : left + 1].flip(-1)] if left else []
            parts.append(seg)
            if right:
                parts.append(x[:, samples - 1 - right : samples - 1].flip(-1))
            seg = torch.cat(parts, dim=-1)
        frames = seg.unfold(-1, self.win, self.hop) * self.window  # (channels, F, win)
        spec = torch.view_as_real(torch.fft.rfft(frames, n=self.n_fft))  # (channels, F, bins, 2)
        re, im = spec[..., 0], spec[..., 1]
        mag = torch.addcmul(re * re, im, im)  # |X|²
        if self.cfg.power == 1.0:
            mag = mag.sqrt_()  # |X|: the DCASE 2019 baseline's magnitude spectrum
        n = t1 - t0
        mel = self._fb_csr @ mag.reshape(channels * n, -1).T.contiguous()  # (n_mels, channels * F)
        return mel.reshape(-1, channels, n).transpose(0, 1)


def extract(audio: np.ndarray, cfg: FeatureConfig, sample_rate: int) -> np.ndarray:
    """One clip's ``(channels, n_mels, n_frames)`` float32 log-mel (convenience for one-offs)."""
    return LogMelExtractor(cfg, sample_rate)(audio)


def _as_rows(rows: Any, n: int) -> np.ndarray:
    idx = np.asarray(rows)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise ConfigError(f"a boolean row mask must have {n} entries, got shape {idx.shape}")
        idx = np.flatnonzero(idx)
    idx = idx.astype(np.int64, copy=False).ravel()
    if idx.size == 0:
        raise ConfigError("band_stats needs at least one row (the training split is empty)")
    if idx.min() < -n or idx.max() >= n:
        raise ConfigError(f"band_stats row index out of range for {n} clips")
    return np.sort(idx % n)  # sorted: sequential reads from the memory map


def band_stats(features: np.ndarray, rows: Any, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel and mel band over the given rows only (the training split).

    Streams ``chunk`` rows at a time (default: about 32 MB of float64) and merges per-chunk
    moments (Chan et al.), so memory does not grow with the dataset. Returns float32 arrays of
    shape ``(channels, n_mels, 1)`` that broadcast over ``(..., channels, n_mels, frames)``;
    std is floored at ``MIN_STD``.
    """
    idx = _as_rows(rows, len(features))
    per_row = int(np.prod(features.shape[1:]))
    if chunk is None:
        chunk = max(1, (32 << 20) // (8 * per_row))
    count = 0
    mean = np.zeros(features.shape[1:3], np.float64)
    m2 = np.zeros_like(mean)
    for start in range(0, idx.size, chunk):
        x = np.asarray(features[idx[start : start + chunk]], dtype=np.float64)
        n = x.shape[0] * x.shape[3]
        c_mean = x.mean(axis=(0, 3))
        c_m2 = ((x - c_mean[None, :, :, None]) ** 2).sum(axis=(0, 3))
        delta = c_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + c_m2 + delta**2 * (count * n / total)
        count = total
    std = np.sqrt(m2 / count)
    return mean[..., None].astype(np.float32), np.maximum(std, MIN_STD)[..., None].astype(np.float32)


def normalize(x: Any, mean: np.ndarray, std: np.ndarray) -> Any:
    """``(x - mean) / std`` in float32, for numpy arrays or torch tensors."""
    if isinstance(x, torch.Tensor):
        m = torch.as_tensor(mean, dtype=torch.float32, device=x.device)
        s = torch.as_tensor(std, dtype=torch.float32, device=x.device)
        return (x.float() - m) / s
    return (np.asarray(x, dtype=np.float32) - mean) / std
