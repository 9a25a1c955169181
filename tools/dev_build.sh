#!/usr/bin/env bash
# Incremental developer build: compiles the extension into build/dev (or $1)
# and copies it into python/starcoder_cpp/, so `PYTHONPATH=python pytest`
# runs the working tree without a pip install.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build/dev}"
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" -G Ninja -DSKBUILD=ON -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >/dev/null
fi
cmake --build "$dir" -j 2
# Copied beside and renamed over: a process that has the old library loaded
# (a fuzzer, a server) keeps its mapping instead of crashing on a file
# rewritten under it.
place() {
  cp "$1" "python/starcoder_cpp/.$(basename "$1").tmp"
  mv -f "python/starcoder_cpp/.$(basename "$1").tmp" "python/starcoder_cpp/$(basename "$1")"
}
for so in "$dir"/_core*.so "$dir"/_testing*.so; do place "$so"; done
# configured with -DSTARCODER_CUDA=ON: the CUDA backend library goes beside _core
if [ -f "$dir/libstarcoder_cuda.so" ]; then place "$dir/libstarcoder_cuda.so"; fi
