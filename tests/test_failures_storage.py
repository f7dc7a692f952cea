"""A full disk under torch's checkpoint writer, and a run folder deleted while its run trains.

The full disk is a real small tmpfs where the test may mount one (root, and mounts permitted);
elsewhere the write is refused with ENOSPC inside torch's own writer, which then raises its
``RuntimeError: … unexpected pos`` over the ``OSError`` exactly as on a real full disk.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from harness.atomic import atomic_path
from harness.cli import main
from harness.errors import StorageError

from test_failures import TINY_RUN, index_statuses, one_line_error

#: The tiny run's checkpoint is about 1.4 MB (dcase-baseline on 40 mels): it cannot fit in this.
TMPFS_SIZE = "1m"


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[None]:
    """A tmpfs of ``size`` mounted at ``path`` for the block; skips the test where mounting is not allowed."""
    path.mkdir(parents=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class FullAfter:
    """A binary file that takes ``room`` bytes and then refuses every write with ENOSPC."""

    def __init__(self, fh, room: int):
        self._fh, self._room = fh, room

    def write(self, data) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


@contextmanager
def checkpoints_hit_a_full_disk(monkeypatch: pytest.MonkeyPatch, room: int = 100_000) -> Iterator[None]:
    real_open = builtins.open

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if "w" in mode and Path(os.fsdecode(file)).name.startswith(".checkpoint.pt."):
            return FullAfter(fh, room)
        return fh

    monkeypatch.setattr(builtins, "open", fake_open)
    yield


@pytest.mark.parametrize("disk", [pytest.param("tmpfs", marks=pytest.mark.slow), "injected"])
def test_checkpoint_on_a_full_disk_is_one_line_exit_4(disk: str, tiny_synth: Path, tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    mount = tmp_path / "disk"
    results = mount / "results"
    argv = ["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN, "--precision", "fp32"]
    if disk != "tmpfs":
        mount.mkdir()
    # Read back while the small disk is still mounted: it takes its files with it.
    with small_tmpfs(mount, TMPFS_SIZE) if disk == "tmpfs" else checkpoints_hit_a_full_disk(monkeypatch):
        code = main(argv)
        line = one_line_error(capsys, "checkpoint.pt", "No space left on device")
        statuses = index_statuses(results)
        (run_dir,) = (results / "runs").iterdir()
        failure = json.loads((run_dir / "failure.json").read_text())
        leftovers = list(run_dir.glob(".*.tmp"))
    assert code == 4
    assert line == f"harness: error: cannot write {run_dir / 'checkpoint.pt'}: No space left on device"
    assert statuses == ["failed"] and failure["epochs_done"] == 0 and line.endswith(failure["error"])
    assert not leftovers


def test_a_library_error_over_no_os_error_is_mapped_only_when_the_disk_is_full(tmp_path: Path, monkeypatch) -> None:
    """torch writing a file itself loses the OSError: free space decides, not the message."""
    target = tmp_path / "checkpoint.pt"

    def write_fails() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 909056 vs 908944")

    with pytest.raises(RuntimeError, match="unexpected pos"):  # room on the disk: not a storage fault, left as it is
        write_fails()

    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    with pytest.raises(StorageError, match=f"cannot write {target}: No space left on device"):
        write_fails()
    assert list(tmp_path.iterdir()) == []


# -- a run whose folder is deleted while it trains ---------------------------------------------
@pytest.mark.parametrize("how", ["deleted", pytest.param("replaced", marks=pytest.mark.slow)])
def test_a_run_whose_folder_vanishes_fails_in_one_line(how: str, tiny_synth: Path, tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    from harness.runner import train

    real = train.Trainer.train_epoch

    def epoch_then_remove(self, epoch):
        out = real(self, epoch)
        if epoch == 1:
            shutil.rmtree(self.dir)
            if how == "replaced":  # what another process starting the same run afresh would leave
                self.dir.mkdir()
                (self.dir / "config.json").write_text("{}")
                (self.dir / ".lock").touch()
        return out

    monkeypatch.setattr(train.Trainer, "train_epoch", epoch_then_remove)
    results = tmp_path / "results"
    assert main(["run", "--data", str(tiny_synth), "--results", str(results), *TINY_RUN, "--precision", "fp32"]) == 4
    one_line_error(capsys, "run folder was deleted or replaced while the run trained")
    assert index_statuses(results) == ["failed"]
    run_dirs = list((results / "runs").iterdir())
    if how == "deleted":
        assert run_dirs == []  # not recreated holding a partial record
    else:
        (run_dir,) = run_dirs
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "config.json"]  # left as the other process left it
