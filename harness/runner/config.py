"""``RunConfig``: every option of ``harness run``, resolved, validated and hashed into a run id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from harness.data.registry import DEFAULT_DATA
from harness.errors import ConfigError
from harness.options import check_number, format_value
from harness.results.migrate import stable_id_fields
from harness.features.logmel import FEATURE_PRESETS, FeatureConfig, feature_preset

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")

#: How a run trains when the user does not say: presets fill every option left at ``None``.
#: ``paper`` is the paper's set-up (Adam, lr 0.001 constant, 200 epochs, batch 32, score = mean
#: accuracy of the last 10 epochs); ``quick`` is the default on the synthetic data (a few minutes
#: on 2 CPU cores); ``dcase2024`` is the public DCASE 2024 Task 1 baseline's recipe (CPJKU
#: ``dcase2024_task1_baseline``: AdamW, weight decay 1e-4, peak lr 0.005 with warm-up and cosine
#: decay per step, batch 256, 150 epochs, Frequency-MixStyle p 0.4 α 0.3, waveform roll of up to
#: 0.1 s, one frequency mask of up to 48 of 256 bands, no time mask), meant for the
#: ``dcase2024-baseline`` architecture on ``--features dcase2024`` but usable with any.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"epochs": 200, "batch_size": 32, "lr": 1e-3, "score_last": 10, "optimizer": "adam",
              "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0.0, "aug": "none"},
    "quick": {"epochs": 30, "batch_size": 32, "lr": 1e-3, "score_last": 5, "optimizer": "adam",
              "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0.0, "aug": "none"},
    "dcase2024": {"epochs": 150, "batch_size": 256, "lr": 5e-3, "score_last": 10, "optimizer": "adamw",
                  "weight_decay": 1e-4, "schedule": "cosine",
                  # the baseline warms up over 2,000 steps: 3.7 epochs of the full training split at batch 256
                  "warmup_epochs": 4.0,
                  "aug": "freq-mixstyle,roll,spec",
                  "aug_options": {"freq-mixstyle": {"p": 0.4, "alpha": 0.3}, "roll": {"max_s": 0.1},
                                  "spec": {"freq_masks": 1, "freq_width": 0.1875, "time_masks": 0}}},
}

#: Fields that do not change what a run computes, so they stay out of the run id: the device, the
#: data's path (its identity is hashed instead) and the preset (its values are filled in), and why a precision was chosen.
NOT_HASHED = ("device", "data", "data_paths", "preset", "precision_reason", "dir_irs", "mixup_alpha")
#: Shorthand flags for loss options: ``--alpha X`` is ``--loss-opt alpha=X``, one setting that
#: lives in ``loss_options`` once resolved.
LOSS_SHORTHANDS = ("alpha", "gamma")

#: The largest seed: numpy's legacy seeding takes 32 bits.
MAX_SEED = 2**32 - 1


def setting(default: Any = None, help: str = "", *, flag: str | None = None, group: str = "what to train",
            default_text: str | None = None, factory: Any = None, **argparse_options: Any) -> Any:
    """A ``RunConfig`` field that is also a command-line flag: ``harness.flags`` builds the flag
    (name, type, default, help) from this, so a new setting needs no second edit.

    ``flag`` defaults to the field's name with dashes; ``default_text`` is what ``--help`` says
    the default is when the field's own default (``None``: "from the preset") does not say it;
    ``argparse_options`` go to ``add_argument`` as they are (``choices``, ``metavar``, ``action``).
    """
    meta = {"flag": flag, "help": help, "group": group, "default_text": default_text, "argparse": argparse_options}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


TRAIN, HOW, DATA = "what to train", "how to train", "data and results"


@dataclass
class RunConfig:
    """One training run. ``None`` means "take it from the preset"."""

    arch: str = setting("fcnn", "architecture name (see `harness list`), e.g. fcnn, subspectralnet, dcase-baseline, "
                                "timm/resnet18")
    loss: str = setting("ce", "loss name (see `harness list`): ce, triplet-city, triplet-random, triplet-device, ...")
    #: Comma-separated registered augmentations; preset: "none".
    aug: str | None = setting(None, "augmentations, comma-separated, e.g. freq-mixstyle,dir,roll or mixup,spec "
                                    "(see `harness list`)", default_text="from the preset, none")
    n_mels: int = setting(40, "log-mel bands: 40 or 200 in the paper", flag="mels",
                          default_text="the front end's, 40 for dcase2019, 256 for dcase2024")
    #: Shorthands for ``loss_options["alpha"]`` / ``["gamma"]``, folded into them by resolved().
    alpha: float | None = setting(None, "triplet margin α, short for --loss-opt alpha=X", default_text="0.2, triplet losses only")
    gamma: float | None = setting(None, "triplet weight γ, short for --loss-opt gamma=X", default_text="10, triplet losses only")
    epochs: int | None = setting(None, "epochs", group=HOW, default_text="from the preset")
    batch_size: int | None = setting(None, "batch size", group=HOW, default_text="from the preset, 32")
    lr: float | None = setting(None, "(peak) learning rate", group=HOW, default_text="from the preset, 0.001")
    seed: int = setting(0, "random seed", group=HOW)
    data: str = setting(DEFAULT_DATA, "dataset folder as distributed (its layout is detected and named), a manifest "
                                      f".csv, or '{DEFAULT_DATA}' for the embedded synthetic dataset", group=DATA)
    #: The dataset plugin; None = detected from ``data``. Filled in by :meth:`for_dataset`.
    dataset: str | None = setting(None, "read --data with this dataset plugin instead of detecting the layout "
                                        "(see `harness list --kind data`)", group=DATA, metavar="NAME")
    #: Options of the dataset plugin (``subset=esc10``); part of the run id.
    data_options: dict[str, Any] = setting(help="dataset plugin option, repeatable (see `harness list --kind data`)",
                                           flag="data-opt", group=DATA, factory=dict, action="append", metavar="KEY=VALUE")
    #: Dataset plugin options that are locations (``splits=DIR``): filled in by :meth:`for_dataset`
    #: from ``Dataset.paths``; not hashed (the files' contents are in the dataset identity).
    data_paths: dict[str, str] = field(default_factory=dict)
    #: None = the dataset's default protocol (fold1 on TAU, fold:1 on cross-validation data).
    split: str | None = setting(None, "the dataset's official holdout (fold1 on TAU), fold:K on cross-validation data "
                                      "(ESC-50, UrbanSound8K), leave-one-domain-out:DOMAIN (leave-one-city-out:CITY), or "
                                      "loco:DOMAIN (one fold of the leave-one-domain-out protocol, scored on every clip "
                                      "of the held-out domain)", group=DATA, default_text="the dataset's default: fold1, or fold:1")
    unseen: str = setting("official", "unseen-domain clips: official = those in the official test split; all = plus the "
                                      "unseen-domain clips in no split (TAU 2019: 410 vs 1,440 clips of the unseen city, "
                                      "the paper's protocol)", group=DATA, choices=["official", "all"])
    device: str = setting("auto", "auto | cpu | cuda | cuda:N (auto = GPU if present)", group=HOW)
    #: fp32 | bf16 | fp16 | auto (``harness.precision``); resolved to fp32, bf16 or fp16 (CUDA) by ``resolved()``.
    precision: str = setting("auto", "fp32, bf16 autocast (loss and optimiser state stay fp32), or fp16 autocast with "
                                     "loss scaling (CUDA only); auto = bf16 where the device has native bf16 and it was "
                                     "measured faster, fp16 on a GPU with fp16 tensor cores but no bf16, else fp32 "
                                     "(`harness env` shows the choice; docs/gpu.md)", group=HOW,
                             choices=["fp32", "bf16", "fp16", "auto"])
    precision_reason: str = ""
    preset: str = setting("quick", "paper: Adam lr 0.001 constant, 200 epochs, batch 32, score = mean of the last 10 epochs; "
                                   "quick: 30 epochs, score = mean of the last 5; dcase2024: the DCASE 2024 Task 1 baseline "
                                   "recipe (AdamW wd 1e-4, lr 0.005, 4 warm-up epochs + cosine, batch 256, 150 epochs, "
                                   "freq-mixstyle p 0.4 α 0.3, roll 0.1 s, one frequency mask)", group=HOW,
                          choices=sorted(PRESETS))
    #: Score = mean accuracy of the last N epochs (preset: 10 paper, 5 quick).
    score_last: int | None = setting(None, "score = mean accuracy over the last N epochs", group=HOW,
                                     default_text=f"from the preset: {PRESETS['paper']['score_last']} for paper, as the "
                                                  f"paper; {PRESETS['quick']['score_last']} for quick")
    #: Shorthand for ``aug_options["mixup"]["alpha"]``; folded into it by resolved().
    mixup_alpha: float | None = setting(None, "mixup Beta(α, α) parameter, short for --aug-opt mixup.alpha=X",
                                        default_text="0.4")
    optimizer: str | None = setting(None, "torch optimiser; sgd uses momentum 0.9", group=HOW, choices=OPTIMIZERS,
                                    default_text="from the preset, adam")
    weight_decay: float | None = setting(None, "weight decay (decoupled for adamw)", group=HOW, default_text="from the preset, 0")
    schedule: str | None = setting(None, "learning-rate schedule, stepped every batch: constant, cosine (to 0 at the end), "
                                         "step (×0.1 at 1/2 and 3/4 of the run)", group=HOW, choices=SCHEDULES,
                                   default_text="from the preset, constant")
    warmup_epochs: float | None = setting(None, "linear warm-up to --lr over this many epochs, before the schedule",
                                          group=HOW, default_text="from the preset, 0")
    #: Per-augmentation options, {name: {option: value}} (``--aug-opt NAME.KEY=VALUE``), typed and
    #: completed with each plugin's declared defaults by resolved().
    aug_options: dict[str, dict[str, Any]] = setting(
        help="augmentation option, repeatable, e.g. freq-mixstyle.p=0.5, dir.p=0.6, roll.max_s=0.2, mixup.alpha=0.4; "
             "typed from the augmentation's declaration (see `harness list`)", flag="aug-opt", factory=dict,
        action="append", metavar="NAME.KEY=VALUE")
    dir_irs: str | None = setting(None, "folder of device impulse-response WAVs (any rate and length) for --aug dir",
                                  default_text="a generated set of microphone-like EQs", metavar="DIR")
    #: Runs whose logits on the training clips are distilled into this one (``--teacher``): run ids,
    #: or ``best:ARCH`` (the best complete stored run of ARCH on the same dataset and split), which
    #: :func:`harness.runner.teacher.resolve_teachers` replaces by its run id before the run is hashed.
    teachers: list[str] = setting(help="stored run to distil from with --loss kd / kd-triplet-city (best:ARCH = the best "
                                       "complete stored ARCH run on this dataset and split); repeat for an ensemble "
                                       "(mean of the teachers' logits)", flag="teacher", factory=list, action="append",
                                  metavar="RUN_ID")
    #: "evaluate" scores on the test side of ``split``; "validation" on an inner validation
    #: split carved from train by location (what tuning uses: evaluate labels are never read).
    evaluate_on: str = "evaluate"
    val_fraction: float = 0.2
    hold_out_domain: str | None = None
    #: The named front end (``harness.features.logmel.FEATURE_PRESETS``); ``n_mels`` overrides its bands.
    features: str = setting("dcase2019", "front end: dcase2019 = the paper's (40 ms Hamming, 20 ms hop, magnitude, "
                                         "channels kept); dcase2024 = the DCASE 2024 Task 1 baseline's (32 kHz, 4096-point "
                                         "FFT, 3072-sample window, 500-sample hop, 256 mels, power, mono)",
                            choices=sorted(FEATURE_PRESETS))
    arch_options: dict[str, Any] = setting(help="architecture option, repeatable (see `harness list`)", flag="arch-opt",
                                           factory=dict, action="append", metavar="KEY=VALUE")
    loss_options: dict[str, Any] = setting(help="loss option, repeatable, e.g. normalize=false, band_weight=0.5; values "
                                                "are typed from the loss's declaration (see `harness list`)",
                                           flag="loss-opt", factory=dict, action="append", metavar="KEY=VALUE")
    #: Filled in by :meth:`for_dataset`: the dataset's identity hash (the audio, not its path) and the
    #: audio format its clips are converted to (rate, channels, length, pad rule).
    dataset_identity: str = ""
    audio: dict[str, Any] = field(default_factory=dict)
    #: Filled in by resolved() when ``dir`` is used: the impulse responses' content hash.
    dir_irs_identity: str = ""

    def resolved(self) -> "RunConfig":
        """A copy with preset defaults filled in and every value checked."""
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        cfg = replace(self, **{k: v for k, v in preset.items() if k != "aug_options" and getattr(self, k) is None})
        cfg.aug = normalize_aug(cfg.aug)
        if cfg.split and cfg.split.startswith("loco:"):
            cfg.unseen = "all"  # a loco fold scores every clip of its held-out domain
        merged = {name: dict(opts) for name, opts in preset.get("aug_options", {}).items() if name in cfg.augmentations}
        for name, opts in self.aug_options.items():
            merged.setdefault(name, {}).update(opts)
        cfg.aug_options = {name: merged[name] for name in sorted(merged)}
        cfg.teachers = list(self.teachers)
        cfg.validate()
        if cfg.precision == "auto" or not cfg.precision_reason:
            from harness.precision import resolve_precision
            from harness.runner.environment import resolve_device

            cfg.precision, cfg.precision_reason = resolve_precision(cfg.precision, resolve_device(cfg.device))
        cfg.resolve_plugin_options()
        if "dir" in cfg.augmentations and not cfg.dir_irs_identity:
            from harness.data.irs import generated_irs, ir_identity

            cfg.dir_irs_identity = ir_identity(cfg.dir_irs or generated_irs())
        return cfg

    def resolve_plugin_options(self) -> None:
        """Fold ``--alpha``/``--gamma`` into the loss options, then type every plugin option from
        its factory's declaration and fill in the declared defaults: one spelling, one run id."""
        from harness.registry import ARCHITECTURES, AUGMENTATIONS, LOSSES

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
        aug_options = {name: dict(opts) for name, opts in self.aug_options.items()}
        if self.mixup_alpha is not None:  # --mixup-alpha X is --aug-opt mixup.alpha=X
            if "mixup" not in self.augmentations:
                raise ConfigError(f"--mixup-alpha {format_value(self.mixup_alpha)} needs the mixup augmentation (--aug mixup)")
            given = aug_options.get("mixup", {}).get("alpha")
            if given is not None and (AUGMENTATIONS.resolve_options("mixup", {"alpha": given}, defaults=False)["alpha"]
                                      != float(self.mixup_alpha)):
                raise ConfigError(f"--mixup-alpha {format_value(self.mixup_alpha)} and --aug-opt mixup.alpha={given} set "
                                  "one option to two values; give one of them")
            aug_options.setdefault("mixup", {})["alpha"] = self.mixup_alpha
            self.mixup_alpha = None
        self.aug_options = {name: AUGMENTATIONS.resolve_options(name, aug_options.get(name, {}))
                            for name in sorted(self.augmentations)}

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
            ("--weight-decay", self.weight_decay, dict(minimum=0)),
            ("--warmup-epochs", self.warmup_epochs, dict(minimum=0)),
        ]
        for flag, value, rules in numbers:
            check_number(flag, value, **rules)
        checks = [
            (self.unseen in ("official", "all"), f"--unseen must be 'official' or 'all', got {self.unseen!r}"),
            (self.evaluate_on in ("evaluate", "validation"), f"evaluate_on must be 'evaluate' or 'validation', got {self.evaluate_on!r}"),
            (self.features in FEATURE_PRESETS, f"--features must be one of {', '.join(FEATURE_PRESETS)}, got {self.features!r}"),
            (self.optimizer is None or self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.schedule is None or self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.epochs is None or not self.warmup_epochs or self.warmup_epochs < self.epochs,
             f"--warmup-epochs ({format_value(self.warmup_epochs)}) must be shorter than the run ({self.epochs} epochs)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        stray = sorted(set(self.aug_options) - self.augmentations)
        if stray:
            raise ConfigError(f"--aug-opt names augmentation {stray[0]!r}, which is not in --aug {self.aug!r}")
        if self.dir_irs is not None and "dir" not in self.augmentations:
            raise ConfigError(f"--dir-irs {self.dir_irs} needs the dir augmentation (--aug dir)")

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
        return set() if self.aug in (None, "none") else set(self.aug.split(","))

    def hashed_fields(self) -> dict[str, Any]:
        """What the run id hashes, of a resolved config: every field that changes the result, less
        the options that only choose an implementation, spelled by :func:`stable_id_fields` as
        stored runs were hashed, so their ids stay valid."""
        out = {k: v for k, v in asdict(self).items() if k not in NOT_HASHED}
        how = implementation_options(self.arch)
        out["arch_options"] = {k: v for k, v in out["arch_options"].items() if k not in how}
        return stable_id_fields(out)

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
    from harness.registry import AUGMENTATIONS

    parts = sorted({p.strip() for p in aug.split(",") if p.strip()} - {"none"})
    for p in parts:
        AUGMENTATIONS.get(p)  # a one-line error naming the closest known augmentation
    return ",".join(parts) if parts else "none"
