"""``harness predict``: score unlabelled clips with a trained run and write a DCASE submission file.

The output is the DCASE Task 1 system-output format (checked by the challenge's submission
validator): TAB-separated with a header, ``filename``, ``scene_label`` (the top class) and one
column per class holding its probability (softmax of the logits), classes in the run's order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.atomic import atomic_path
from harness.data.audio import wav_info
from harness.data.dataset import AudioSpec
from harness.errors import DataError
from harness.features.cache import load_features
from harness.inference.trained import TrainedRun
from harness.precision import autocast

TEST_LIST = "evaluation_setup/fold1_test.csv"  # the TAU evaluation layout: one `filename` column


@dataclass(frozen=True)
class Clips:
    """Unlabelled clips in the shape the feature cache reads (its ``Dataset`` protocol)."""

    root: Path
    clips: pd.DataFrame  # one column, ``filename``, relative to ``root``
    audio: AudioSpec  # the run's training format; every clip must have it
    identity: str
    stamp: str
    source: str  # where the list of clips came from


def _read_test_list(path: Path) -> list[str]:
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"unreadable clip list ({' '.join(str(exc).split())})", path) from exc
    if list(df.columns[:1]) != ["filename"]:
        raise DataError(f"wrong header: expected 'filename' first (TAB-separated), found {' TAB '.join(map(str, df.columns))!r}", path)
    names = [n.strip() for n in df["filename"]]
    for i, name in enumerate(names, start=2):
        pure = PurePosixPath(name)
        if not name or pure.is_absolute() or ".." in pure.parts:
            raise DataError(f"line {i}: filename {name!r} must be a path relative to the evaluation folder", path)
    seen: set[str] = set()
    for i, name in enumerate(names, start=2):
        if name in seen:
            raise DataError(f"line {i}: {name} is listed twice", path)
        seen.add(name)
    if not names:
        raise DataError("lists no clips", path)
    return names


def find_clips(folder: str | Path, sample_rate: int, channels: int, clip_samples: int) -> Clips:
    """The clips of ``folder``: those listed in ``evaluation_setup/fold1_test.csv``, else every WAV under it.

    Every clip's header is checked against the model's audio format before any work starts.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError("evaluation folder not found (give a TAU evaluation folder or any folder of WAV files)", root)
    listing = root / TEST_LIST
    if listing.is_file():
        names, source = _read_test_list(listing), TEST_LIST
    else:
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
        source = "WAV files under the folder"
        if not names:
            raise DataError(f"no {TEST_LIST} and no .wav files in the evaluation folder", root)
    digest = hashlib.sha256()
    stamp = hashlib.sha256()
    for name in names:
        path = root / name
        rate, ch, samples = wav_info(path)
        if (rate, ch, samples) != (sample_rate, channels, clip_samples):
            raise DataError(f"is {ch} channel(s), {rate} Hz, {samples} samples; the model was trained on {channels} "
                            f"channel(s), {sample_rate} Hz, {clip_samples}-sample clips", path)
        st = path.stat()
        digest.update(f"{name}\0{st.st_size}\n".encode())
        stamp.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Clips(root, pd.DataFrame({"filename": names}), AudioSpec(sample_rate, channels, clip_samples),
                 "eval-" + digest.hexdigest()[:16], "eval-" + stamp.hexdigest(), source)


@torch.no_grad()
def score(run: TrainedRun, clips: Clips, *, batch_size: int = 64, progress: bool = True,
          precision: str | None = None) -> np.ndarray:
    """Logits ``(clips, classes)``: features through the run's own contract and weights, by default
    at the precision the run was evaluated in (a bf16 run's stored scores came from bf16 autocast)."""
    pre = run.preprocessing
    feats = load_features(clips, pre.feature_config, progress=progress)
    model = run.model()
    out = []
    for i in tqdm(range(0, len(feats), batch_size), desc="scoring", unit="batch", disable=not progress, leave=False):
        with autocast(precision or run.config.precision, torch.device("cpu")):
            out.append(model(pre.normalize(feats[i:i + batch_size])).logits.float())
    return torch.cat(out).numpy()


#: What a spreadsheet reads as the start of a formula (OWASP, "CSV injection").
FORMULA_START = ("=", "+", "-", "@")


def text_cell(text: str) -> str:
    """``text`` as a cell no spreadsheet runs as a formula: one leading apostrophe where it would start
    with ``= + - @`` (the OWASP advice; a spreadsheet shows the text without it). Strip one leading
    apostrophe from such a cell to get the name back."""
    return "'" + text if text.startswith(FORMULA_START) else text


def submission(filenames: list[str], classes: list[str], logits: np.ndarray) -> pd.DataFrame:
    """The DCASE Task 1 output table: filename, scene_label, one probability column per class (names
    as :func:`text_cell` writes them: DCASE's file and scene names never start with a formula character)."""
    prob = torch.softmax(torch.from_numpy(np.asarray(logits, np.float64)), dim=1).numpy()
    names = [text_cell(str(c)) for c in classes]
    df = pd.DataFrame({"filename": [text_cell(str(f)) for f in filenames],
                       "scene_label": np.asarray(names, dtype=object)[prob.argmax(axis=1)]})
    for j, name in enumerate(names):
        df[name] = prob[:, j]
    return df


def predict(run: TrainedRun, folder: str | Path, out: str | Path | None = None, *, progress: bool = True) -> tuple[Path, Clips]:
    """Score every clip of ``folder`` and write the submission file atomically; returns its path."""
    pre = run.preprocessing
    clips = find_clips(folder, pre.sample_rate, pre.channels, pre.clip_samples)
    logits = score(run, clips, progress=progress)
    path = Path(out) if out else run.dir / "predict" / f"{clips.root.resolve().name}.output.csv"
    df = submission(list(clips.clips["filename"]), pre.classes, logits)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    return path, clips
