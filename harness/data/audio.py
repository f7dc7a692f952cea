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
    """``(sample_rate, channels, samples)`` from the header, with a one-line error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError("audio file listed in the metadata is missing", path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DataError(f"unreadable or corrupt WAV ({' '.join(str(exc).split())})", path) from exc
    return int(info.samplerate), int(info.channels), int(info.frames)
