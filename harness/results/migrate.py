"""Everything that exists only because earlier versions stored results differently.

Three things are kept readable: run ids (the rules below keep every stored run's id when the
same recipe is computed again), run records (``config.json``, upgraded to today's schema when
read) and run folders / index rows (summary fields and ``epochs.csv`` columns renamed since).

Record schema (``config.json["schema"]``):

* 1: no ``schema`` key, every record written before the key existed. Its ``config`` may lack
  fields added since (read as their defaults), may carry the pre-plugin augmentation fields
  ``mixup_alpha``, ``freq_masks``, ``time_masks``, ``freq_mask_width`` and ``time_mask_width``, and
  lacks ``precision`` when written before mixed precision existed (those runs trained in fp32).
* 2: ``schema: 2``; ``config`` is a resolved ``RunConfig.to_dict()`` of its version.

A change to what a record holds raises :data:`SCHEMA` and adds its step to :func:`upgrade_record`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.atomic import atomic_path, write_json

#: The schema version written into every new ``config.json``.
SCHEMA = 2

# -- run ids --------------------------------------------------------------------------------

#: Fields added after run ids were first issued: hashed only when they differ from their default.
HASHED_UNLESS_DEFAULT: dict[str, Any] = {"features": "dcase2019", "data_options": {}, "optimizer": "adam",
                                         "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0.0,
                                         "aug_options": {}, "dir_irs_identity": "", "teachers": []}
#: What run ids hashed for mixup and SpecAugment before augmentations were plugins: hashed as
#: before, so stored runs keep their ids; mixup's alpha and the mask counts are hashed here.
LEGACY_AUG_HASH: dict[str, Any] = {"mixup_alpha": 0.4, "freq_masks": 2, "freq_mask_width": None,
                                   "time_masks": 2, "time_mask_width": None}
LEGACY_AUG_KEYS = {("mixup", "alpha"): "mixup_alpha", ("spec", "freq_masks"): "freq_masks",
                   ("spec", "time_masks"): "time_masks"}
#: The dataset plugins that existed before plugins were named in the run id: the dataset identity
#: alone tells them apart, so their name stays out of the hash and stored run ids stay valid.
UNNAMED_DATASETS = (None, "synthetic", "tau2019", "tau2020-mobile")
#: Loss options hashed under their own keys, as the ``--alpha`` / ``--gamma`` fields were.
LOSS_KEYS = ("alpha", "gamma")


def stable_id_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """What the run id hashes, from a resolved config's hashed fields, spelled as the ids first
    issued spelled them: plugin options equal to their declared default, fp32, fields left at
    the default they had before they existed and the names of the first dataset plugins stay
    out; α and γ and mixup's alpha and the mask counts are hashed under their old field names."""
    from harness.registry import ARCHITECTURES, AUGMENTATIONS, LOSSES

    out = dict(fields)
    if out.get("precision") == "fp32":
        del out["precision"]
    out["arch_options"] = _non_default(ARCHITECTURES, out["arch"], out["arch_options"])
    out["loss_options"] = _non_default(LOSSES, out["loss"], out["loss_options"])
    for key in LOSS_KEYS:
        out[key] = out["loss_options"].pop(key, out.get(key))
    out.update(LEGACY_AUG_HASH)
    aug_options = {}
    for name, opts in out["aug_options"].items():
        changed = _non_default(AUGMENTATIONS, name, opts)
        for (aug, key), legacy in LEGACY_AUG_KEYS.items():
            if aug == name and key in changed:
                out[legacy] = changed.pop(key)
        if changed:
            aug_options[name] = changed
    out["aug_options"] = aug_options
    for name, default in HASHED_UNLESS_DEFAULT.items():
        if out.get(name) == default:
            del out[name]
    if out.get("dataset") in UNNAMED_DATASETS:
        del out["dataset"]
    if not out.get("audio") or out["audio"].get("exact", True):  # as stored: fixed by the identity
        del out["audio"]
    return out


