"""Any install works, not only an editable one: the wheel holds every file the package reads at
run time, and the commands that read packaged files work from it, away from the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "architectures", "losses", "augmentations")


def package_files() -> set[str]:
    """Every file of the packages in the source tree (what an install must carry), as wheel paths."""
    out = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith((".pyc", ".so")):
                out.add(path.relative_to(ROOT).as_posix())
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # --no-build-isolation: the test environment's setuptools, no network needed
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                           "-w", str(out), "-q"], capture_output=True, text=True, cwd=build, timeout=600,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("harness-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(package_files() - names)
    assert not missing, f"files the package carries in the source tree but not in the wheel: {missing}"
    assert "harness/report/paper.json" in names


@pytest.mark.slow
def test_commands_run_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"  # no source tree, no results/ folder here
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "HARNESS_RESULTS": str(elsewhere / "results")}

    def harness(*argv: str) -> subprocess.CompletedProcess:
        code = ("import sys, harness; from harness.cli import main; "
                f"assert harness.__file__.startswith({str(target)!r}), harness.__file__; sys.exit(main(sys.argv[1:]))")
        return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=elsewhere,
                              env=env, timeout=600)

    listed = harness("list")
    assert listed.returncode == 0 and "triplet-city" in listed.stdout, listed.stderr
    table = harness("table", "--table", "2", "--format", "csv")
    assert table.returncode == 0, table.stderr
    assert "FCNN" in table.stdout and "870" in table.stdout  # the paper's column comes from the packaged paper.json
    missing = harness("table")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (elsewhere / "results").exists()
