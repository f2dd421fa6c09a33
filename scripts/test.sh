#!/usr/bin/env bash
# The README's test command: set up .venv and the loopback Hub server's olah venv, then
# run the test suite. Extra arguments go to pytest (e.g. --runslow, -k codec).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --test
export TICKETZOO_OLAH_VENV="$PWD/.venv-olah"
bash tests/hubserver/install_olah.sh "$TICKETZOO_OLAH_VENV" >&2
export TICKETZOO_REQUIRE_OLAH=1
exec .venv/bin/python -m pytest -q "$@"
