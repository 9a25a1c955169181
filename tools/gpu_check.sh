#!/usr/bin/env bash
# One prepared GPU check for a fresh NVIDIA machine: builds the package with
# the CUDA backend for this GPU only, runs the CUDA tests against the CPU
# backend, and prints decode / prompt speed on the demo model through the CLI bench.
# Usage: bash tools/gpu_check.sh   (needs nvcc, cmake, ninja, python3 with pytest/numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
echo "GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1), sm_$arch"
dir=build/gpu-check
cmake -S . -B "$dir" -G Ninja -DSKBUILD=ON -DCMAKE_BUILD_TYPE=Release -DSTARCODER_CUDA=ON \
  -DSTARCODER_CUDA_ARCHS="${arch}-real" -DPython_EXECUTABLE="$(command -v python3)" \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >/dev/null
t0=$(date +%s)
cmake --build "$dir" -j "$(nproc)" >"$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
cp "$dir"/_core*.so "$dir"/_testing*.so "$dir"/libstarcoder_cuda.so python/starcoder_cpp/
PYTHONPATH=python python3 -m pytest -q -rs -m cuda tests/test_cuda.py
PYTHONPATH=python python3 -m starcoder_cpp bench -m demo --backend cuda || \
  echo "(bench --backend not available: speed not measured)"
