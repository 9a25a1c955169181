#!/usr/bin/env bash
# Builds the extension with clang, AddressSanitizer and UndefinedBehaviorSanitizer
# into build/asan/, and runs pytest on it (the ASan runtime preloaded into
# Python; leak checks off, since CPython itself keeps memory to exit).
#
#   tools/sanitize_tests.sh                 the whole default test suite
#   tools/sanitize_tests.sh tests/test_kernels.py -k avx2    any pytest arguments
#
# Every kernel test already runs every dispatch level this CPU has, so the
# kernel files cover generic, avx2 and avx512 under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build/asan
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" -G Ninja -DSKBUILD=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS="$SAN -Wno-unknown-warning-option" -DCMAKE_SHARED_LINKER_FLAGS="$SAN" \
    -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >/dev/null
fi
cmake --build "$dir" -j "${JOBS:-2}"
# A package tree of its own, so the normal build in python/ is left alone.
rm -rf "$dir/pkg" && mkdir -p "$dir/pkg"
cp -r python/starcoder_cpp "$dir/pkg/"
rm -f "$dir/pkg/starcoder_cpp/"_core*.so "$dir/pkg/starcoder_cpp/"_testing*.so
cp "$dir"/_core*.so "$dir"/_testing*.so "$dir/pkg/starcoder_cpp/"
asan_rt="$(clang++ -print-file-name=libclang_rt.asan-x86_64.so)"
export LD_PRELOAD="$asan_rt"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$PWD/$dir/pkg"
export STARCODER_SANITIZED=1
python3 -c "import starcoder_cpp, sys; assert starcoder_cpp.__file__.startswith('$PWD/$dir/pkg'), starcoder_cpp.__file__"
exec python3 -m pytest -q -p no:cacheprovider "${@:-tests}"
