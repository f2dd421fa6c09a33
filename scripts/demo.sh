#!/usr/bin/env bash
# The README's main job, end to end and offline, as a user types it: pull the ResNet-50
# ticket found on CIFAR-10 at 97% sparsity (cifar10-resnet50-s97, bundled in cards/) into
# the local registry, fine-tune it with its mask kept on a folder of real images of another
# domain (examples/digits: 300 handwritten digits, UCI, CC BY 4.0) beside a dense ResNet-50
# trained from scratch on the same split and seed, then push the fine-tuned ticket to a
# local file:// registry (finetuned/registry). Ends with the result table.
# About 4 minutes on 2 CPU cores once .venv exists (installing it takes a few minutes).
#
#   bash scripts/demo.sh            (variables below can be overridden: SEEDS=3 bash ...)
set -euo pipefail

STARTER="${STARTER:-cifar10-resnet50-s97}"  # a name from the bundled zoo (cards/)
DATA="${DATA:-examples/digits}"  # 300 real 8x8 digits (UCI, CC BY 4.0): see its README.md
COMPARE="${COMPARE:-dense}"  # baselines on the same splits: dense, reinit, trained (comma-separated)
SEEDS="${SEEDS:-1}"
OUT="${OUT:-finetuned/demo}"
REGISTRY="${REGISTRY:-finetuned/registry}"  # a folder registry (git-ignored)
EXTRA="${EXTRA:-}"  # more finetune flags, e.g. EXTRA="--input-size 64"

cd "$(dirname "$0")/.."
bash scripts/setup.sh
TZ=.venv/bin/ticketzoo

run() {  # print the exact command, then run it
  echo "== $*"
  "$@"
}

run "$TZ" pull "$STARTER"
# Defaults otherwise (--protocol auto). The split keeps 30% of the images for training and
# 60% for the test: with the default 80/10/10 the 30 test images cannot tell the ticket
# from the baseline; 180 test images show the differences (and their noise).
# shellcheck disable=SC2086  # EXTRA is a list of flags
run "$TZ" finetune "$STARTER" --data "$DATA" --split 0.3,0.1,0.6 --compare "$COMPARE" \
  --seeds "$SEEDS" --out "$OUT" --force --quiet $EXTRA
mkdir -p "$REGISTRY"
run "$TZ" push "$OUT" --registry "file://$(cd "$REGISTRY" && pwd)"
