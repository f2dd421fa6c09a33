#!/usr/bin/env bash
# Install olah (the HF mirror server the hub backend tests download through) into its
# own virtualenv, separate from ticketzoo's: olah pins its own fastapi/pydantic/httpx.
#
#   tests/hubserver/install_olah.sh            # -> /work/olah-venv (or $TICKETZOO_OLAH_VENV)
#   tests/hubserver/install_olah.sh DIR        # -> DIR
#
# Idempotent: does nothing when DIR already holds this exact lock (olah-requirements.txt).
# Uses PyPI through pip only. Prints the olah-cli path; the test fixtures find it through
# TICKETZOO_OLAH (path to olah-cli) or TICKETZOO_OLAH_VENV (its venv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${TICKETZOO_OLAH_VENV:-/work/olah-venv}}"
python="${PYTHON:-python3}"
lock="$here/olah-requirements.txt"
olah_version="0.5.4"
stamp="$venv/.ticketzoo-olah-lock"
want="$(sha256sum "$lock" | cut -d' ' -f1)"

if [[ -x "$venv/bin/olah-cli" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "olah $olah_version already installed: $venv/bin/olah-cli"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock"; then
    # e.g. a Python version without wheels for one of the locked versions
    echo "warning: locked install failed; installing olah==$olah_version with resolver-chosen deps" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "olah==$olah_version"
fi

"$venv/bin/python" -c "import importlib.metadata as m; v = m.version('olah'); assert v == '$olah_version', v"
test -x "$venv/bin/olah-cli"
echo "$want" > "$stamp"
echo "olah $olah_version installed: $venv/bin/olah-cli"
