"""WAV reading with the checks every loader needs (soundfile: ``torchaudio.load`` needs torchcodec)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from harness.errors import DataError


def read_wav(
    path: str | Path,
    sample_rate: int | None = None,
    channels: int | None = None,
    samples: int | None = None,
) -> np.ndarray:
    """Read a WAV file as ``(channels, samples)`` float32, checking what the caller expects.

    ``samples`` is the exact expected length; a shorter file is reported as truncated.
    Every failure is a one-line :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("audio file listed in the metadata is missing", path)
    try:
        with sf.SoundFile(str(path)) as f:
            if sample_rate is not None and f.samplerate != sample_rate:
                raise DataError(f"sample rate is {f.samplerate} Hz, expected {sample_rate} Hz", path)
            if channels is not None and f.channels != channels:
                raise DataError(f"has {f.channels} channel(s), expected {channels}", path)
            if samples is not None and f.frames < samples:
                raise DataError(f"truncated: {f.frames} samples per channel, expected {samples}", path)
            data = f.read(frames=samples if samples is not None else -1, dtype="float32", always_2d=True)
    except DataError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DataError(f"unreadable or corrupt WAV ({' '.join(str(exc).split())})", path) from exc
    if samples is not None and data.shape[0] < samples:
        raise DataError(f"truncated: only {data.shape[0]} of {samples} samples could be read", path)
    return np.ascontiguousarray(data.T)


def wav_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, channels, samples)`` from the header, with a one-line error if unreadable.

    Plain PCM / float WAV headers are parsed directly (``harness.data.wavheader``: a dataset's
    load reads every header); anything else goes through soundfile.
    """
    from harness.data.wavheader import read_header

    path = Path(path)
    fast = read_header(path)
    if fast is not None:
        return fast
    if not path.is_file():
        raise DataError("audio file listed in the metadata is missing", path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DataError(f"unreadable or corrupt WAV ({' '.join(str(exc).split())})", path) from exc
    return int(info.samplerate), int(info.channels), int(info.frames)


_RESAMPLERS: dict[tuple[int, int], object] = {}


def _resample(audio: np.ndarray, orig: int, target: int) -> np.ndarray:
    """torchaudio's band-limited sinc resampling; the kernel is built once per rate pair."""
    import torch
    import torchaudio

    key = (orig, target)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = torchaudio.transforms.Resample(orig, target)
    with torch.no_grad():
        out = _RESAMPLERS[key](torch.from_numpy(np.ascontiguousarray(audio)))
    return out.numpy()


def fit_length(audio: np.ndarray, samples: int, pad: str) -> np.ndarray:
    """Cut to ``samples``, or pad at the end: ``zero`` with silence, ``repeat`` by tiling the clip."""
    n = audio.shape[1]
    if n >= samples:
        return audio[:, :samples]
    if pad == "repeat" and n > 0:
        reps = -(-samples // n)
        return np.tile(audio, (1, reps))[:, :samples]
    out = np.zeros((audio.shape[0], samples), np.float32)
    out[:, :n] = audio
    return out


def load_clip(path: str | Path, spec) -> np.ndarray:
    """One clip as ``(spec.channels, spec.clip_samples)`` float32, following an ``AudioSpec``.

    An ``exact`` spec reads the file as stored and checks its format; otherwise any rate and
    channel count is converted (resampled with torchaudio, averaged to mono, cut or padded).
    """
    if spec.exact:
        return read_wav(path, spec.sample_rate, spec.channels, spec.clip_samples)
    path = Path(path)
    if not path.is_file():
        raise DataError("audio file listed in the metadata is missing", path)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DataError(f"unreadable or corrupt audio file ({' '.join(str(exc).split())})", path) from exc
    audio = audio.T
    if audio.shape[1] == 0:
        raise DataError("audio file holds no samples", path)
    if spec.channels == 1 and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    elif audio.shape[0] != spec.channels:
        if audio.shape[0] != 1:
            raise DataError(f"has {audio.shape[0]} channel(s), cannot make {spec.channels}", path)
        audio = np.repeat(audio, spec.channels, axis=0)
    if rate != spec.sample_rate:
        audio = _resample(audio, rate, spec.sample_rate)
    return np.ascontiguousarray(fit_length(audio.astype(np.float32, copy=False), spec.clip_samples, spec.pad))


def scan_headers(root: Path, filenames: list[str]) -> list[tuple[int, int, int]]:
    """``(sample_rate, channels, samples)`` of every file, with a one-line error naming a bad one."""
    out = []
    for f in filenames:
        info = wav_info(root / f)
        if info[2] <= 0:
            raise DataError("audio file holds no samples", root / f)
        out.append(info)
    return out


def uniform_format(root: Path, filenames: list[str], check_audio: bool,
                   infos: list[tuple[int, int, int]] | None = None) -> tuple[int, int, int]:
    """``(sample_rate, channels, clip_samples)`` shared by every file (with ``check_audio``; else the first's).

    ``infos``: the headers when the caller has read them already (``dataset.scan_files``). The
    expected format is the most common one, so an error names the odd file rather than
    whichever file happens to be listed first.
    """
    from collections import Counter

    if not check_audio:
        return wav_info(root / filenames[0])
    if infos is None:
        infos = [wav_info(root / f) for f in filenames]
    rate, channels = Counter((r, c) for r, c, _ in infos).most_common(1)[0][0]
    clip = Counter(n for _, _, n in infos).most_common(1)[0][0]
    for filename, (r, c, n) in zip(filenames, infos):
        if (r, c) == (rate, channels) and n >= clip:
            continue
        path = root / filename
        if r != rate:
            raise DataError(f"sample rate is {r} Hz, the other files have {rate} Hz", path)
        if c != channels:
            raise DataError(f"has {c} channel(s), the other files have {channels}", path)
        if n < clip:
            raise DataError(f"truncated: {n} samples per channel, the other files have {clip}", path)
    if clip <= 0:
        raise DataError("audio files are empty (0 samples)", root / filenames[0])
    return rate, channels, clip
