#!/usr/bin/env bash
# Create ./.venv with ticketzoo installed (editable) plus test tools; idempotent.
#
#   bash scripts/setup.sh          # runtime dependencies
#   bash scripts/setup.sh --test   # plus pytest, hypothesis and the onnx extra (its tests run too)
#
# torchvision comes from PyPI and pulls its matching torch (a CUDA build that also runs
# on CPU). pyproject's torch>=2.14 keeps pip from mixing in an older CPU-only wheel.
# matplotlib (the plot of `ticketzoo compare`) comes from PyPI like every other dependency.
# pip's cache is kept (no --no-cache-dir): a reinstall after pyproject.toml changes, which
# the stamp below detects, reuses the wheels already downloaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-python3}"
extra=""
[[ "${1:-}" == "--test" ]] && extra="[test,onnx]"
stamp=".venv/.ticketzoo-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)$extra"

if [[ -x .venv/bin/python && -f "$stamp" && "$(cat "$stamp")" == *"$want"* ]]; then
    exit 0
fi
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
echo "installing ticketzoo and its dependencies into .venv (first time: a few minutes)..." >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extra"
echo "$want" > "$stamp"
