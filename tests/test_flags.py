"""A run's settings are declared once (``RunConfig`` fields) and every command reads them through
``harness.flags``: each setting is a flag of ``harness run``, parsing it sets that field, and a
stored record turns back into the same flags."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from harness.cli import build_parser
from harness.experiment import flag_keys
from harness.flags import config_from_args, dest_of, field_of, flag_name, recipe_parser, settings
from harness.rerun import record_flags
from harness.runner.config import RunConfig


def command(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def sample(f) -> tuple[list[str], object]:
    """A command line for field ``f`` and the value the field must then hold."""
    meta = f.metadata["argparse"]
    flag = f"--{flag_name(f)}"
    if "choices" in meta:
        value = [c for c in meta["choices"] if c != f.default][0]
        return [flag, value], value
    text = str(f.type)
    if f.name == "aug_options":
        return [flag, "mixup.alpha=0.3"], {"mixup": {"alpha": "0.3"}}
    if "dict" in text:
        return [flag, "k=v"], {"k": "v"}
    if "list" in text:
        return [flag, "run-a", flag, "run-b"], ["run-a", "run-b"]
    if "int" in text:
        return [flag, "7"], 7
    if "float" in text:
        return [flag, "0.25"], 0.25
    return [flag, "some-value"], "some-value"


@pytest.mark.parametrize("f", settings(), ids=lambda f: f.name)
def test_every_setting_is_a_flag_that_sets_its_field(f) -> None:
    argv, expected = sample(f)
    cfg = config_from_args(command("run").parse_args(argv))
    assert getattr(cfg, f.name) == expected
    assert field_of(dest_of(f)) == f.name


def test_settings_without_a_flag_are_the_recorded_ones() -> None:
    """Fields with no flag are filled in by the runner (identity, resolved reasons, tuning's split)."""
    no_flag = {f.name for f in fields(RunConfig)} - {f.name for f in settings()}
    assert no_flag == {"data_paths", "precision_reason", "evaluate_on", "val_fraction", "hold_out_domain",
                       "dataset_identity", "audio", "dir_irs_identity"}


def test_run_tune_and_grid_rows_share_the_settings() -> None:
    run, tune, rows = flag_keys(command("run")), flag_keys(command("tune")), flag_keys(recipe_parser())
    names = {flag_name(f) for f in settings()}
    assert names <= set(run) and names <= set(tune) and names <= set(rows)
    grid = flag_keys(command("grid"))
    for shared in ("preset", "epochs", "batch-size", "lr", "device", "precision", "unseen", "data", "data-opt"):
        assert shared in grid and grid[shared].help == run[shared].help or shared == "device"


def test_a_record_turns_back_into_the_same_configuration() -> None:
    argv = ["--arch", "subspectralnet", "--loss", "triplet-city", "--aug", "mixup,spec", "--mels", "200",
            "--alpha", "0.5", "--epochs", "3", "--seed", "2", "--arch-opt", "dropout=0.1", "--teacher", "x",
            "--aug-opt", "mixup.alpha=0.2", "--optimizer", "sgd", "--unseen", "all"]
    cfg = config_from_args(command("run").parse_args(argv))
    keys = record_flags(cfg, recipe_parser())
    again = []
    for key, value in keys.items():
        if isinstance(value, dict):
            items = [f"{n}.{k}={v}" for n, opts in value.items() for k, v in opts.items()] if key == "aug-opt" \
                else [f"{k}={v}" for k, v in value.items()]
        else:
            items = value if isinstance(value, list) else [value]
        for item in items:
            again += [f"--{key}", str(item)]
    assert config_from_args(command("run").parse_args(again)) == cfg


def test_mels_defaults_to_the_front_end() -> None:
    assert config_from_args(command("run").parse_args([])).n_mels == 40
    assert config_from_args(command("run").parse_args(["--features", "dcase2024"])).n_mels == 256