def _non_default(registry: Any, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less those equal to the plugin's declared default."""
    defaults = registry.resolve_options(name, {})
    return {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}


# -- run records (config.json) ----------------------------------------------------------------

#: Schema-1 augmentation fields: (augmentation, option) each one set.
PRE_PLUGIN_AUG_FIELDS = {"mixup_alpha": ("mixup", "alpha"), "freq_masks": ("spec", "freq_masks"),
                         "time_masks": ("spec", "time_masks"), "freq_mask_width": None, "time_mask_width": None}


def upgrade_record(record: dict[str, Any]) -> dict[str, Any]:
    """A ``config.json`` payload of any schema, as today's schema spells it (a new dict)."""
    out = dict(record)
    version = int(out.get("schema", 1))
    if version < 2:
        out["config"] = _config_v1_to_v2(dict(out.get("config") or {}))
    out["schema"] = SCHEMA
    return out


def _config_v1_to_v2(config: dict[str, Any]) -> dict[str, Any]:
    """Pre-plugin augmentation fields become ``aug_options`` of the augmentations the run used
    (dropped where it used none: they were unused defaults); no ``precision`` means fp32."""
    augs = set(str(config.get("aug") or "none").split(","))
    options = {name: dict(opts) for name, opts in (config.get("aug_options") or {}).items()}
    for old, target in PRE_PLUGIN_AUG_FIELDS.items():
        value = config.pop(old, None)
        if target is None or value is None or target[0] not in augs:
            continue
        options.setdefault(target[0], {}).setdefault(target[1], value)
    if options:
        config["aug_options"] = options
    config.setdefault("precision", "fp32")
    return config


def read_record(path: str | Path) -> dict[str, Any]:
    """A run's ``config.json``, upgraded to today's schema. Raises what reading or JSON raises."""
    return upgrade_record(json.loads(Path(path).read_text()))


# -- run folders and index rows ---------------------------------------------------------------

#: Summary fields renamed since earlier versions: ``*_last10`` held the mean over the preset's
#: scoring window (5 epochs with ``quick``), whatever its length.
RENAMED = {"acc_last10": "acc_score", "unseen_last10": "unseen_score", "score_epochs": "score_window"}
#: Per-epoch columns renamed since earlier versions (prefixes and whole names).
RENAMED_EPOCH_PREFIXES = {"acc_city_": "acc_domain_", "acc_scene_": "acc_class_"}
RENAMED_EPOCH_COLUMNS = {"eval_loss": "log_loss"}


def upgrade_index(df: pd.DataFrame) -> pd.DataFrame:
    """Index rows written by earlier versions under today's column names (a column that grew
    across versions keeps each row's value, whichever name it was written under)."""
    for before, now in RENAMED.items():
        if before in df:
            df[now] = df[now].fillna(df[before]) if now in df else df[before]
            df = df.drop(columns=before)
    return df


def migrate_run(run_dir: Path) -> dict[str, Any]:
    """Bring one run folder to the current names, atomically; returns its summary.

    ``acc_last10`` / ``unseen_last10`` become ``acc_score`` / ``unseen_score`` with the window
    recorded as ``score_window``; ``epochs.csv`` columns ``acc_city_*``, ``acc_scene_*``,
    ``eval_loss`` become ``acc_domain_*``, ``acc_class_*``, ``log_loss``; ``scores`` (the window
    mean of every per-epoch metric) is computed from ``epochs.csv``; ``config.json`` is upgraded
    to today's schema. Idempotent.
    """
    from harness.metrics import window_scores

    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    epochs_path = run_dir / "epochs.csv"
    changed = False
    if epochs_path.exists():
        epochs = pd.read_csv(epochs_path)
        names = {c: RENAMED_EPOCH_COLUMNS.get(c, c) for c in epochs.columns}
        for old, new in RENAMED_EPOCH_PREFIXES.items():
            names = {c: (new + n[len(old):] if n.startswith(old) else n) for c, n in names.items()}
        if any(c != n for c, n in names.items()):
            epochs = epochs.rename(columns=names)
            with atomic_path(epochs_path) as tmp:
                epochs.to_csv(tmp, index=False)
        history = epochs.to_dict("records")
    else:
        history = []
    for old, new in RENAMED.items():
        if old in summary:
            summary[new] = summary.pop(old)
            changed = True
    if "scores" not in summary and history:
        window = int(summary.get("score_window") or len(history))
        summary["scores"] = window_scores(history, window)
        changed = True
    if changed:
        write_json(path, summary)
    record_path = run_dir / "config.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):  # no record, or one the readers report themselves
        return summary
    if isinstance(record, dict) and record.get("schema") != SCHEMA:
        write_json(record_path, upgrade_record(record))
    return summary
