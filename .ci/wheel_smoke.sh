#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment, and use it from
# outside the checkout: the console script, the weights manifest, loading a weight file.
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$checkout/.venv/bin/python" -m pip wheel --no-deps -q -w "$work/dist" "$checkout"
python3.11 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
wheel=("$work"/dist/radtl-*.whl)
# The [test] extra brings pytest, which the checkout's HDF5 writer (tests/keras2_h5.py) imports.
"$work/venv/bin/python" -m pip install -q "${wheel[0]}[test]"
cd "$work"
"$work/venv/bin/radtl" --help
"$work/venv/bin/radtl" weights list | tee "$work/list.txt"
grep -q "RadImageNet-ResNet50_notop.h5" "$work/list.txt"
"$work/venv/bin/python" "$checkout/.ci/wheel_smoke.py" "$checkout/tests"
