"""Tiny copies of the ESC-50, UrbanSound8K and manifest layouts (``from dataset_factory import …``).

Each class is one tone, so a model can learn them; every source recording / group stays in one
fold as in the official data. UrbanSound8K copies mix sample rates, channel counts and lengths
(some clips shorter than 4 s), as the real files do.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(label: int, n: int, rate: int, channels: int, seed: int) -> np.ndarray:
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    x = 0.2 * np.sin(2 * np.pi * 220.0 * (1 + label) * t)
    return (x[:, None] + 0.01 * rng.standard_normal((n, channels))).astype(np.float32)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_esc50(root: Path, classes: tuple[str, ...] = ("dog", "rooster", "rain", "sea_waves"), sources_per: int = 5,
                takes: int = 2, rate: int = 8000, seconds: float = 0.5, esc10: tuple[str, ...] = ("dog", "rain")) -> Path:
    """``audio/*.wav`` + ``meta/esc50.csv``; source recording k of a class goes to fold ``k % 5 + 1``."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    n = int(rate * seconds)
    for target, category in enumerate(classes):
        for k in range(sources_per):
            src = f"{100000 + 97 * target + k}"
            fold = k % 5 + 1
            for take in "ABCDE"[:takes]:
                name = f"{fold}-{src}-{take}-{target}.wav"
                sf.write(str(root / "audio" / name), tone(target, n, rate, 1, hash(name) % 2**31), rate, subtype="PCM_16")
                rows.append([name, fold, target, category, str(category in esc10), src, take])
    write_csv(root / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    return root


#: (sample rate, channels, seconds) cycled over the UrbanSound8K slices: mixed formats and short clips.
US8K_FORMATS = ((44100, 2, 0.5), (22050, 1, 0.5), (48000, 2, 0.3), (16000, 1, 0.2), (11025, 1, 0.5))


def write_urbansound8k(root: Path, classes: tuple[str, ...] = ("air_conditioner", "car_horn", "dog_bark"),
                       recordings_per: int = 10, slices: int = 2, folds: int = 10) -> Path:
    """``audio/foldK/*.wav`` + ``metadata/UrbanSound8K.csv`` with mixed rates / channels / lengths."""
    rows = []
    i = 0
    for cid, name in enumerate(classes):
        for r in range(recordings_per):
            fs_id = 1000 + 31 * cid + r
            fold = r % folds + 1
            for s in range(slices):
                rate, ch, sec = US8K_FORMATS[i % len(US8K_FORMATS)]
                i += 1
                fname = f"{fs_id}-{cid}-0-{s}.wav"
                path = root / "audio" / f"fold{fold}" / fname
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), tone(cid, int(rate * sec), rate, ch, i), rate, subtype="PCM_16")
                rows.append([fname, fs_id, f"{s * 0.5:.3f}", f"{s * 0.5 + sec:.3f}", 1, fold, cid, name])
    write_csv(root / "metadata" / "UrbanSound8K.csv",
              ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], rows)
    return root


def write_manifest(root: Path, columns: tuple[str, ...] = ("domain", "group", "fold"),
                   classes: tuple[str, ...] = ("crow", "owl", "wren"), domains: tuple[str, ...] = ("mic1", "mic2", "mic3"),
                   groups_per: int = 5, clips_per: int = 2, rate: int = 8000, seconds: float = 0.5,
                   name: str = "manifest.csv") -> Path:
    """Audio under ``clips/`` and a manifest with ``filename,label`` plus the optional ``columns``.

    A group is one (class, domain, index) session; groups go to folds 1..5 round-robin; with
    ``split`` the last fold's groups are ``test``.
    """
    header = ["filename", "label", *columns]
    rows = []
    n = int(rate * seconds)
    g = 0
    for ci, label in enumerate(classes):
        for d in domains:
            for k in range(groups_per):
                g += 1
                fold = g % 5 + 1
                for c in range(clips_per):
                    fname = f"clips/{label}-{d}-{k}-{c}.wav"
                    (root / "clips").mkdir(parents=True, exist_ok=True)
                    sf.write(str(root / fname), tone(ci, n, rate, 1, g * 10 + c), rate, subtype="PCM_16")
                    extra = {"domain": d, "group": f"s{g}", "fold": fold, "split": "test" if fold == 5 else "train"}
                    rows.append([fname, label, *[extra[col] for col in columns]])
    return write_csv(root / name, header, rows)


def edit_csv(path: Path, row: int, column: str, value: str) -> None:
    """Set one cell (``row`` 0 = first data row) of a comma-separated file, replacing the file."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[row + 1][rows[0].index(column)] = value
    path.unlink()
    write_csv(path, rows[0], rows[1:])


def rename_column(path: Path, old: str, new: str) -> None:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[0][rows[0].index(old)] = new
    path.unlink()
    write_csv(path, rows[0], rows[1:])
