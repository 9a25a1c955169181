#!/usr/bin/env bash
# One wheel, every x86-64 CPU: installs WHEEL into a fresh venv and runs it
# natively and under user-mode qemu as older CPUs.
#
#   tools/check_wheel_cpus.sh dist/starcoder_cpp-...-cp311-...whl [CPU ...]
#
# CPUs default to Nehalem (SSE4.2 only), Haswell (AVX2/FMA/F16C, no AVX-512)
# and max (everything qemu emulates). For each: the import, the level the
# dispatcher picks, a greedy completion on the demo model, its logits against
# the native run forced to the same level (STARCODER_CPU), and the
# kernel-level tests (tests/test_kernels.py, tests/test_float_kernels.py).
# A SIGILL anywhere fails the run. Needs qemu-x86_64 (Debian: qemu-user).
set -euo pipefail
cd "$(dirname "$0")/.."
whl="$1"; shift
cpus=("$@")
[ ${#cpus[@]} -gt 0 ] || cpus=(Nehalem Haswell max)
command -v qemu-x86_64 >/dev/null || { echo "check_wheel_cpus: qemu-x86_64 not installed (apt-get install qemu-user)" >&2; exit 1; }

# The wheel's own interpreter: its cpXY tag names it.
tag=$(basename "$whl" | sed -E 's/.*-cp([0-9])([0-9]+)-.*/\1.\2/')
py="${STARCODER_CHECK_PYTHON:-}"
if [ -z "$py" ]; then
  py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$tag".*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$py" ] || py=$(command -v "python$tag")
fi
work="build/wheel-check/cp${tag/./}"
rm -rf "$work"
"$py" -m venv "$work/venv"
vpy="$work/venv/bin/python"
"$vpy" -m pip install -q --disable-pip-version-check "$whl" pytest

echo "== native ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
levels=$(cd "$work" && venv/bin/python -c "from starcoder_cpp import _testing; print(' '.join(_testing.cpu_levels()))")
echo "levels available natively: $levels"
for lv in $levels; do
  STARCODER_CPU=$lv "$vpy" tools/wheel_cpu_probe.py probe "$work/native-cpu-$lv.npz"
done

# qemu names every host-only feature of a CPU model it leaves out (pcid,
# x2apic, ...), on every start; keep its other messages.
# numpy's OpenBLAS picks its kernels by its own CPU detection, which under
# qemu-user on a Zen 5 host named Haswell for -cpu Nehalem and died on an AVX
# instruction at `import numpy`: it is told the emulated CPU instead (max:
# Haswell, qemu 7.2 emulates no AVX-512). This project's dispatcher still
# reads cpuid itself.
quiet_qemu() { OPENBLAS_CORETYPE="$openblas_core" qemu-x86_64 "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2); }

for cpu in "${cpus[@]}"; do
  echo "== qemu-x86_64 -cpu $cpu"
  case "$cpu" in max) openblas_core=Haswell ;; *) openblas_core="$cpu" ;; esac
  quiet_qemu -cpu "$cpu" "$vpy" tools/wheel_cpu_probe.py probe "$work/qemu-$cpu.npz"
  picked=$("$vpy" -c "import numpy as np, sys; print(np.load(sys.argv[1])['backend'])" "$work/qemu-$cpu.npz")
  if [ ! -f "$work/native-$picked.npz" ]; then
    echo "check_wheel_cpus: $picked is not available natively, nothing to compare with" >&2; exit 1
  fi
  "$vpy" tools/wheel_cpu_probe.py compare "$work/native-$picked.npz" "$work/qemu-$cpu.npz"
  # The installed wheel, not the source tree: pytest runs from the repo root,
  # where python/ is not on the path.
  quiet_qemu -cpu "$cpu" "$vpy" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_float_kernels.py \
    | tail -3
done
