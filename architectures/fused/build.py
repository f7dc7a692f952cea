"""Building and loading the fused kernels (``fcnn_block.c``, shipped as package data).

Built on first use with the system C compiler (``$CC``, else cc/gcc/clang; ``-O3 -march=native``,
OpenMP where the compiler has it) into ``<cache>/kernels/``, keyed by the source, the compiler and
the CPU, and reused after that. First use rather than install time because it costs a new user
nothing: ``pip install`` needs no compiler, the build takes about a second, and ``-march=native``
must see the machine that runs it (a shared or copied environment gets the right code on each
CPU). Plain C loaded with ``ctypes`` rather than a torch C++ extension: no C++ toolchain, no torch
headers, no rebuild when torch changes. Where it cannot be built, :func:`kernel_error` says why
and the models run their reference definition.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import torch

#: C types and symbol suffix of each precision the kernels are compiled for.
PRECISIONS = {torch.float32: ("float", "int32_t", "_f32"), torch.float64: ("double", "int64_t", "_f64")}
ENTRY_POINTS = ("fcnn_fwd", "fcnn_bwd", "fcnn_epi_fwd", "fcnn_epi_bwd")
SOURCE = "fcnn_block.c"

_lock = threading.Lock()
_lib: Any = None
_error: str | None = None


def source_text() -> str:
    return resources.files(__package__).joinpath(SOURCE).read_text()


def kernel_dir() -> Path:
    from harness.paths import cache_dir

    return cache_dir() / "kernels"


def compiler() -> str | None:
    """``$CC`` where set (None if it does not exist), else the first of cc, gcc, clang on the PATH."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"])
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def library_path() -> Path:
    key = hashlib.sha256("\0".join([source_text(), os.environ.get("CC", ""), _cpu_signature(),
                                     platform.machine()]).encode()).hexdigest()[:16]
    return kernel_dir() / f"fcnn-{key}.so"


def compile_library(target: Path) -> None:
    """Compile ``fcnn_block.c`` (once per precision) into the shared library ``target``, atomically."""
    cc = compiler()
    if not cc:
        raise OSError(f"no C compiler found ({'CC=' + os.environ['CC'] if os.environ.get('CC') else 'cc, gcc, clang'})")
    src = resources.files(__package__).joinpath(SOURCE)
    with tempfile.TemporaryDirectory(prefix="fcnn-kernel-") as tmp, resources.as_file(src) as src_path:
        last = ""
        for openmp in (["-fopenmp"], []):  # OpenMP when the compiler has it, else one thread
            objs = []
            try:
                for real, ireal, sfx in PRECISIONS.values():
                    obj = Path(tmp) / f"k{sfx}.o"
                    common = ["-DFCNN_COMMON"] if sfx == "_f32" else []  # precision-free code: once
                    subprocess.run([cc, "-std=c11", "-ffp-contract=fast", "-O3", "-march=native", "-fPIC",
                                    "-fno-math-errno", *openmp, *common, f"-DREAL={real}", f"-DIREAL={ireal}",
                                    f"-DSFX={sfx}", "-c", str(src_path), "-o", str(obj)],
                                   check=True, capture_output=True, text=True, timeout=300)
                    objs.append(str(obj))
                out = Path(tmp) / "lib.so"
                subprocess.run([cc, "-shared", *openmp, "-o", str(out), *objs], check=True, capture_output=True,
                               text=True, timeout=300)
            except subprocess.CalledProcessError as exc:
                lines = (exc.stderr or "").strip().splitlines()
                last = lines[-1] if lines else str(exc)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(out, tmp_target)
            os.replace(tmp_target, target)  # atomic: concurrent processes never load half a file
            return
        raise OSError(f"{cc} could not build the fused FCNN kernels: {last}")


def kernels() -> Any:
    """The compiled kernels (a ``ctypes.CDLL``), built on first use; None where they cannot be."""
    global _lib, _error
    if _lib is not None or _error is not None:
        return _lib
    with _lock:
        if _lib is not None or _error is not None:
            return _lib
        try:
            if os.environ.get("HARNESS_NO_FUSED_KERNELS"):
                raise OSError("disabled by HARNESS_NO_FUSED_KERNELS")
            target = library_path()
            if not target.exists():
                compile_library(target)
            lib = ctypes.CDLL(str(target))
            for _, _, sfx in PRECISIONS.values():
                for name in ENTRY_POINTS:
                    getattr(lib, name + sfx).restype = ctypes.c_int
            lib.fcnn_bernoulli_mask.restype = ctypes.c_int
            _lib = lib
        except (OSError, AttributeError) as exc:
            _error = str(exc)
    return _lib


def kernel_error() -> str | None:
    """Why :func:`kernels` is None (None when they are available or not yet tried)."""
    return _error


def reset() -> None:
    """Forget the loaded library and any error, so the next :func:`kernels` looks again (tests)."""
    global _lib, _error
    with _lock:
        _lib, _error = None, None


def ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(0 if t is None else t.data_ptr())


def call(name: str, dtype: torch.dtype, *args: Any) -> None:
    """Call kernel ``name`` for ``dtype``: tensors as pointers, floats as double, the rest as int."""
    fn = getattr(kernels(), name + PRECISIONS[dtype][2])
    cargs = [a if isinstance(a, ctypes.c_void_p) else
             ptr(a) if a is None or isinstance(a, torch.Tensor) else
             ctypes.c_double(a) if isinstance(a, float) else ctypes.c_int(int(a)) for a in args]
    if fn(*cargs) != 0:
        raise RuntimeError(f"{name}: shape not supported by the fused kernels")  # callers check first
