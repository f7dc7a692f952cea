"""The launcher seam without a cluster: flags, one-line refusals before anything is submitted,
``--dry-run``'s commands, and the results index under concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import shlex
import socket
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.launchers.slurm import parse_options, parse_time
from harness.results.store import ResultsStore


def grid_args(data: Path, results: Path, *extra: str) -> list[str]:
    return ["grid", "--data", str(data), "--results", str(results), "--variants", "FCNN,FCNN-triplet", "--mels", "40",
            "--seeds", "1", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--precision", "fp32",
            "--no-progress", *extra]


@pytest.mark.parametrize("text,minutes", [("90", 90), ("1:30:00", 90), ("1:30", 2), ("2-0", 2880), ("1-2:30", 1590)])
def test_slurm_time_reads_slurms_forms(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


def test_slurm_time_and_options_refuse_nonsense() -> None:
    for bad in ("abc", "0", "1:2:3:4", "-5"):
        with pytest.raises(ConfigError, match="--slurm-time"):
            parse_time(bad)
    assert parse_options(["mem=16G", "--account=lab", "exclusive"]) == {"mem": "16G", "account": "lab", "exclusive": True}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["=x"])


def fake_bin(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("case", ["no-sbatch", "bad-partition", "sinfo-fails", "no-submitit", "other-engine-flag"])
def test_slurm_refusals_are_one_line_before_anything_is_submitted(case, tiny_synth, tmp_path, monkeypatch, capsys) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    extra = ["--launcher", "slurm"]
    if case != "no-sbatch":
        fake_bin(bin_dir, "sbatch", f"touch {tmp_path}/submitted")
    fake_bin(bin_dir, "sinfo", "echo 'controller down' >&2; exit 1" if case == "sinfo-fails" else "echo debug; echo gpu")
    monkeypatch.setenv("PATH", str(bin_dir))
    if case == "bad-partition":
        extra += ["--slurm-partition", "a100"]
    if case == "no-submitit":
        monkeypatch.setitem(sys.modules, "submitit", None)
    if case == "other-engine-flag":
        extra += ["--ray-address", "127.0.0.1:1"]
    assert main(grid_args(tiny_synth, tmp_path / "res", *extra)) == 2
    err = capsys.readouterr().err
    expected = {"no-sbatch": "no SLURM on this machine (sbatch not found on PATH)",
                "bad-partition": "--slurm-partition 'a100': no such partition; this cluster has debug, gpu",
                "sinfo-fails": "sinfo failed: controller down",
                "no-submitit": "--launcher slurm needs submitit: pip install 'harness[slurm]'",
                "other-engine-flag": "--ray-address is a flag of --launcher ray, not of --launcher slurm"}[case]
    assert err.startswith("harness: error: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "submitted").exists() and not (tmp_path / "res" / "runs").exists()


def test_ray_address_unreachable_is_one_line(tiny_synth, tmp_path, capsys) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(grid_args(tiny_synth, tmp_path, "--launcher", "ray", "--ray-address", f"127.0.0.1:{port}")) == 2
    err = capsys.readouterr().err
    assert f"--ray-address 127.0.0.1:{port}: unreachable" in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_ray_missing_names_the_extra(tiny_synth, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(grid_args(tiny_synth, tmp_path, "--launcher", "ray")) == 2
    assert "--launcher ray needs Ray: pip install 'harness[ray]'" in capsys.readouterr().err


def test_dry_run_shows_count_resources_and_commands_that_train_the_same_run(tiny_synth, tmp_path, capsys) -> None:
    from harness.flags import config_from_args, open_data, recipe_parser as run_parser
    from harness.experiment import given_dests

    argv = grid_args(tiny_synth, tmp_path, "--launcher", "slurm", "--slurm-partition", "gpu", "--slurm-gpus-per-task", "1",
                     "--slurm-time", "2:00:00", "--slurm-opt", "mem=8G", "--dry-run")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert ("launcher slurm: would submit 2 task(s), one SLURM array task each on partition gpu: 2 CPU, 1 GPU, "
            "120 min, --mem=8G; each runs:") in out
    commands = [line for line in out.splitlines() if line.startswith("harness run ")]
    ids = [line.split()[-1] for line in out.splitlines() if line.startswith("FCNN")]
    assert len(commands) == 2 and not (tmp_path / "runs").exists()
    for command, run_id in zip(commands, ids):
        words = shlex.split(command)[2:]
        parser = run_parser()
        args = parser.parse_args(words)
        args.command_parser, args.given = parser, given_dests(parser, words)
        assert config_from_args(args).for_dataset(open_data(args, announce=False)).resolved().run_id() == run_id
    assert main(grid_args(tiny_synth, tmp_path, "--launcher", "ray", "--ray-gpus-per-task", "0.25", "--dry-run")) == 0
    assert "one Ray task each on a Ray started on this machine: 1 CPU, 0.25 GPU" in capsys.readouterr().out


def test_storage_and_a_launcher_are_two_ways_to_start_workers(tiny_synth, tmp_path, capsys) -> None:
    assert main(grid_args(tiny_synth, tmp_path, "--launcher", "ray", "--storage", str(tmp_path / "j.log"))) == 2
    assert "give one of them" in capsys.readouterr().err


def _write_rows(root: str, worker: int, n: int) -> None:
    store = ResultsStore(root)
    for i in range(n):
        store.update_index({"run_id": f"w{worker}-r{i}", "status": "complete", "seed": i, "acc_score": worker / 10})


def test_index_stays_whole_under_concurrent_writers(tmp_path: Path) -> None:
    """Writers in separate processes (as workers on several hosts are) never lose or tear a row."""
    ctx = mp.get_context("fork")  # separate processes, as on separate hosts; fork saves re-importing pandas
    procs = [ctx.Process(target=_write_rows, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    index = pd.read_csv(tmp_path / "index.csv")
    assert sorted(index["run_id"]) == sorted(f"w{w}-r{i}" for w in range(4) for i in range(15))
    assert not list(tmp_path.glob(".index.csv.*"))  # no temporary file left behind


def test_collect_puts_back_rows_a_lockless_file_system_lost(tmp_path: Path) -> None:
    from harness.launchers.grid import collect

    store = ResultsStore(tmp_path)
    for run_id in ("a", "b"):
        store.write_summary(run_id, {"run_id": run_id, "status": "complete", "acc_score": 0.5})
    store.reindex()
    df = pd.read_csv(store.index_path)
    df[df["run_id"] != "b"].to_csv(store.index_path, index=False)  # b's row lost to a concurrent rewrite
    collect([{"run_id": "a", "status": "complete"}, {"run_id": "b", "status": "complete"}], store)
    assert sorted(pd.read_csv(store.index_path)["run_id"]) == ["a", "b"]


@pytest.mark.slow
def test_local_launcher_runs_command_tasks(tmp_path: Path, capsys) -> None:
    from harness.launchers.local import LocalLauncher
    from harness.launchers.task import Task

    tasks = [Task("ok", ("harness", "list", "--kind", "arch")), Task("bad", ("harness", "run", "--epochs", "x"))]
    out = {s["run_id"]: s for s in LocalLauncher(jobs=2).run(tasks, tmp_path, progress=False)}
    assert out["ok"]["status"] == "complete" and out["bad"]["status"] == "failed" and "exited with 2" in out["bad"]["error"]
