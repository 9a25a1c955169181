#!/usr/bin/env bash
# A wheelhouse to carry across an air gap: this project's manylinux wheel and
# a wheel of every runtime dependency (and of the extras below that exist), for
# one CPython version.
#
#   tools/make_wheelhouse.sh DIR [PYTHON]     # PYTHON defaults to python3
#
# On the far side, with no index and no network:
#   pip install --no-index --find-links DIR starcoder-cpp
#
# The project wheel comes from tools/build_wheels.sh (or an existing one in
# dist/ when STARCODER_WHEEL is set); dependencies are downloaded as binary
# wheels only, so nothing in DIR needs a compiler on the other side.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:?usage: tools/make_wheelhouse.sh DIR [PYTHON]}"
py="${2:-python3}"
extras="${STARCODER_WHEELHOUSE_EXTRAS:-server}"   # carried when pyproject.toml defines them

whl="${STARCODER_WHEEL:-}"
if [ -z "$whl" ]; then
  tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  STARCODER_WHEEL_DIR=build/wheelhouse-dist tools/build_wheels.sh "$py" >&2
  whl=$(ls build/wheelhouse-dist/starcoder_cpp-*-"$tag"-"$tag"-manylinux*.whl | sort -V | tail -1)
fi
mkdir -p "$dir"
cp "$whl" "$dir/"

# Only extras the project really has: pip would otherwise just warn.
spec="$dir/$(basename "$whl")"
have=$("$py" - "$spec" "$extras" <<'EOF'
import sys, zipfile
whl, wanted = sys.argv[1], sys.argv[2].split(",")
with zipfile.ZipFile(whl) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    provided = {l.split(":", 1)[1].strip() for l in z.read(meta).decode().splitlines() if l.startswith("Provides-Extra:")}
print(",".join(e for e in wanted if e in provided))
EOF
)
[ -z "$have" ] || spec="$spec[$have]"
"$py" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$dir" "$spec"
echo "wheelhouse $dir (extras: ${have:-none}):"
ls -1 "$dir"
du -sh "$dir"
