#!/usr/bin/env bash
# The shared-GPU check (docs/gpu.md): device and driver, training speed per architecture, mel setting
# and precision, packing 1/2/4/8 runs, `harness grid` end to end. About 8 minutes on one GPU; writes
# benchmarks/results/gpu-<device>.md and .json. Without CUDA: one line, exit 0.
# Run from the repository root with the project installed:  bash benchmarks/gpu_check.sh [--help]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3 || command -v python)}"
# A hard stop a little past the script's own 8-minute budget, should a part hang.
exec timeout --kill-after=30 600 "$PY" -m benchmarks.gpu_check "$@"
