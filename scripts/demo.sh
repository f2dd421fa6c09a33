#!/usr/bin/env bash
# The README's main job, end to end and offline: pull a starter ticket from the bundled zoo
# into the local registry and fine-tune it (mask kept) on an example image folder, beside a
# dense-from-scratch baseline and a random-reinit control trained on the same splits and
# seeds; ends with the result table (mean ± std over 3 seeds).
# Under a minute on 2 CPU cores once .venv exists (installing it takes a few minutes).
#
#   bash scripts/demo.sh            (variables below can be overridden: STARTER=... bash ...)
set -euo pipefail

# Starter ticket: a name from the bundled zoo (cards/<name>/, shipped with the package).
STARTER="${STARTER:-shapes-conv4-s79}"
DATA="${DATA:-examples/textures}"   # made by scripts/make_example_data.py when missing
EPOCHS="${EPOCHS:-15}"
SEEDS="${SEEDS:-3}"
# finetune's defaults are the paper's protocol (SGD Nesterov lr 0.1, batch 64), made for
# ResNet-50 on thousands of images; this 320-image example folder needs a smaller step and
# batch to learn at all, so the demo says so explicitly. EXTRA="" runs the paper's protocol.
EXTRA="${EXTRA---lr 0.01 --batch-size 16}"

cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
TZ=.venv/bin/ticketzoo

if [ ! -d "$DATA" ]; then
  echo "== making the example folder $DATA"
  "$PY" scripts/make_example_data.py "$DATA" --kind textures --classes 8 --per-class 40 --size 32 --seed 0
fi

echo "== ticketzoo pull $STARTER"
"$TZ" pull "$STARTER"

echo "== ticketzoo finetune --data $DATA --compare dense,reinit --seeds $SEEDS --max-epochs $EPOCHS $EXTRA"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$TZ" finetune --data "$DATA" --compare dense,reinit --seeds "$SEEDS" --max-epochs "$EPOCHS" --force --quiet $EXTRA
