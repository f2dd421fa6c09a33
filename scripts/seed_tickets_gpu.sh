#!/usr/bin/env bash
# The seed tickets of Sabatelli et al. (2020): ResNet-50 winning tickets found on CIFAR-10,
# CIFAR-100 and Fashion-MNIST, 31 rounds of iterative magnitude pruning at 20% with late
# resetting to k = 2 epochs, and the paper's Table 4 hyperparameters (Xavier init, SGD with
# Nesterov momentum 0.9, lr 0.1, weight decay 1e-5, batch 64, LR x0.1 at epochs 50/60/75,
# early stopping on validation loss with patience 5). These are `ticketzoo find` defaults;
# they are spelled out here so the commands stay exact if a default ever changes.
#
# Images are fed at 224x224 as in the paper (the 32/28 px originals are upscaled once).
# Needs a CUDA GPU (AMP + channels_last are on by default there); expect days per dataset.
# Re-running a command resumes its run folder. Add --push --registry hf://ORG to publish.
#
#   DATA_ROOT=~/data RUN_DIR=./runs bash scripts/seed_tickets_gpu.sh [--download]
set -euo pipefail

DATA_ROOT="${DATA_ROOT:-data}"
RUN_DIR="${RUN_DIR:-runs}"
EXTRA=("$@")

for DATA in cifar10 cifar100 fashionmnist; do
  CHANNELS=3  # Fashion-MNIST's grey images are repeated to 3 channels, like the paper's RGB ResNet-50
  ticketzoo find \
    --arch resnet50 --data "$DATA" --data-root "$DATA_ROOT" \
    --input-size 224 --channels "$CHANNELS" \
    --rounds 31 --rate 0.2 --scope global --rewind 2ep --weight-init xavier --seed 0 \
    --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov --weight-decay 1e-5 --batch-size 64 \
    --epochs 100 --milestones 50,60,75 --gamma 0.1 --patience 5 \
    --val-fraction 0.1 --data-seed 0 \
    --device cuda --amp --channels-last \
    --run-dir "$RUN_DIR" "${EXTRA[@]}"
done
