"""Experiments as files (``--config``), and reruns from a stored record (``--from``)."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import build_parser, main
from harness.flags import config_from_args
from harness.experiment import flag_keys, given_dests, merge
from harness.rerun import Record, differences

RUN_FLAGS = ["--arch", "subspectralnet", "--loss", "triplet-city", "--aug", "spec", "--mels", "40", "--alpha", "0.3",
             "--gamma", "5", "--epochs", "2", "--batch-size", "16", "--lr", "0.002", "--seed", "4",
             "--arch-opt", "dropout=0.25", "--loss-opt", "normalize=false", "--unseen", "all", "--no-progress"]


def run_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def dumped(argv: list[str], capsys) -> dict:
    assert main(["run", *argv, "--dump-config"]) == 0
    return tomllib.loads(capsys.readouterr().out)


def config_of(argv: list[str]):
    args = run_parser().parse_args(argv)
    cfg = config_from_args(args)
    cfg.dataset_identity = "fixed"
    return cfg.resolved()


def test_every_flag_is_a_key_and_dump_round_trips(tmp_path: Path, capsys) -> None:
    keys = flag_keys(run_parser())
    for flag in ("arch", "arch-opt", "batch-size", "mels", "seed", "split", "track", "mlflow-uri", "no-progress"):
        assert flag in keys
    assert not {"config", "from", "dump-config", "help"} & set(keys)
    text = dumped(RUN_FLAGS, capsys)
    assert text["arch-opt"] == {"dropout": 0.25} and text["loss-opt"] == {"normalize": False}
    path = tmp_path / "exp.toml"
    assert main(["run", *RUN_FLAGS, "--dump-config"]) == 0
    path.write_text(capsys.readouterr().out)
    again = dumped(["--config", str(path)], capsys)
    assert again == text
    from_file = run_parser().parse_args([])
    from_file = merge(run_parser(), from_file, set(), tomllib.loads(path.read_text()), str(path))
    cfg_file = config_from_args(from_file)
    cfg_file.dataset_identity = "fixed"
    assert cfg_file.resolved().run_id() == config_of(RUN_FLAGS).run_id()


def test_command_line_overrides_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('arch = "fcnn"\nseed = 2\nepochs = 5\nbatch_size = 8\n'
                    'arch-opt = {conv_impl = "reference", dropout = 0.1}\n')
    out = dumped(["--config", str(path), "--seed", "7", "--arch-opt", "conv_impl=dense"], capsys)
    assert out["seed"] == 7 and out["epochs"] == 5 and out["batch-size"] == 8  # underscores read as dashes
    assert out["arch-opt"] == {"conv_impl": "dense", "dropout": 0.1}  # per key: the command line wins
    # A flag given with the parser's default value still wins over the file.
    assert dumped(["--config", str(path), "--seed", "0"], capsys)["seed"] == 0


@pytest.mark.parametrize("text, needles", [
    ("epoch = 3\n", ["unknown key 'epoch'", "did you mean 'epochs'"]),
    ("batchsize = 3\n", ["unknown key 'batchsize'", "'batch-size'"]),
    ('mels = "many"\n', ["--mels", "many"]),
    ('preset = "fast"\n', ["--preset", "fast"]),
    ("no-progress = 1\n", ["no-progress", "true or false"]),
    ("seed = [\n", ["not valid TOML"]),
])
def test_bad_files_are_one_line_errors(text: str, needles: list[str], tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    assert main(["run", "--config", str(path), "--dump-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and err.count("\n") == 0, err
    for needle in needles:
        assert needle in err, err


def test_missing_file_and_yaml(tmp_path: Path, capsys) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml"), "--dump-config"]) == 2
    assert "not found" in capsys.readouterr().err
    path = tmp_path / "exp.yaml"
    path.write_text("arch: dcase-baseline\nseed: 3\n")
    out = dumped(["--config", str(path)], capsys)
    assert out["arch"] == "dcase-baseline" and out["seed"] == 3


def test_a_new_flag_is_a_key_without_other_changes() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args(["--epochs", "3"])
    merged = merge(parser, args, given_dests(parser, ["--epochs", "3"]), {"precision": "bf16", "epochs": 9}, "f.toml")
    assert merged.precision == "bf16" and merged.epochs == 3


def test_record_from_another_version_says_what_differs(tmp_path: Path) -> None:
    from harness import __version__
    from harness.runner.config import RunConfig

    config = RunConfig().to_dict()
    config.pop("mixup_alpha")
    config["warmup"] = 5
    record = Record(tmp_path / "config.json", "x", config, {"harness": "0.0.1", "packages": {"torch": "1.0.0"}})
    notes = "\n".join(differences(record))
    assert "warmup=5" in notes and "does not exist" in notes
    assert "'mixup_alpha' did not exist" in notes
    assert f"harness 0.0.1, this is {__version__}" in notes and "torch 1.0.0" in notes
    assert differences(Record(tmp_path, "x", RunConfig().to_dict(), {"harness": __version__})) == []


def test_from_unknown_run_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "runs" / "fcnn-ce-none-m40-s0-abc").mkdir(parents=True)
    (tmp_path / "runs" / "fcnn-ce-none-m40-s0-abc" / "config.json").write_text("{}")
    assert main(["run", "--results", str(tmp_path), "--from", "fcnn-ce-none-m40-s0-abd", "--dump-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'fcnn-ce-none-m40-s0-abc'" in err and "\n" not in err
    assert main(["run", "--results", str(tmp_path), "--from", "fcnn-ce-none-m40-s0-abc", "--dump-config"]) == 2
    assert "not a run record" in capsys.readouterr().err


# -- end to end ---------------------------------------------------------------------------------
def train_args(data: Path, results: Path) -> list[str]:
    return ["--data", str(data), "--results", str(results), "--epochs", "1", "--batch-size", "16",
            "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_flags_file_and_record_give_the_same_run(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    flags = ["--arch", "dcase-baseline", "--aug", "spec", "--seed", "3", *train_args(tiny_synth, tmp_path / "a")]
    assert main(["run", *flags]) == 0
    (first,) = pd.read_csv(tmp_path / "a" / "index.csv")["run_id"]
    capsys.readouterr()
    assert main(["run", *flags, "--dump-config"]) == 0
    path = tmp_path / "exp.toml"
    path.write_text(capsys.readouterr().out)
    # From the file, into another store: trained again, same run id, same numbers.
    assert main(["run", "--config", str(path), "--results", str(tmp_path / "b")]) == 0
    (second,) = pd.read_csv(tmp_path / "b" / "index.csv")["run_id"]
    assert second == first
    metrics = ["train_loss", "acc", "unseen_acc", "log_loss"]
    a = pd.read_csv(tmp_path / "a" / "runs" / first / "epochs.csv")[metrics]
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "b" / "runs" / first / "epochs.csv")[metrics])
    # From the record, into a third store: same id and metrics.
    capsys.readouterr()
    assert main(["run", "--from", str(tmp_path / "a" / "runs" / first), "--results", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().err
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "c" / "runs" / first / "epochs.csv")[metrics])
    # With another seed: a new run whose configuration is the record's but for the seed.
    assert main(["run", "--from", first, "--results", str(tmp_path / "a"), "--seed", "4"]) == 0
    index = pd.read_csv(tmp_path / "a" / "index.csv")
    (other,) = set(index["run_id"]) - {first}
    old = json.loads((tmp_path / "a" / "runs" / first / "config.json").read_text())["config"]
    new = json.loads((tmp_path / "a" / "runs" / other / "config.json").read_text())["config"]
    assert {k for k in old if old[k] != new[k]} == {"seed"} and new["seed"] == 4


# -- grid files -----------------------------------------------------------------------------------
def test_table1_is_a_shipped_grid_file(capsys) -> None:
    from importlib.resources import files

    from harness.grids.variants import TABLE1_GRID, VARIANTS

    assert TABLE1_GRID == files("harness") / "grids" / "table1.toml"
    shipped = tomllib.loads(TABLE1_GRID.read_text())
    assert [row["name"] for row in shipped["variant"]] == [v.name for v in VARIANTS]
    assert main(["grid", "--dump-config"]) == 0
    dumped_grid = tomllib.loads(capsys.readouterr().out)
    assert dumped_grid["variant"] == shipped["variant"] and dumped_grid["mels"] == [40, 200]


MY_GRID = """
mels = [40]
seeds = 1
lr = 0.0005
epochs = 4
[[variant]]
name = "small"
arch = "fcnn"
arch-opt = {channels = [8, 8]}
[[variant]]
name = "small-triplet"
arch = "fcnn"
loss = "triplet-city"
alpha = 0.5
epochs = 6
arch-opt = {channels = [8, 8]}
baseline = "small"
"""


@pytest.mark.parametrize("text, needles", [
    (MY_GRID + "lrr = 1\n", ["unknown key 'lrr'", "'lr'"]),
    (MY_GRID.replace("alpha = 0.5", "alpah = 0.5"), ["unknown key 'alpah'", "'alpha'"]),
    (MY_GRID.replace("alpha = 0.5", "seed = 3"), ["'seed' is an axis"]),
    (MY_GRID.replace('baseline = "small"', 'baseline = "big"'), ["baseline 'big'"]),
    (MY_GRID.replace('alpha = 0.5', 'aug = "cutout"'), ["cutout"]),
    (MY_GRID.replace('name = "small-triplet"', 'name = "small"'), ["listed twice"]),
])
def test_bad_grid_files_are_one_line_errors(text: str, needles: list[str], tmp_path: Path, capsys) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    assert main(["grid", "--config", str(path), "--dry-run", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.slow
def test_a_copied_and_edited_grid_runs_its_variants(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    from harness.data.registry import open_dataset
    from harness.runner.config import RunConfig

    path = tmp_path / "grid.toml"
    path.write_text(MY_GRID)
    argv = ["grid", "--config", str(path), "--data", str(tiny_synth), "--results", str(tmp_path), "--device", "cpu",
            "--no-progress"]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    ds = open_dataset(str(tiny_synth), progress=False)

    def run_id(**kw) -> str:
        base = dict(arch="fcnn", n_mels=40, seed=0, lr=0.0005, data=str(tiny_synth), device="cpu",
                    arch_options={"channels": [8, 8]})
        return RunConfig(**{**base, **kw}).for_dataset(ds).resolved().run_id()

    assert "2 runs (2 variants × 1 mel settings × 1 seeds)" in out
    assert run_id(epochs=4) in out and run_id(loss="triplet-city", alpha=0.5, epochs=6) in out
    # Flags on the command line override the file and the rows' own keys.
    assert main([*argv, "--dry-run", "--epochs", "1", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert run_id(epochs=1, batch_size=16) in out
    assert run_id(loss="triplet-city", alpha=0.5, epochs=1, batch_size=16) in out
