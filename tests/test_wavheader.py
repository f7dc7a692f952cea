"""The RIFF header fast path agrees with soundfile, and defers to it on anything unusual."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.data.audio import wav_info
from harness.data.wavheader import read_header
from harness.errors import DataError


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("rate,channels,frames", [(8000, 1, 1), (44100, 2, 4410), (48000, 6, 333)])
def test_agrees_with_soundfile(tmp_path: Path, subtype: str, rate: int, channels: int, frames: int) -> None:
    path = tmp_path / "x.wav"
    sf.write(str(path), np.zeros((frames, channels), np.float32), rate, subtype=subtype)
    info = sf.info(str(path))
    assert read_header(path) == (info.samplerate, info.channels, info.frames)


def test_extra_chunks_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(str(path), np.zeros((1000, 2), np.float32), 16000, subtype="PCM_16")
    data = path.read_bytes()
    i = data.index(b"data")
    listed = data[:i] + b"LIST" + (5).to_bytes(4, "little") + b"abcde\0" + data[i:]  # odd chunk, padded
    listed = listed[:4] + (len(listed) - 8).to_bytes(4, "little") + listed[8:]
    path.write_bytes(listed)
    info = sf.info(str(path))
    assert read_header(path) == (info.samplerate, info.channels, info.frames) == (16000, 2, 1000)
    path.write_bytes(listed[:-400])  # truncated: 100 of 1000 frames lost
    assert read_header(path) == (16000, 2, 900) == (sf.info(str(path)).samplerate, 2, sf.info(str(path)).frames)


def test_defers_to_soundfile(tmp_path: Path) -> None:
    flac = tmp_path / "x.flac"
    sf.write(str(flac), np.zeros((100, 1), np.float32), 8000, format="FLAC")
    assert read_header(flac) is None and wav_info(flac) == (8000, 1, 100)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x04\x00\x00\x00WAVEjunk")
    assert read_header(junk) is None
    with pytest.raises(DataError, match="unreadable or corrupt WAV"):
        wav_info(junk)
    assert read_header(tmp_path / "missing.wav") is None
