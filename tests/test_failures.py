"""Every failure is one line, nothing is left half-written, and the store survives.

Drives the command line through each class of failure: a path under a regular file, a path in a
pseudo file system (/proc), a read-only file system and a full disk. The last two are injected at
the operating-system calls the harness writes through (``os.open``, ``open``, ``os.mkdir``), for
everything under one folder, so they work as root too (tests here run as root, where chmod
cannot make a folder read-only). Each case checks the exit code, one line on stderr naming the
path, no traceback, and no index row left ``running`` after the process ended.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from harness.atomic import write_json
from harness.cli import main
from harness.results.store import LOCK_FILE, ResultsStore

#: A quick table command (Table 1 of an empty store: its missing-run commands; no network is built).
TABLE = ["table", "--table", "1", "--no-stats", "--format", "csv"]

TINY_RUN = ["--arch", "dcase-baseline", "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--no-progress"]


def one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error" in ln]  # notes such as "no complete runs" may precede it
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("harness: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def index_statuses(results: Path) -> list[str]:
    path = results / "index.csv"
    return list(pd.read_csv(path)["status"]) if path.exists() else []


@contextmanager
def refused(root: Path, code: int) -> Iterator[None]:
    """Every create/write/mkdir/rename under ``root`` fails with ``code`` (EROFS: a read-only file
    system; ENOSPC: a full one), as the kernel would report it; reads still work."""
    root = Path(root).resolve()
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_replace = os.replace

    def inside(path) -> bool:
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(root)
        except (TypeError, ValueError):
            return False

    def fail(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and inside(file) and any(c in mode for c in "wax+"):
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if inside(path):
            fail(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_move(src, dst, *args, **kwargs):
        if inside(dst):
            fail(dst)
        return real_replace(src, dst, *args, **kwargs)

    patches = [(builtins, "open", fake_open), (io, "open", fake_open), (os, "open", fake_os_open),
               (os, "mkdir", fake_mkdir), (os, "replace", fake_move), (os, "rename", fake_move)]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    try:
        for mod, name, fn in patches:
            setattr(mod, name, fn)
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("not a folder\n")
    return path


# -- a path under a regular file, a pseudo file system -----------------------------------------
def test_table_output_under_a_regular_file(a_file: Path, tmp_path: Path, capsys) -> None:
    target = a_file / "tables" / "t1.md"
    assert main([*TABLE, "--results", str(tmp_path), "-o", str(target)]) == 4
    one_line_error(capsys, f"cannot write {target}", "Not a directory")


def test_table_output_in_proc(tmp_path: Path, capsys) -> None:
    target = Path(f"/proc/harness-{os.getpid()}/t.csv")
    assert main([*TABLE, "--results", str(tmp_path), "-o", str(target)]) == 4
    one_line_error(capsys, f"cannot write {target}")
    assert not target.parent.exists()


def test_synthetic_dataset_under_a_regular_file(a_file: Path, capsys) -> None:
    assert main(["data", "synth", "--out", str(a_file / "d"), "--seconds", "0.5", "--sample-rate", "8000",
                 "--locations", "2", "--segments", "1", "--no-progress"]) == 4
    one_line_error(capsys, "cannot write the synthetic dataset", str(a_file / "d"), "Not a directory")


def test_run_into_a_results_folder_under_a_regular_file(tiny_synth: Path, a_file: Path, capsys) -> None:
    results = a_file / "results"
    assert main(["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN]) == 4
    one_line_error(capsys, f"cannot write {results}", "Not a directory")


# -- a read-only file system and a full disk ---------------------------------------------------
@pytest.mark.parametrize("code, reason", [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left")])
def test_table_and_report_on_a_refusing_file_system(code: int, reason: str, tmp_path: Path, capsys) -> None:
    with refused(tmp_path / "ro", code):
        assert main([*TABLE, "--results", str(tmp_path), "-o", str(tmp_path / "ro" / "t.csv")]) == 4
    one_line_error(capsys, f"cannot write {tmp_path / 'ro' / 't.csv'}", reason)
    assert not list((tmp_path).rglob("*.tmp"))


@pytest.mark.parametrize("code, reason", [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left")])
def test_synthetic_dataset_on_a_refusing_file_system(code: int, reason: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    with refused(out, code):
        assert main(["data", "synth", "--out", str(out), "--seconds", "0.5", "--sample-rate", "8000",
                     "--locations", "2", "--segments", "1", "--no-progress"]) == 4
    one_line_error(capsys, "cannot write the synthetic dataset", str(out), reason)
    assert not list(out.iterdir())  # nothing half-written


@pytest.mark.parametrize("code, reason", [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left")])
def test_feature_cache_on_a_refusing_file_system(code: int, reason: str, tiny_synth: Path, tmp_path: Path,
                                                 monkeypatch, capsys) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    with refused(cache, code):
        assert main(["data", "features", str(tiny_synth), "--mels", "16", "--no-progress"]) == 4
    one_line_error(capsys, "cannot write the feature cache", str(cache), reason)
    assert not any(p.is_file() for p in cache.rglob("*"))


@pytest.mark.parametrize("code, reason", [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left")])
def test_run_into_a_refusing_results_folder(code: int, reason: str, tiny_synth: Path, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    with refused(results, code):
        assert main(["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN]) == 4
    one_line_error(capsys, f"cannot write {results}", reason)
    assert index_statuses(results) == []


@pytest.mark.slow
def test_disk_full_mid_run_marks_the_row_failed_and_the_run_resumes(tiny_synth: Path, tmp_path: Path,
                                                                    monkeypatch, capsys) -> None:
    """The second epoch's checkpoint hits a full disk: the row is failed with the reason in the run
    folder, the first epoch's checkpoint is intact, and the same command resumes and completes."""
    import harness.atomic as atomic

    real = atomic._new_temp
    seen = {"checkpoints": 0}

    def full_on_second_checkpoint(path: Path) -> Path:
        if path.name == "checkpoint.pt":
            seen["checkpoints"] += 1
            if seen["checkpoints"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path)

    results = tmp_path / "results"
    argv = ["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN]
    monkeypatch.setattr(atomic, "_new_temp", full_on_second_checkpoint)
    assert main(argv) == 4
    line = one_line_error(capsys, "cannot write", "checkpoint.pt", "No space left on device")
    assert index_statuses(results) == ["failed"]
    (run_dir,) = (results / "runs").iterdir()
    failure = json.loads((run_dir / "failure.json").read_text())
    assert failure["epochs_done"] == 1 and line.endswith(failure["error"])
    assert not list(run_dir.glob(".*.tmp"))

    monkeypatch.setattr(atomic, "_new_temp", real)
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "resuming from epoch 1 of 2" in out.err + out.out
    assert index_statuses(results) == ["complete"] and not (run_dir / "failure.json").exists()


# -- runs refused before training, interrupted, or killed ----------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["--aug", "mixup", "--loss", "triplet-city"], "mixup"),
    (["--arch-opt", "channels=0,4"], "channels"),
    (["--arch", "timm/not-a-model"], "not-a-model"),
])
def test_a_run_refused_before_training_leaves_no_run_folder(argv, needle, tiny_synth: Path, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    code = main(["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN, *argv])
    assert code == 2
    one_line_error(capsys, needle)
    assert not (results / "runs").exists() and index_statuses(results) == []


@pytest.mark.slow
def test_an_interrupted_run_is_marked_failed(tiny_synth: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from harness.runner import train

    def interrupt(self, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.Trainer, "train_epoch", interrupt)
    results = tmp_path / "results"
    assert main(["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN]) == 130
    assert index_statuses(results) == ["failed"]
    (run_dir,) = (results / "runs").iterdir()
    assert json.loads((run_dir / "failure.json").read_text())["error"] == "interrupted"


def test_a_dead_processs_running_row_is_shown_stale(tmp_path: Path, capsys) -> None:
    """A run whose process died (SIGKILL: no handler runs) keeps its ``running`` row; liveness is the
    run's lock, which the kernel drops with the process, so ``harness table`` reports it stale."""
    results = tmp_path / "results"
    store = ResultsStore(results)
    row = {"run_id": "fcnn-ce-none-m40-s0-dead", "status": "running", "arch": "fcnn", "loss": "ce", "aug": "none",
           "n_mels": 40, "seed": 0, "split": "fold1", "preset": "quick", "created": "2026-01-01T00:00:00"}
    store.update_index(row)
    store.update_index({**row, "run_id": "fcnn-ce-none-m40-s1-live", "seed": 1})
    for run_id in ("fcnn-ce-none-m40-s0-dead", "fcnn-ce-none-m40-s1-live"):
        store.run_dir(run_id).mkdir(parents=True)
    holder = textwrap.dedent(f"""
        import fcntl, sys, time
        fh = open(sys.argv[1], "a+"); fcntl.flock(fh, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(600)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", holder, str(store.run_dir(r) / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
             for r in ("fcnn-ce-none-m40-s0-dead", "fcnn-ce-none-m40-s1-live")]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "locked"
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=30)
        live = store.load_index(liveness=True).set_index("run_id")["status"]
        assert live["fcnn-ce-none-m40-s0-dead"] == "stale" and live["fcnn-ce-none-m40-s1-live"] == "running"
        assert main(["table", "--table", "1", "--results", str(results), "--no-stats"]) == 0
        out = capsys.readouterr().out
        assert "1 run(s) marked running whose process is gone (stale" in out and "s0-dead" in out
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)


# -- the store's own rules ---------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_record_files_honour_the_umask(umask: int, mode: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        write_json(tmp_path / "r" / "config.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r" / "config.json").stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("command", [["table"], ["table", "--table", "1"], ["report"]])
def test_table_and_report_on_a_missing_results_folder(command, tmp_path: Path, capsys) -> None:
    results = tmp_path / "no-such-results"
    assert main([*command, "--results", str(results)]) == 2
    one_line_error(capsys, str(results), "does not exist")
    assert not results.exists()


def test_non_terminal_progress_is_a_few_plain_lines(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", "--out", str(tmp_path / "with space"), "--seconds", "0.5", "--sample-rate", "8000",
                 "--locations", "2", "--segments", "2"]) == 0
    out = capsys.readouterr()
    assert "\r" not in out.err and 2 <= len(out.err.splitlines()) <= 6, out.err
    assert "synthesising clips" in out.err and "done in" in out.err
    root = tmp_path / "with space" / "TAU-urban-acoustic-scenes-2019-development"
    assert f"harness run --data '{root}'" in out.out  # quoted for copy-paste


def test_missing_run_commands_carry_data_and_results(tmp_path: Path, capsys) -> None:
    results = tmp_path / "my results"
    results.mkdir()
    assert main(["table", "--table", "1", "--results", str(results), "--no-stats", "--dataset", str(tmp_path / "TAU data"),
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cmds = doc["table1"]["missing_commands"]
    assert cmds and all(f"--data '{tmp_path / 'TAU data'}'" in c and f"--results '{results}'" in c for c in cmds)


def test_help_gives_the_presets_real_score_last() -> None:
    from harness.cli import build_parser
    from harness.runner.config import PRESETS

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    text = " ".join(run.format_help().split())
    assert f"{PRESETS['quick']['score_last']} for quick" in text and f"{PRESETS['paper']['score_last']} for paper" in text
