"""Stores written by earlier versions stay readable: every stored run tables under its own id,
before and after ``harness table --reindex``, and its record computes that id again.

Three FABRICATED stores (made-up scores, no training): the oldest layout whose run ids are kept
(summary ``acc_last10``, ``epochs.csv`` ``acc_city_*`` / ``eval_loss``, records with the pre-plugin
augmentation fields and no precision), records as written before the schema key existed (version
1), and today's records (version 2). The oldest store's ids are literals computed by the code of
that version from the very records below; the others are computed here and pinned by
``tests/test_run_ids.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.results.migrate import SCHEMA, read_record, upgrade_record
from harness.results.store import ResultsStore
from harness.runner.config import RunConfig

IDENTITY = "fixture0001aaaaaaaa"
DATASET = "/cache/harness/datasets/synthetic-fixture/TAU-urban-acoustic-scenes-2019-development"
CITIES = ("barcelona", "helsinki", "lisbon", "milan")

#: (arch, loss, aug, seed, settings, run id as the oldest kept version computed it)
OLDEST = [
    ("subspectralnet", "ce", "none", 0, {}, "subspectralnet-ce-none-m40-s0-19d7597e12"),
    ("subspectralnet", "ce", "none", 1, {}, "subspectralnet-ce-none-m40-s1-4daaa1c90d"),
    ("fcnn", "ce", "none", 0, {}, "fcnn-ce-none-m40-s0-dcdcc0704c"),
    ("fcnn", "ce", "none", 1, {}, "fcnn-ce-none-m40-s1-b44a025084"),
    ("fcnn", "ce", "mixup", 0, {}, "fcnn-ce-mixup-m40-s0-2122882c15"),
    ("fcnn", "ce", "mixup", 1, {}, "fcnn-ce-mixup-m40-s1-10f3284e5e"),
    ("fcnn", "triplet-city", "none", 0, {}, "fcnn-triplet-city-none-m40-s0-e069a84fc8"),
    ("fcnn", "triplet-city", "none", 1, {}, "fcnn-triplet-city-none-m40-s1-8f181c7eee"),
    ("fcnn", "ce", "spec", 0, {}, "fcnn-ce-spec-m40-s0-fda7b75dc6"),
    # seed 2: beside seeds 0 and 1 of the same variants
    ("fcnn", "ce", "mixup,spec", 2, {"mixup_alpha": 0.3, "freq_masks": 1}, "fcnn-ce-mixup+spec-m40-s2-aaa879873c"),
    ("fcnn", "triplet-city", "none", 2, {"alpha": 0.3, "gamma": 5.0}, "fcnn-triplet-city-none-m40-s2-4875b2ed49"),
]


def oldest_config(arch: str, loss: str, aug: str, seed: int, settings: dict) -> dict:
    """``config`` of a record in the oldest kept layout, resolved as that version resolved it."""
    return {"arch": arch, "loss": loss, "aug": aug, "n_mels": 40, "alpha": None, "gamma": None, "epochs": 30,
            "batch_size": 32, "lr": 0.001, "seed": seed, "data": "synthetic", "split": "fold1", "unseen": "official",
            "device": "auto", "preset": "quick", "score_last": 5, "mixup_alpha": 0.4, "freq_masks": 2,
            "freq_mask_width": None, "time_masks": 2, "time_mask_width": None, "evaluate_on": "evaluate",
            "val_fraction": 0.2, "hold_out_domain": None, "arch_options": {}, "loss_options": {},
            "dataset_identity": IDENTITY, **settings}


def todays_config(arch: str, loss: str, aug: str, seed: int, settings: dict) -> RunConfig:
    audio = {"sample_rate": 48000, "channels": 2, "clip_samples": 480000, "exact": True, "pad": "zero"}
    return RunConfig(arch=arch, loss=loss, aug=aug, seed=seed, dataset="synthetic", dataset_identity=IDENTITY,
                     split="fold1", precision="fp32", precision_reason="fixture", audio=audio, **settings).resolved()


def epochs_table(acc: float, oldest: bool) -> pd.DataFrame:
    """30 epochs whose last 5 average to ``acc``."""
    accs = np.concatenate([np.linspace(0.2, acc, 25), [acc] * 5])
    table = {"epoch": np.arange(1, 31), "train_loss": np.linspace(2, 0.5, 30), "acc": accs, "unseen_acc": accs - 0.1,
             "log_loss": np.linspace(2, 1, 30), "seconds": 1.0, "lr": 0.001}
    table.update({f"acc_domain_{c}": accs for c in CITIES})
    df = pd.DataFrame(table)
    if oldest:
        df = df.rename(columns={"log_loss": "eval_loss", **{f"acc_domain_{c}": f"acc_city_{c}" for c in CITIES}})
    return df


def write_store(root: Path, layout: str) -> dict[str, str]:
    """A fabricated store in ``layout`` (oldest | v1 | v2); returns {run id: arch-loss-aug-seed}."""
    oldest = layout == "oldest"
    index, made = [], {}
    for i, (arch, loss, aug, seed, settings, old_id) in enumerate(OLDEST):
        if oldest:
            record, run_id = {"config": oldest_config(arch, loss, aug, seed, settings), "run_id": old_id}, old_id
        else:
            flags = {"mixup_alpha": settings["mixup_alpha"], "aug_options": {"spec": {"freq_masks": settings["freq_masks"]}}} \
                if "mixup_alpha" in settings else settings
            cfg = todays_config(arch, loss, aug, seed, flags)
            run_id = cfg.run_id()
            record = {"config": cfg.to_dict(), "run_id": run_id, **({"schema": 2} if layout == "v2" else {})}
        acc = 0.5 + i / 100
        run = root / "runs" / run_id
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(record))
        epochs_table(acc, oldest).to_csv(run / "epochs.csv", index=False)
        triplet = loss.startswith("triplet")
        summary = {"run_id": run_id, "status": "complete", "arch": arch, "loss": loss, "aug": aug, "n_mels": 40,
                   "seed": seed, "alpha": 0.2 if triplet else None, "gamma": 10.0 if triplet else None, "epochs": 30,
                   "batch_size": 32, "lr": 0.001, "preset": "quick", "split": "fold1", "dataset": DATASET,
                   "dataset_kind": "synthetic", "dataset_identity": IDENTITY, "unseen_protocol": "official",
                   "unseen_domains": "milan", "acc_final": acc, "unseen_final": acc - 0.1, "params": 1000,
                   "wall_s": 1.0, "device": "cpu", "created": f"2024-01-01T00:00:{i:02d}", "run_dir": f"runs/{run_id}"}
        if oldest:
            summary.update(acc_last10=acc, unseen_last10=acc - 0.1, score_epochs=5, epochs_done=30)
        else:
            summary.update(acc_score=acc, unseen_score=acc - 0.1, score_window=5,
                           scores={"acc": acc, "unseen_acc": acc - 0.1, "log_loss": 1.0})
        (run / "summary.json").write_text(json.dumps(summary))
        index.append(summary)
        made[run_id] = f"{arch}-{loss}-{aug}-s{seed}"
    pd.DataFrame(index).drop(columns=["scores", "epochs_done"], errors="ignore").to_csv(root / "index.csv", index=False)
    return made


def tabled_ids(root: Path, capsys: pytest.CaptureFixture[str]) -> set[str]:
    assert main(["table", "--table", "1", "--results", str(root), "--format", "json", "--mels", "40", "--no-stats"]) == 0
    rows = json.loads(capsys.readouterr().out)["table1"]["rows"]
    return {run_id for r in rows if r.get("run_ids") for run_id in r["run_ids"].split(";")}


def recomputed_id(run: Path) -> str:
    return RunConfig.from_dict(read_record(run / "config.json")["config"]).resolved().run_id()


@pytest.mark.parametrize("layout", ["oldest", "v1", "v2"])
def test_every_stored_run_tables_under_its_id_before_and_after_reindex(layout: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    made = write_store(tmp_path, layout)
    if layout != "oldest":  # the same recipes: today's code gives the stored runs of the oldest layout their ids
        assert set(made) == {run_id for *_, run_id in OLDEST}
    for run_id in made:
        assert recomputed_id(tmp_path / "runs" / run_id) == run_id
    before = tabled_ids(tmp_path, capsys)
    assert before == set(made) and len(before) == len(OLDEST)
    assert set(ResultsStore(tmp_path).load_index()["run_id"]) == set(made)
    assert main(["table", "--reindex", "--table", "1", "--results", str(tmp_path), "--format", "json", "--mels", "40",
                 "--no-stats"]) == 0
    capsys.readouterr()
    assert tabled_ids(tmp_path, capsys) == before
    index = ResultsStore(tmp_path).load_index()
    assert set(index["run_id"]) == set(made) and index["acc_score"].notna().all()
    for run_id in made:
        run = tmp_path / "runs" / run_id
        assert json.loads((run / "config.json").read_text())["schema"] == SCHEMA  # upgraded in place
        assert recomputed_id(run) == run_id
        assert {"acc_domain_milan", "log_loss"} <= set(pd.read_csv(run / "epochs.csv").columns)
        assert "acc_last10" not in json.loads((run / "summary.json").read_text())


def test_schema_1_records_are_upgraded() -> None:
    old = {"config": oldest_config("fcnn", "ce", "mixup,spec", 0, {"mixup_alpha": 0.3, "freq_masks": 1,
                                                                   "freq_mask_width": 4}), "run_id": "x"}
    new = upgrade_record(old)
    assert new["schema"] == SCHEMA and new["run_id"] == "x" and "schema" not in old
    config = new["config"]
    assert config["aug_options"] == {"mixup": {"alpha": 0.3}, "spec": {"freq_masks": 1, "time_masks": 2}}
    assert config["precision"] == "fp32"  # records from before mixed precision trained in fp32
    assert not {"mixup_alpha", "freq_masks", "time_masks", "freq_mask_width", "time_mask_width"} & set(config)
    plain = upgrade_record({"config": oldest_config("fcnn", "ce", "none", 0, {})})["config"]
    assert "aug_options" not in plain  # the unused augmentation defaults are dropped
    assert upgrade_record(new) == new  # idempotent
    today = {"schema": 2, "config": {"precision": "bf16", "mixup_alpha": None}}
    assert upgrade_record(today) == today

