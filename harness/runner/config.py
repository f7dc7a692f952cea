"""``RunConfig``: every option of ``harness run``, resolved, validated and hashed into a run id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from harness.errors import ConfigError
from harness.options import check_number, format_value
from harness.features.logmel import FEATURE_PRESETS, FeatureConfig, feature_preset

AUGMENTATIONS = ("none", "mixup", "spec", "mixup,spec")

#: Presets fill the options a user did not set. ``paper`` is the paper's set-up (Adam, lr 0.001,
#: 200 epochs, score = mean accuracy of the last 10 epochs); ``quick`` is the default on the
#: synthetic data: a few minutes on 2 CPU cores.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"epochs": 200, "batch_size": 32, "lr": 1e-3, "score_last": 10},
    "quick": {"epochs": 30, "batch_size": 32, "lr": 1e-3, "score_last": 5},
}

#: Fields that do not change what a run computes, so they stay out of the run id: the device, the
#: data's path (its identity is hashed instead) and the preset (its values are filled in), and why a precision was chosen.
NOT_HASHED = ("device", "data", "data_paths", "preset", "precision_reason")
#: Fields added after run ids were first issued: hashed only when they differ from their default.
HASHED_UNLESS_DEFAULT: dict[str, Any] = {"features": "dcase2019", "data_options": {}}
#: The dataset plugins that existed before plugins were named in the run id: the dataset identity
#: alone tells them apart, so their name stays out of the hash and stored run ids stay valid.
UNNAMED_DATASETS = (None, "synthetic", "tau2019", "tau2020-mobile")

#: Shorthand flags for loss options: ``--alpha X`` is ``--loss-opt alpha=X``, one setting that
#: lives in ``loss_options`` once resolved.
LOSS_SHORTHANDS = ("alpha", "gamma")

#: The largest seed: numpy's legacy seeding takes 32 bits.
MAX_SEED = 2**32 - 1


@dataclass
class RunConfig:
    """One training run. ``None`` means "take it from the preset"."""

    arch: str = "fcnn"
    loss: str = "ce"
    aug: str = "none"
    n_mels: int = 40
    alpha: float | None = None  # shorthand for loss_options["alpha"]; folded into it by resolved()
    gamma: float | None = None  # shorthand for loss_options["gamma"]
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    data: str = "synthetic"
    #: The dataset plugin; None = detected from ``data``. Filled in by :meth:`for_dataset`.
    dataset: str | None = None
    #: Options of the dataset plugin (``subset=esc10``); part of the run id.
    data_options: dict[str, Any] = field(default_factory=dict)
    #: Dataset plugin options that are locations (``splits=DIR``): filled in by :meth:`for_dataset`
    #: from ``Dataset.paths``; not hashed (the files' contents are in the dataset identity).
    data_paths: dict[str, str] = field(default_factory=dict)
    #: None = the dataset's default protocol (fold1 on TAU, fold:1 on cross-validation data).
    split: str | None = None
    unseen: str = "official"
    device: str = "auto"
    #: fp32 | bf16 | auto (``harness.precision``); resolved to fp32 or bf16 by ``resolved()``.
    precision: str = "auto"
    precision_reason: str = ""
    preset: str = "quick"
    score_last: int | None = None  # score = mean accuracy of the last N epochs (preset: 10 paper, 5 quick)
    mixup_alpha: float = 0.4
    freq_masks: int = 2
    freq_mask_width: int | None = None  # None: n_mels // 8
    time_masks: int = 2
    time_mask_width: int | None = None  # None: n_frames // 10
    #: "evaluate" scores on the test side of ``split``; "validation" on an inner validation
    #: split carved from train by location (what tuning uses: evaluate labels are never read).
    evaluate_on: str = "evaluate"
    val_fraction: float = 0.2
    hold_out_domain: str | None = None
    #: The named front end (``harness.features.logmel.FEATURE_PRESETS``); ``n_mels`` overrides its bands.
    features: str = "dcase2019"
    arch_options: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, Any] = field(default_factory=dict)
    #: Filled in by :meth:`for_dataset`: the dataset's identity hash (the audio, not its path) and the
    #: audio format its clips are converted to (rate, channels, length, pad rule).
    dataset_identity: str = ""
    audio: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> "RunConfig":
        """A copy with preset defaults filled in and every value checked."""
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        cfg = replace(self, **{k: v for k, v in PRESETS[self.preset].items() if getattr(self, k) is None})
        cfg.aug = normalize_aug(cfg.aug)
        if cfg.split and cfg.split.startswith("loco:"):
            cfg.unseen = "all"  # a loco fold scores every clip of its held-out domain
        cfg.validate()
        if cfg.precision == "auto" or not cfg.precision_reason:
            from harness.precision import resolve_precision
            from harness.runner.environment import resolve_device

            cfg.precision, cfg.precision_reason = resolve_precision(cfg.precision, resolve_device(cfg.device))
        cfg.resolve_plugin_options()
        return cfg

    def resolve_plugin_options(self) -> None:
        """Fold ``--alpha``/``--gamma`` into the loss options, then type every plugin option from
        its factory's declaration and fill in the declared defaults: one spelling, one run id."""
        from harness.registry import ARCHITECTURES, LOSSES

        loss_options = dict(self.loss_options)
        for key in LOSS_SHORTHANDS:
            short = getattr(self, key)
            if short is None:
                continue
            given = loss_options.get(key)
            if given is not None:
                typed = LOSSES.resolve_options(self.loss, {key: given}, defaults=False)[key]
                if typed != LOSSES.resolve_options(self.loss, {key: short}, defaults=False)[key]:
                    raise ConfigError(f"--{key} {format_value(short)} and --loss-opt {key}={given} set one option to "
                                      "two values; give one of them")
            loss_options[key] = short
            setattr(self, key, None)
        self.loss_options = LOSSES.resolve_options(self.loss, loss_options)
        self.arch_options = ARCHITECTURES.resolve_options(self.arch, self.arch_options)

    def validate(self) -> None:
        """Every numeric setting range-checked (finite, integral where it counts) before anything is written."""
        numbers = [
            ("--mels", self.n_mels, dict(integer=True, minimum=1)),
            ("--epochs", self.epochs, dict(integer=True, minimum=1)),
            ("--batch-size", self.batch_size, dict(integer=True, minimum=2)),
            ("--lr", self.lr, dict(above=0)),
            ("--seed", self.seed, dict(integer=True, minimum=0, maximum=MAX_SEED)),
            ("--alpha", self.alpha, dict(minimum=0)),
            ("--gamma", self.gamma, dict(minimum=0)),
            ("--score-last", self.score_last, dict(integer=True, minimum=1)),
            ("--mixup-alpha", self.mixup_alpha, dict(above=0)),
            ("--val-fraction", self.val_fraction, dict(above=0, below=1)),
            ("freq_masks", self.freq_masks, dict(integer=True, minimum=0)),
            ("time_masks", self.time_masks, dict(integer=True, minimum=0)),
            ("freq_mask_width", self.freq_mask_width, dict(integer=True, minimum=1)),
            ("time_mask_width", self.time_mask_width, dict(integer=True, minimum=1)),
        ]
        for flag, value, rules in numbers:
            check_number(flag, value, **rules)
        checks = [
            (self.unseen in ("official", "all"), f"--unseen must be 'official' or 'all', got {self.unseen!r}"),
            (self.evaluate_on in ("evaluate", "validation"), f"evaluate_on must be 'evaluate' or 'validation', got {self.evaluate_on!r}"),
            (self.features in FEATURE_PRESETS, f"--features must be one of {', '.join(FEATURE_PRESETS)}, got {self.features!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def for_dataset(self, ds) -> "RunConfig":
        """A copy bound to a loaded dataset: its plugin name, identity, options as the plugin normalised
        them (defaults left out), audio format and (if unset) default split.

        The split spec is checked against the dataset here, before any training.
        """
        from harness.data.splits import make_split

        cfg = replace(self, dataset=ds.name, dataset_identity=ds.identity, data_options=dict(ds.options),
                      data_paths=dict(ds.paths), audio=ds.audio.to_dict(), split=self.split or ds.protocols.default_split)
        make_split(ds, cfg.split, unseen=cfg.unseen)
        return cfg

    @property
    def augmentations(self) -> set[str]:
        return set() if self.aug == "none" else set(self.aug.split(","))

    def hashed_fields(self) -> dict[str, Any]:
        """What the run id hashes, of a resolved config. Plugin options equal to their declared
        default and fp32 stay out, and α/γ are hashed under their own keys, so runs stored before
        options were typed and resolved (or before ``--precision`` existed) keep their ids."""
        from harness.registry import ARCHITECTURES, LOSSES

        skip = NOT_HASHED + (("precision",) if self.precision == "fp32" else ())
        out = {k: v for k, v in asdict(self).items() if k not in skip}
        how = implementation_options(self.arch)
        out["arch_options"] = _non_default(ARCHITECTURES, self.arch,
                                           {k: v for k, v in out["arch_options"].items() if k not in how})
        out["loss_options"] = _non_default(LOSSES, self.loss, out["loss_options"])
        for key in LOSS_SHORTHANDS:
            out[key] = out["loss_options"].pop(key, out[key])
        for name, default in HASHED_UNLESS_DEFAULT.items():  # run ids from before these fields existed stay valid
            if out.get(name) == default:
                del out[name]
        if out.get("dataset") in UNNAMED_DATASETS:
            del out["dataset"]
        if not out.get("audio") or out["audio"].get("exact", True):  # as stored: fixed by the identity
            del out["audio"]
        return out

    def feature_config(self) -> FeatureConfig:
        return feature_preset(self.features, self.n_mels)

    def run_id(self) -> str:
        """Readable prefix + hash of everything that changes the result (not device or path)."""
        blob = json.dumps(self.hashed_fields(), sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        aug = self.aug.replace(",", "+")
        arch = self.arch.replace("/", "_")
        prec = "" if self.precision == "fp32" else f"-{self.precision}"
        return f"{arch}-{self.loss}-{aug}-m{self.n_mels}{prec}-s{self.seed}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _non_default(registry: Any, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less those equal to the plugin's declared default."""
    defaults = registry.resolve_options(name, {})
    return {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}


def implementation_options(arch: str) -> tuple[str, ...]:
    """Options of ``arch`` that choose an implementation of the same function (a factory's
    ``implementation_options``, e.g. FCNN's ``conv_impl``): they stay out of the run id."""
    from harness.registry import ARCHITECTURES

    try:
        plugin, _ = ARCHITECTURES.get(arch)
    except ConfigError:
        return ()
    return tuple(getattr(plugin.factory, "implementation_options", ()))


def normalize_aug(aug: str) -> str:
    """Accept ``spec,mixup`` as ``mixup,spec``; reject unknown augmentations in one line."""
    parts = sorted({p.strip() for p in aug.split(",") if p.strip()} - {"none"})
    unknown = [p for p in parts if p not in ("mixup", "spec")]
    if unknown:
        raise ConfigError(f"unknown augmentation {unknown[0]!r} in --aug {aug!r}; choose from {', '.join(AUGMENTATIONS)}")
    return ",".join(parts) if parts else "none"
