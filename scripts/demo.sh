#!/usr/bin/env bash
# The README's main job, end to end and offline, as a user types it: pull the ResNet-50
# ticket found on CIFAR-10 at 97% sparsity (cifar10-resnet50-s97, bundled in cards/) into
# the local registry, fine-tune it with its mask kept on a folder of real images of our users'
# kind (examples/bloodcells: 200 colour microscopy images of five white-blood-cell types, from
# the PBC dataset of Acevedo et al. 2020, CC BY 4.0) beside a dense ResNet-50 trained from
# scratch on the same split and seed, then push the fine-tuned ticket to a local file://
# registry (finetuned/registry). Ends with the result table. Timings: README.md.
#
#   bash scripts/demo.sh            (variables below can be overridden: SEEDS=3 bash ...)
set -euo pipefail

STARTER="${STARTER:-cifar10-resnet50-s97}"  # a name from the bundled zoo (cards/)
DATA="${DATA:-examples/bloodcells}"  # 200 real blood-cell images (CC BY 4.0): see its README.md
SPLIT="${SPLIT:-0.4,0.1,0.5}"  # train, val, test shares of each class
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
# Defaults otherwise (--protocol auto). The split keeps 40% of the images for training and
# half for the test: with the default 80/10/10 the 20 test images cannot tell the ticket
# from the baseline (one image is 5 points); 100 test images show the differences (and
# their noise: one image is a point).
# shellcheck disable=SC2086  # EXTRA is a list of flags
run "$TZ" finetune "$STARTER" --data "$DATA" --split "$SPLIT" --compare "$COMPARE" \
  --seeds "$SEEDS" --out "$OUT" --force --quiet $EXTRA
mkdir -p "$REGISTRY"
run "$TZ" push "$OUT" --registry "file://$(cd "$REGISTRY" && pwd)"
