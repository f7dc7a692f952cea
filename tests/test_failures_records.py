"""Damaged records and hostile input files end in one line naming the file, never a traceback.

Every reader of a stored record (``config.json``, ``summary.json``, ``preprocessing.json``) goes
through ``harness.results.records.load_record``; experiment files are refused before they are read
when they are not a regular file of sane size, and their keys must be names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.results.records import load_record
from harness.errors import DataError

from test_failures import TINY_RUN, one_line_error


@pytest.fixture(scope="module")
def completed(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A results folder holding one complete tiny run, and its run id."""
    results = tmp_path_factory.mktemp("complete-results")
    assert main(["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN, "--precision", "fp32"]) == 0
    (run_dir,) = (results / "runs").iterdir()
    return results, run_dir.name


@pytest.fixture
def copy(completed: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A private copy of the complete run's results folder, to damage."""
    results, run_id = completed
    shutil.copytree(results, tmp_path / "results")
    return tmp_path / "results", run_id


def truncate(path: Path) -> None:
    path.write_text(path.read_text()[: len(path.read_text()) // 2])


DAMAGES = {"truncated": truncate, "array": lambda p: p.write_text("[1, 2]\n"), "empty": lambda p: p.write_text(""),
           "string": lambda p: p.write_text('"x"\n')}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("record", ["summary.json", "config.json", "preprocessing.json"])
def test_predict_and_export_on_a_damaged_record(record: str, damage: str, copy, tiny_synth: Path, capsys) -> None:
    results, run_id = copy
    DAMAGES[damage](results / "runs" / run_id / record)
    for argv in (["predict", run_id, "--data", str(tiny_synth), "--no-progress"], ["export", run_id, "--format", "torchscript"]):
        assert main([*argv, "--results", str(results)]) == 2
        one_line_error(capsys, str(results / "runs" / run_id / record), "damaged")


@pytest.mark.parametrize("record, what", [("config.json", "damaged run record"), ("summary.json", "damaged run summary")])
@pytest.mark.parametrize("damage", ["truncated", "array"])
def test_evaluate_on_a_damaged_record(damage: str, record: str, what: str, copy, capsys) -> None:
    results, run_id = copy
    DAMAGES[damage](results / "runs" / run_id / record)
    assert main(["evaluate", run_id, "--precision", "fp16", "--results", str(results), "--no-progress"]) == 2
    one_line_error(capsys, record, what)


@pytest.mark.parametrize("damage", ["truncated", "array"])
def test_rerun_from_a_damaged_config(damage: str, copy, capsys) -> None:
    results, run_id = copy
    DAMAGES[damage](results / "runs" / run_id / "config.json")
    assert main(["run", "--from", run_id, "--results", str(results), "--dump-config"]) == 2
    one_line_error(capsys, "config.json", "damaged run record")


@pytest.mark.slow
def test_reindex_and_the_same_run_on_a_damaged_summary(copy, tiny_synth: Path, capsys) -> None:
    results, run_id = copy
    truncate(results / "runs" / run_id / "summary.json")
    assert main(["table", "--reindex", "--results", str(results)]) == 2
    one_line_error(capsys, "summary.json", "damaged run summary")
    argv = ["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN, "--precision", "fp32"]
    assert main(argv) == 2  # asked for again: refused, not taken for incomplete and silently retrained
    one_line_error(capsys, "summary.json", "damaged")
    assert main([*argv, "--force"]) == 0  # --force retrains over it
    assert load_record(results / "runs" / run_id / "summary.json")["status"] == "complete"


def test_a_record_missing_a_key_or_of_the_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"config": [1]}')
    with pytest.raises(DataError, match="'config' is an array, expected an object"):
        load_record(path, "run record", {"config": dict})
    path.write_text('{"other": 1}')
    with pytest.raises(DataError, match="no 'config'"):
        load_record(path, "run record", {"config": dict})


# -- experiment files --------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["1: 2\n", "null: x\n", "epochs: 1\n3.5: x\n", "arch-opt: {1: 2}\n"])
def test_yaml_experiment_file_with_a_key_that_is_not_a_name(text: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    for command in ("run", "grid", "tune"):
        assert main([command, "--config", str(path), "--dump-config"]) == 2
        one_line_error(capsys, str(path), "is not a name")


def test_config_from_dev_zero_returns_at_once(tmp_path: Path) -> None:
    """A character device would be read for ever; refused before it is opened, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--config", "/dev/zero"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert time.monotonic() - t0 < 60
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["harness: error: /dev/zero: experiment file is a character device, not a regular file"]


@pytest.mark.parametrize("kind", ["fifo", "folder", "huge"])
def test_config_that_is_not_a_small_regular_file(kind: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.toml"
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block until a writer came
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_text("# padding\n" * 200_000)
    for command in ("run", "grid"):
        assert main([command, "--config", str(path), "--dump-config"]) == 2
        one_line_error(capsys, str(path), {"fifo": "named pipe", "folder": "a folder", "huge": "bytes, more than"}[kind])


def test_budget_file_that_is_a_device(tmp_path: Path, capsys) -> None:
    assert main(["run", "--budget", "/dev/zero", "--data", str(tmp_path / "none"), "--results", str(tmp_path)]) == 2
    one_line_error(capsys, "/dev/zero", "budget file is a character device")
