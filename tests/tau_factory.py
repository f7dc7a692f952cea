"""Tiny datasets in the exact TAU development layout, and helpers to break copies of them.

Shared by the tests (``from tau_factory import write_tau``). 2019: one unseen city (``milan``)
only in evaluate plus unused rows, like the real data. 2020: parallel recordings by several
devices per segment, unseen devices only at evaluate locations (and unused at train locations).
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

META_HEADER = ["filename", "scene_label", "identifier", "source_label"]
FOLD_HEADER = ["filename", "scene_label"]


def write_tau(
    root: str | Path,
    layout: str = "tau2019",
    scenes: tuple[str, ...] = ("airport", "bus", "park"),
    cities: tuple[str, ...] = ("barcelona", "lyon", "prague"),
    locations_per: int = 2,
    segments_per: int = 2,
    seconds: float = 0.5,
    sample_rate: int | None = None,
    channels: int | None = None,
    milan_unused: int = 1,
    unseen_city: str = "milan",
    devices: tuple[str, ...] = ("a", "b", "s1"),
    unseen_devices: tuple[str, ...] = ("s4",),
    synthetic: bool = False,
    seed: int = 0,
) -> Path:
    """Write a TAU-layout folder and return it.

    Per scene and city: ``locations_per`` locations (the last one evaluate, the rest train),
    ``segments_per`` segments each. 2019 adds ``unseen_city`` with one evaluate location and
    ``milan_unused`` unused locations per scene. 2020 records each segment with ``devices``
    (+ ``unseen_devices`` at evaluate locations; at train locations those rows are unused).
    """
    if layout not in ("tau2019", "tau2020"):
        raise ValueError(layout)
    if locations_per < 2:
        raise ValueError("locations_per must be >= 2 (one train, one evaluate location)")
    is2020 = layout == "tau2020"
    sample_rate = sample_rate or (44100 if is2020 else 48000)
    channels = channels or (1 if is2020 else 2)
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "evaluation_setup").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate

    rows: list[tuple[str, str, str, str, str]] = []  # filename, scene, identifier, source, fold
    loc_id, seg_id = 0, 0

    def add_location(scene: str, city: str, fold: str, sources: list[tuple[str, str]]) -> None:
        nonlocal loc_id, seg_id
        for _ in range(segments_per):
            for source, row_fold in sources:
                name = f"audio/{scene}-{city}-{loc_id}-{seg_id}-{source}.wav"
                rows.append((name, scene, f"{city}-{loc_id}", source, row_fold))
            seg_id += 1
        loc_id += 1

    for scene in scenes:
        for city in cities:
            for i in range(locations_per):
                fold = "evaluate" if i == locations_per - 1 else "train"
                if is2020:
                    unseen_fold = "evaluate" if fold == "evaluate" else "unused"
                    sources = [(d, fold) for d in devices] + [(d, unseen_fold) for d in unseen_devices]
                else:
                    sources = [("a", fold)]
                add_location(scene, city, fold, sources)
        if not is2020:
            add_location(scene, unseen_city, "evaluate", [("a", "evaluate")])
            for _ in range(milan_unused):
                add_location(scene, unseen_city, "unused", [("a", "unused")])

    scene_index = {s: i for i, s in enumerate(sorted(scenes))}
    for k, (name, scene, identifier, source, _fold) in enumerate(rows):
        freq = 150.0 * (1 + scene_index[scene])  # learnable: one tone per scene
        gain = 0.1 + 0.02 * (zlib.crc32((identifier.split("-")[0] + source).encode()) % 5)
        tone = gain * np.sin(2 * np.pi * freq * t + k)
        audio = tone[:, None] + 0.01 * rng.standard_normal((n, channels))
        sf.write(str(root / name), audio.astype(np.float32), sample_rate, subtype="PCM_24")

    write_rows(root / "meta.csv", [META_HEADER] + [[r[0], r[1], r[2], r[3]] for r in rows])
    setup = root / "evaluation_setup"
    for fold in ("train", "evaluate"):
        write_rows(setup / f"fold1_{fold}.csv", [FOLD_HEADER] + [[r[0], r[1]] for r in rows if r[4] == fold])
    write_rows(setup / "fold1_test.csv", [["filename"]] + [[r[0]] for r in rows if r[4] == "evaluate"])
    year = "2020 Mobile" if is2020 else "2019"
    title = f"TAU Urban Acoustic Scenes {year}, Development dataset (tiny test copy)"
    prefix = "SYNTHETIC data: " if synthetic else ""
    (root / "README.md").write_text(f"{prefix}{title}\n\nWritten by tests/tau_factory.py.\n")
    return root


# --------------------------------------------------------------------------- breaking copies


def copy_tau(src: str | Path, dst: str | Path) -> Path:
    """Copy a dataset cheaply: WAVs hard-linked, text copied (helpers below never edit in place)."""

    def copy(s: str, d: str) -> None:
        if s.endswith(".wav"):
            os.link(s, d)
        else:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=copy)
    return Path(dst)


def read_rows(path: str | Path) -> list[list[str]]:
    """All lines (header included) split on TAB."""
    text = Path(path).read_text().replace("\r\n", "\n")
    return [line.split("\t") for line in text.split("\n") if line]


def write_rows(path: str | Path, rows: list[list[str]], crlf: bool = False) -> None:
    """Write TAB-separated lines with a trailing newline, replacing (not editing) the file."""
    end = "\r\n" if crlf else "\n"
    _replace(Path(path), "".join("\t".join(r) + end for r in rows).encode())


def to_crlf(path: str | Path) -> None:
    write_rows(path, read_rows(path), crlf=True)


def write_wav(path: str | Path, sample_rate: int, channels: int, samples: int, subtype: str = "PCM_16") -> None:
    """Replace ``path`` with a silent WAV of the given format."""
    path = Path(path)
    path.unlink(missing_ok=True)
    sf.write(str(path), np.zeros((samples, channels), np.float32), sample_rate, subtype="PCM_24")


def truncate_file(path: str | Path, keep_bytes: int) -> None:
    path = Path(path)
    _replace(path, path.read_bytes()[:keep_bytes])


def corrupt_file(path: str | Path) -> None:
    _replace(Path(path), b"this is not a RIFF/WAVE file" * 4)


def _replace(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)  # break a hard link so the source dataset is untouched
    path.write_bytes(data)
