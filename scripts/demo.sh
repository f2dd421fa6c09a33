#!/usr/bin/env bash
# The README's main job, end to end and offline: pull a starter ticket (LeNet-300-100 found
# on Fashion-MNIST) from the bundled zoo into the local registry and fine-tune it, mask
# kept, on a folder of real handwritten digits (examples/digits, shipped in the repo),
# from its rewind weights θk and from its source-trained weights, beside a dense network
# trained from scratch and a random re-initialisation of the same mask, on the same
# splits and seeds. Ends with the result table (mean ± std over 3 seeds).
# About a minute on 2 CPU cores once .venv exists (installing it takes a few minutes).
#
#   bash scripts/demo.sh            (variables below can be overridden: STARTER=... bash ...)
set -euo pipefail

STARTER="${STARTER:-fashionmnist-lenet-300-100-s79}"  # a name from the bundled zoo (cards/)
DATA="${DATA:-examples/digits}"  # 300 real 8x8 digits (UCI, CC BY 4.0): see its README.md
SEEDS="${SEEDS:-3}"
OUT="${OUT:-finetuned/demo}"
EXTRA="${EXTRA:-}"  # more finetune flags, e.g. EXTRA="--protocol paper"

cd "$(dirname "$0")/.."
bash scripts/setup.sh
TZ=.venv/bin/ticketzoo

run() {  # print the exact command, then run it
  echo "== $*"
  "$@"
}

run "$TZ" pull "$STARTER"
# Defaults otherwise (--protocol auto). The split keeps 30% of the images for training and
# 60% for the test: with the default 80/10/10 every init scores 100% on the 30 test images,
# which measures nothing; 180 test images show the differences (and their noise).
# shellcheck disable=SC2086  # EXTRA is a list of flags
run "$TZ" finetune "$STARTER" --data "$DATA" --split 0.3,0.1,0.6 --compare trained,dense,reinit \
  --seeds "$SEEDS" --out "$OUT" --force --quiet $EXTRA
