"""TEST FIXTURE: a FABRICATED results store with known values. Not results of any training.

``write_store(root)`` writes ``index.csv``, ``runs/<id>/summary.json``, ``epochs.csv`` and
``predictions.npz`` in the layout of docs/design.md, with numbers chosen so the tests can
check means, standard deviations and McNemar p-values by hand:

* 120 clips = 4 cities x 10 scenes x 3; Milan (clips 90-119) is the unseen city; every clip is
  an official evaluate clip. SubSpectralNet gets the even-numbered clips right (50 %).
* FCNN seed 0 vs SubSpectralNet seed 0: b = 10 (6 seen + 4 Milan), c = 2 (seen), overall.
  FCNN seed 1 vs SubSpectralNet seed 1: b = c = 3, none in Milan.
* FCNN-triplet has FCNN's predictions (b = c = 0) but scene-clustered embeddings; FCNN's
  embeddings cluster by city.
* FCNN-spec has seed 0 only (a partial cell); FCNN-mixup failed; FCNN-mixup-spec is running.
* One more run (FCNN, seed 0) on a second dataset ("otherdata99", TAU 2019 layout, preset paper,
  unseen protocol all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.results.store import ResultsStore, save_npz
from harness.runner.config import PRESETS

FIXTURE_LABEL = "TEST FIXTURE (fabricated numbers)"
SCENES = tuple(f"scene{i}" for i in range(10))
CITIES = ("barcelona", "helsinki", "lisbon", "milan")
UNSEEN = "milan"
N_CLIPS = len(CITIES) * len(SCENES) * 3
IDENTITY = "fixture0001aaaaaaaa"
OTHER_IDENTITY = "otherdata99bbbbbbbb"
EPOCHS = PRESETS["quick"]["epochs"]  # the fixture's runs match the quick preset, as grid's would

#: (variant, seed) -> (acc_score, unseen_score) written to the index (fractions).
ACCURACY = {
    ("SubSpectralNet", 0): (0.60, 0.50), ("SubSpectralNet", 1): (0.62, 0.52),
    ("FCNN", 0): (0.70, 0.55), ("FCNN", 1): (0.72, 0.61),
    ("FCNN-triplet", 0): (0.74, 0.64), ("FCNN-triplet", 1): (0.74, 0.66),
    ("FCNN-spec", 0): (0.73, 0.60),
}
CONFIG = {"SubSpectralNet": ("subspectralnet", "ce", "none"), "FCNN": ("fcnn", "ce", "none"),
          "FCNN-triplet": ("fcnn", "triplet-city", "none"), "FCNN-spec": ("fcnn", "ce", "spec"),
          "FCNN-mixup": ("fcnn", "ce", "mixup"), "FCNN-mixup-spec": ("fcnn", "ce", "mixup,spec")}


@dataclass(frozen=True)
class Clips:
    filenames: np.ndarray
    labels: np.ndarray
    cities: np.ndarray

    @property
    def unseen(self) -> np.ndarray:
        return self.cities == UNSEEN


def clips() -> Clips:
    city = np.repeat(np.arange(len(CITIES)), len(SCENES) * 3)
    scene = np.tile(np.repeat(np.arange(len(SCENES)), 3), len(CITIES))
    names = np.array([f"audio/{SCENES[s]}-{CITIES[c]}-{i}-a.wav" for i, (c, s) in enumerate(zip(city, scene))])
    return Clips(names, scene.astype(np.int64), np.asarray(CITIES)[city])


def flip(base: np.ndarray, to_right: list[int], to_wrong: list[int]) -> np.ndarray:
    assert not base[to_right].any() and base[to_wrong].all()
    out = base.copy()
    out[to_right], out[to_wrong] = True, False
    return out


def correctness() -> dict[tuple[str, int], np.ndarray]:
    base = np.arange(N_CLIPS) % 2 == 0
    fcnn0 = flip(base, [1, 3, 5, 7, 9, 11, 91, 93, 95, 97], [0, 2])
    fcnn1 = flip(base, [13, 15, 17], [4, 6, 8])
    return {("SubSpectralNet", 0): base, ("SubSpectralNet", 1): base.copy(), ("FCNN", 0): fcnn0,
            ("FCNN", 1): fcnn1, ("FCNN-triplet", 0): fcnn0.copy(), ("FCNN-triplet", 1): fcnn1.copy(),
            ("FCNN-spec", 0): flip(fcnn0, [21, 23], [])}


def embeddings(c: Clips, by: str, seed: int) -> np.ndarray:
    """Clusters by ``by`` ('city' or 'scene') with a weaker offset for the other factor."""
    rng = np.random.default_rng(seed)
    city_idx = np.searchsorted(np.asarray(CITIES), c.cities)
    centres_city, centres_scene = rng.normal(size=(len(CITIES), 16)), rng.normal(size=(len(SCENES), 16))
    strong, weak = (centres_city[city_idx], centres_scene[c.labels]) if by == "city" else (centres_scene[c.labels], centres_city[city_idx])
    return (5 * strong + weak + 0.2 * rng.normal(size=(len(c.labels), 16))).astype(np.float16)


def _epochs(acc: float, unseen: float) -> pd.DataFrame:
    """EPOCHS epochs whose last 10 average exactly to ``acc`` / ``unseen`` (alternating ±0.01), after a ramp."""
    head = EPOCHS - 10
    wobble = np.array([0.0] * head + [0.01, -0.01] * 5)
    ramp = np.concatenate([np.linspace(0.3, 0.02, head), np.zeros(10)])
    rows = []
    for e in range(EPOCHS):
        row = {"epoch": e + 1, "train_loss": 2.0 / (e + 1), "train_ce": 2.0 / (e + 1), "train_triplet": 0.0,
               "acc": acc - ramp[e] + wobble[e], "unseen_acc": unseen - ramp[e] + wobble[e], "log_loss": 1.5,
               "seconds": 1.0, "lr": 0.001}
        row.update({f"acc_domain_{city}": acc for city in CITIES})
        row.update({f"acc_class_{s}": acc for s in SCENES})
        rows.append(row)
    return pd.DataFrame(rows)


def _summary(run_id: str, variant: str, seed: int, status: str, acc: tuple[float, float] | None,
             identity: str = IDENTITY, kind: str = "synthetic", preset: str = "quick", protocol: str = "official",
             dataset: str = "/cache/harness/datasets/synthetic-fixture/TAU-urban-acoustic-scenes-2019-development") -> dict:
    arch, loss, aug = CONFIG[variant]
    return {"run_id": run_id, "status": status, "arch": arch, "loss": loss, "aug": aug, "n_mels": 40, "seed": seed,
            "alpha": 0.2 if loss.startswith("triplet") else None, "gamma": 10.0 if loss.startswith("triplet") else None,
            "epochs": EPOCHS if preset == "quick" else 200, "batch_size": 32, "lr": 0.001, "preset": preset,
            "split": "fold1", "dataset": dataset, "dataset_kind": kind, "dataset_identity": identity,
            "unseen_protocol": protocol, "unseen_domains": UNSEEN,
            "acc_score": acc[0] if acc else None, "unseen_score": acc[1] if acc else None, "score_window": 10,
            "scores": {"acc": acc[0], "unseen_acc": acc[1], "macro_acc": acc[0] - 0.01, "log_loss": 1.5} if acc else {},
            "acc_final": acc[0] if acc else None, "unseen_final": acc[1] if acc else None, "params": 113160,
            "wall_s": 1.0, "device": "cpu", "created": f"2024-01-01T00:00:{seed:02d}", "run_dir": f"runs/{run_id}"}


def write_run(store: ResultsStore, summary: dict, correct: np.ndarray, emb: np.ndarray, c: Clips) -> None:
    run = store.run_dir(summary["run_id"])
    run.mkdir(parents=True, exist_ok=True)
    _epochs(summary["acc_score"], summary["unseen_score"]).to_csv(run / "epochs.csv", index=False)
    logits = np.zeros((N_CLIPS, len(SCENES)), dtype=np.float32)
    pred = np.where(correct, c.labels, (c.labels + 1) % len(SCENES))
    logits[np.arange(N_CLIPS), pred] = 3.0
    save_npz(run / "predictions.npz", filenames=c.filenames, labels=c.labels, domains=c.cities,
             classes=np.asarray(SCENES), logits=logits, embeddings=emb,
             official=np.ones(N_CLIPS, bool), unseen=c.unseen)
    store.write_summary(summary["run_id"], summary)


def write_store(root: str | Path) -> Path:
    """Write the fabricated store under ``root`` and return ``root``."""
    root = Path(root)
    store, c, correct = ResultsStore(root), clips(), correctness()
    for (variant, seed), acc in ACCURACY.items():
        by = "scene" if "triplet" in variant else "city"
        write_run(store, _summary(f"fx-{variant}-s{seed}", variant, seed, "complete", acc), correct[(variant, seed)],
                  embeddings(c, by, seed), c)
    store.update_index(_summary("fx-FCNN-mixup-s0", "FCNN-mixup", 0, "failed", (0.99, 0.99)))
    store.update_index(_summary("fx-FCNN-mixup-spec-s0", "FCNN-mixup-spec", 0, "running", (0.99, 0.99)))
    other = _summary("fx-other-FCNN-s0", "FCNN", 0, "complete", (0.75, 0.65), identity=OTHER_IDENTITY,
                     kind="tau2019", preset="paper", protocol="all", dataset="/data/TAU-urban-acoustic-scenes-2019-development")
    write_run(store, other, correct[("FCNN", 0)], embeddings(c, "city", 0), c)
    return root
