#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, seeds their corpora
# (tests/fuzz/make_seeds.py; regression inputs from tests/fuzz/regressions/),
# and runs each one; then the converter's Python input readers under atheris
# (tests/fuzz/fuzz_*.py, on the starcoder_cpp that python3 imports: the
# installed package, or PYTHONPATH=python after tools/dev_build.sh).
#
#   tools/fuzz.sh [SECONDS_PER_HARNESS]     default 20 (CI's short run)
#   FUZZ_RUNS=1000000 tools/fuzz.sh          a fixed number of executions instead
#
# Exits non-zero on the first crash, sanitizer report, leak or timeout; the
# reproducer is left in build/fuzz/ (crash-*, leak-*, timeout-*).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
out=build/fuzz
mkdir -p "$out/obj"
CXX="${CXX_FUZZ:-clang++}"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CXXFLAGS="-std=c++17 -O1 -g $SAN -Icsrc -Wno-unknown-warning-option"

flags_for() {  # the per-file flags CMakeLists.txt gives the SIMD files
  case "$1" in
    *x86/*avx512*) echo "-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni" ;;
    *x86/*avx2*) echo "-mavx2 -mfma -mf16c" ;;
    */format/quant.cpp | */format/quant_k.cpp) echo "-ffp-contract=off" ;;
  esac
}

# The core, once, as objects shared by every harness (objects rebuilt when their source is newer).
objs=()
while IFS= read -r src; do
  obj="$out/obj/$(echo "${src#csrc/}" | tr / _).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find csrc -name '*.h' -newer "$obj" -print -quit)" ]; then
    $CXX $CXXFLAGS -fsanitize=fuzzer-no-link $(flags_for "$src") -c "$src" -o "$obj" &
    while [ "$(jobs -r | wc -l)" -ge "${FUZZ_JOBS:-2}" ]; do wait -n; done
  fi
  objs+=("$obj")
done < <(find csrc -name '*.cpp' -not -path 'csrc/python/*' | sort)
wait

vocab="${SC_FUZZ_VOCAB:-tests/data/vocab/ggml-vocab-starcoder-v1.gguf}"
python3 tests/fuzz/make_seeds.py "$out/seeds"
status=0
for h in gguf tokenizer sampling; do
  $CXX $CXXFLAGS -fsanitize=fuzzer "tests/fuzz/fuzz_$h.cpp" "${objs[@]}" -lpthread -o "$out/fuzz_$h"
  corpus="$out/corpus_$h"
  mkdir -p "$corpus"
  seeds=()
  [ -d "$out/seeds/$h" ] && seeds+=("$out/seeds/$h")
  [ -d "tests/fuzz/regressions/$h" ] && seeds+=("tests/fuzz/regressions/$h")
  if [ -n "${FUZZ_RUNS:-}" ]; then limit="-runs=$FUZZ_RUNS"; else limit="-max_total_time=$secs"; fi
  echo "== fuzz_$h ($limit)"
  if ! (cd "$out" && SC_FUZZ_VOCAB="$(realpath "$OLDPWD/$vocab")" ASAN_OPTIONS=detect_leaks=1 \
        "./fuzz_$h" "$limit" -max_len=65536 -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
        "corpus_$h" "${seeds[@]/#/$OLDPWD/}" 2>&1 | grep -E "^#[0-9]+[[:space:]]+DONE|ERROR|SUMMARY|runtime error|stat::(number|average)|Test unit written"); then
    status=1
    echo "fuzz_$h FAILED: reproducer in $out/" >&2
  fi
done

if python3 -c "import atheris" 2>/dev/null; then
  for h in safetensors config; do
    corpus="$out/corpus_$h"
    mkdir -p "$corpus"
    seeds=("$out/seeds/$h")
    [ -d "tests/fuzz/regressions/$h" ] && seeds+=("tests/fuzz/regressions/$h")
    if [ -n "${FUZZ_RUNS:-}" ]; then limit="-runs=$FUZZ_RUNS"; else limit="-max_total_time=$secs"; fi
    echo "== fuzz_$h.py ($limit)"
    if ! python3 "tests/fuzz/fuzz_$h.py" "$limit" -max_len=65536 -rss_limit_mb=4096 -timeout=20 \
          -print_final_stats=1 -artifact_prefix="$out/" "$corpus" "${seeds[@]}" 2>&1 \
          | grep -E "^#[0-9]+[[:space:]]+DONE|Uncaught Python exception|Error|stat::(number|average)|Test unit written"; then
      status=1
      echo "fuzz_$h.py FAILED: reproducer in $out/" >&2
    fi
  done
elif [ -n "${STARCODER_REQUIRE_PEERS:-}" ]; then
  echo "atheris is not installed: the Python harnesses cannot run" >&2
  status=1
else
  echo "atheris is not installed (pip install atheris): the Python harnesses are skipped"
fi
exit $status
