#!/usr/bin/env bash
# The README's main job, end to end and offline: pull a starter ticket from the bundled zoo
# into the local registry and fine-tune it (mask kept) on an example image folder, beside a
# dense-from-scratch baseline trained on the same splits; ends with the result table.
# A few minutes on 2 CPU cores.
#
#   bash scripts/demo.sh            (variables below can be overridden: STARTER=... bash ...)
set -euo pipefail

# Starter ticket: a name from the bundled zoo (cards/<name>/, shipped with the package).
STARTER="${STARTER:-shapes-conv4-s79}"
DATA="${DATA:-examples/textures}"   # made by scripts/make_example_data.py when missing
EPOCHS="${EPOCHS:-15}"
# Extra finetune flags. Empty = the paper's protocol (SGD lr 0.1, batch 64), made for
# ResNet-50 on thousands of images; on this 192-image folder "--lr 0.01 --batch-size 16"
# learns far better (see `ticketzoo finetune --help`).
EXTRA="${EXTRA:-}"

cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/ticketzoo ]; then
  echo "== installing ticketzoo into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install --quiet -e .
fi
PY=.venv/bin/python
TZ=.venv/bin/ticketzoo

if [ ! -d "$DATA" ]; then
  echo "== making the example folder $DATA"
  "$PY" scripts/make_example_data.py "$DATA" --kind textures --classes 4 --per-class 60 --size 32 --seed 0
fi

echo "== ticketzoo pull $STARTER"
"$TZ" pull "$STARTER"

echo "== ticketzoo finetune --data $DATA --compare dense --max-epochs $EPOCHS $EXTRA"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$TZ" finetune --data "$DATA" --compare dense --max-epochs "$EPOCHS" --force $EXTRA
