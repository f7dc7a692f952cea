"""Flag groups shared by the commands, and the one mapping from parsed flags to a ``RunConfig``.

A run's settings are declared once, as ``RunConfig`` fields (``harness.runner.config.setting``):
their flags are built here from that declaration, and parsed flags become a ``RunConfig`` here.
An experiment file (``--config``), a grid row and a stored record (``--from``) are all read
through the same flags, so all three mean the same thing by the same name.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, Iterable

from harness.errors import ConfigError
from harness.options import split_pairs
from harness.runner.config import DATA, RunConfig


def split_aug_pairs(pairs: list[str] | None) -> dict[str, dict[str, str]]:
    """``--aug-opt NAME.KEY=VALUE`` pairs as ``{name: {key: value}}`` (typed later from the plugin's declaration)."""
    flat = split_pairs(pairs, "--aug-opt")
    out: dict[str, dict[str, str]] = {}
    for target, value in flat.items():
        name, dot, key = target.rpartition(".")
        if not dot or not name or not key:
            raise ConfigError(f"--aug-opt expects NAME.KEY=VALUE (e.g. freq-mixstyle.p=0.4), got {target}={value!r}")
        out.setdefault(name.strip(), {})[key.strip()] = value
    return out


# -- the run's settings as flags ------------------------------------------------------------

def settings() -> list[Field]:
    """The ``RunConfig`` fields that are flags, in declaration order."""
    return [f for f in fields(RunConfig) if "flag" in f.metadata]


def flag_name(f: Field) -> str:
    return f.metadata["flag"] or f.name.replace("_", "-")


def dest_of(f: Field) -> str:
    return flag_name(f).replace("-", "_")


#: ``argparse`` dest → ``RunConfig`` field, for every setting whose flag is named otherwise (``--mels``).
FIELD_OF_DEST = {dest_of(f): f.name for f in settings()}


def field_of(dest: str) -> str | None:
    """The ``RunConfig`` field a flag sets, or None for a flag that is no setting (``--subset``)."""
    return FIELD_OF_DEST.get(dest)


def _scalar_type(f: Field) -> type | None:
    text = str(f.type)
    if "dict" in text or "list" in text:
        return None
    return int if "int" in text else float if "float" in text else None


def _default(f: Field) -> Any:
    if f.name == "n_mels":  # the front end decides when --mels is not given
        return None
    if f.default is not MISSING:
        return f.default
    return None  # a repeatable flag: the list of its items, none given


def add_setting(group: argparse._ActionsContainer, f: Field, default: Any = MISSING, help: str | None = None) -> None:
    meta = f.metadata
    default = _default(f) if default is MISSING else default
    said = meta["default_text"] or (None if default is None else str(default))
    text = help or meta["help"] + (f" (default: {said})" if said else "")
    options = dict(meta["argparse"])
    kind = _scalar_type(f)
    if kind is not None and "choices" not in options:
        options["type"] = kind
    group.add_argument(f"--{flag_name(f)}", dest=dest_of(f), default=default, help=text, **options)


def add_run_options(p: argparse.ArgumentParser, *, only: Iterable[str] | None = None,
                    defaults: dict[str, Any] | None = None, helps: dict[str, str] | None = None,
                    skip: Iterable[str] = ()) -> None:
    """Every setting of a run as a flag, in its group; ``only`` (field names) for a command that
    takes some of them, ``defaults``/``helps`` (by field name) where a command's default differs."""
    defaults, helps = defaults or {}, helps or {}
    wanted = set(only) if only is not None else None
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in settings():
        if f.name in skip or (wanted is not None and f.name not in wanted) or f.metadata["group"] == DATA:
            continue
        group = groups.setdefault(f.metadata["group"], p.add_argument_group(f.metadata["group"]))
        add_setting(group, f, defaults.get(f.name, MISSING), helps.get(f.name))
    data = p.add_argument_group(DATA)
    add_data_options(data)
    for f in settings():
        if f.metadata["group"] == DATA and f.name not in ("data", "dataset", "data_options") and f.name not in skip \
                and (wanted is None or f.name in wanted):
            add_setting(data, f, defaults.get(f.name, MISSING), helps.get(f.name))
    add_output_options(data)
    if only is None:
        add_experiment_options(p)
        add_tracking_options(p)


def add_output_options(g: argparse._ActionsContainer) -> None:
    g.add_argument("--results", help="results folder (default: $HARNESS_RESULTS or ./results)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars (a line per epoch is still printed; the "
                                                              "per-batch bar shows only on a terminal anyway)")


def add_data_options(d: argparse._ActionsContainer) -> None:
    """``--data``, ``--dataset``, ``--subset``, ``--data-opt``: which data, read by which plugin."""
    by_name = {f.name: f for f in settings()}
    for name in ("data", "dataset"):
        add_setting(d, by_name[name])
    d.add_argument("--subset", help="a subset the dataset plugin defines: esc10 for esc50; 5|10|25|50|100 for "
                                    "tau2022-mobile (train on the DCASE 2024 split{N}.csv, score on test.csv; the "
                                    "split files' folder: --data-opt splits=DIR, default DATA/split_setup)")
    add_setting(d, by_name["data_options"])


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The dataset plugin's options from ``--subset`` and ``--data-opt``."""
    opts: dict[str, Any] = dict(split_pairs(getattr(args, "data_opt", None), "--data-opt"))
    if getattr(args, "subset", None):
        opts["subset"] = args.subset
    return opts


def open_data(args: argparse.Namespace, announce: bool = True, **override: Any):
    """The dataset the command line names, saying which layout was detected; ``override`` replaces
    plugin options (``harness grid --subset 5,10`` opens one dataset per subset)."""
    from harness.data.registry import open_dataset

    return open_dataset(args.data, dataset=args.dataset, progress=not args.no_progress, announce=announce,
                        **{**data_options(args), **override})


def config_from_args(args: argparse.Namespace, **extra: Any) -> RunConfig:
    """The ``RunConfig`` that parsed flags describe; a setting the command has no flag for keeps
    its default, ``extra`` sets fields that have no flag (``val_fraction``)."""
    values: dict[str, Any] = {}
    for f in settings():
        value = getattr(args, dest_of(f), None)
        if f.name == "arch_options" or f.name == "loss_options":
            value = split_pairs(value, f"--{flag_name(f)}")
        elif f.name == "aug_options":
            value = split_aug_pairs(value)
        elif f.name == "data_options":
            value = data_options(args)
        elif f.name == "teachers":
            value = list(value or [])
        elif value is None and f.default is not MISSING and f.default is not None:
            continue  # a command without this flag: the field's default
        values[f.name] = value
    if values.get("n_mels") is None:
        from harness.features.logmel import feature_preset

        values["n_mels"] = feature_preset(values.get("features") or RunConfig.features).n_mels
    return RunConfig(**{**values, **extra})


def recipe_parser() -> argparse.ArgumentParser:
    """A parser of every run setting: the keys of grid rows and of records read back (``--from``)."""
    p = argparse.ArgumentParser(prog="harness run", add_help=False)
    add_run_options(p)
    return p


# -- other shared groups -------------------------------------------------------------------

def add_experiment_options(p: argparse.ArgumentParser) -> None:
    e = p.add_argument_group("experiment files")
    e.add_argument("--config", metavar="FILE",
                   help="read options from a TOML file whose keys are this command's long flags (batch-size = 64, "
                        "arch-opt = {conv_impl = \"fused\"}); flags on the command line override it")
    e.add_argument("--dump-config", action="store_true",
                   help="print the options in effect as such a file and exit (nothing is trained)")


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    from harness.tracking import TRACKERS

    k = p.add_argument_group("tracking")
    k.add_argument("--track", action="append", choices=TRACKERS, metavar="TRACKER",
                   help=f"report the run as it trains: {' | '.join(TRACKERS)}, repeatable; tensorboard writes "
                        "results/runs/<id>/tb/, mlflow logs to --mlflow-uri")
    k.add_argument("--mlflow-uri", metavar="URI", help="MLflow tracking server, e.g. http://127.0.0.1:5000 (with --track mlflow)")
    k.add_argument("--mlflow-experiment", default="harness", help="MLflow experiment the runs go to (default: harness)")


def track_spec(args: argparse.Namespace):
    """What ``--track`` asked for, checked now (package installed, server reachable): before training."""
    from harness.tracking import TrackSpec

    spec = TrackSpec(tuple(dict.fromkeys(args.track or ())), args.mlflow_uri, args.mlflow_experiment)
    spec.check()
    return spec


def int_list(text: str, minimum: int = 0) -> tuple[int, ...]:
    """``"40,200"`` → ``(40, 200)``; a bad value becomes argparse's usage message."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= {minimum}, got {text!r}")
    return values


def mels_list(text: str) -> tuple[int, ...]:
    return int_list(text, minimum=1)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def require_results(results: Path) -> None:
    """Tables and reports read a results folder; a missing one is an error, never created empty."""
    if not results.is_dir():
        raise ConfigError(f"results folder {results} does not exist (nothing has been run into it); run `harness run` "
                          "or `harness grid` first, or point --results / $HARNESS_RESULTS at the folder that holds runs/")


def add_selection_options(p: argparse.ArgumentParser) -> None:
    """Which stored runs fill the tables; shared by ``table`` and ``report``."""
    from harness.report.tables import DEFAULT_MELS, DEFAULT_SEEDS
    from harness.data.registry import DEFAULT_DATA
    from harness.runner.config import PRESETS

    p.add_argument("--results", help="results folder (default: $HARNESS_RESULTS or ./results)")
    p.add_argument("--mels", type=mels_list, default=DEFAULT_MELS, metavar="N,N",
                   help="log-mel sizes to show, comma-separated (default: 40,200 as the paper)")
    p.add_argument("--seeds", type=int_list, default=DEFAULT_SEEDS, metavar="S,S",
                   help="seeds a complete cell needs; missing ones are listed with their command (default: 0,1 = the paper's 2 runs)")
    p.add_argument("--dataset", metavar=f"ID|{DEFAULT_DATA}|PATH",
                   help=f"use runs on this dataset: an identity (prefix) from the index, a dataset plugin that makes its "
                        f"own folder ('{DEFAULT_DATA}'), or a dataset folder (default: the dataset with most complete runs, "
                        "named in the output)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="use runs of this training preset (default: the one with most complete runs, named in the output)")
    p.add_argument("--unseen", choices=["official", "all"],
                   help="use runs scored with this unseen-domain protocol: official = unseen-domain clips of the official "
                        "test split, all = plus those in no split (the paper's, on TAU 2019) (default: the one with most runs)")
    p.add_argument("--stats", action=argparse.BooleanOptionalAction, default=True,
                   help="add the significance table: paired McNemar tests and bootstrap intervals against each variant's baseline row (default: on)")
