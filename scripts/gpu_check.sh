#!/usr/bin/env bash
# The CUDA backend on a GPU machine (Python 3.12, numpy, llvmlite, networkx, torch
# preinstalled, no package registry): installs nothing, runs the GPU tests and a short
# benchmark, and prints the numbers for the issue. Well under 5 minutes on an H200.
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/.gpu_pkg${PYTHONPATH:+:$PYTHONPATH}"
# nncompile imports as a package from the source tree (no pip install): ir/ and backends/
# are nncompile.ir and nncompile.backends, as pyproject.toml maps them.
mkdir -p .gpu_pkg/nncompile
cp -r nncompile/. .gpu_pkg/nncompile/
rm -rf .gpu_pkg/nncompile/ir .gpu_pkg/nncompile/backends
cp -r ir .gpu_pkg/nncompile/ir
cp -r backends .gpu_pkg/nncompile/backends
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python - <<'PY'
from nncompile.backends.cuda import toolchain
print("compilers:", toolchain.available_compilers(), "| missing for running:",
      toolchain.missing_for_running())
PY
timeout 200 python scripts/run_gpu_tests.py 2>&1 | tail -25
echo "--- benchmark (cuda vs llvm vs eager vs PyTorch on the GPU)"
timeout 120 python -m nncompile.cli bench elementwise --size 67108864 --steps 10 --budget 5 \
  --vs torch --torch-device cuda
timeout 150 python -m nncompile.cli bench mlp cnn --batch 256 --steps 10 --budget 5 \
  --vs torch --torch-device cuda
python - <<'PY'
# copy bandwidth of the device (cuMemcpyDtoD), the reference for the 70% target
import sys
import time
from nncompile.backends.cuda import toolchain
if toolchain.missing_for_running():
    sys.exit(f"no device copy bandwidth: {toolchain.missing_for_running()}")
from nncompile.backends.cuda.driver import driver
cu = driver(); n = 64 * 2**20 * 4
a, b = cu.alloc(n), cu.alloc(n)
cu.copy(b, a, n); cu.synchronize()
t = time.perf_counter()
for _ in range(20):
    cu.copy(b, a, n)
cu.synchronize()
s = (time.perf_counter() - t) / 20
print(f"device copy bandwidth: {2 * n / s / 1e9:.0f} GB/s (64M float32 read + written)")
PY
rm -rf .gpu_pkg
