"""`compare --folds` and `finetune --compare --folds`: k-fold designs, paired statistics, resolution.

The first tests pin what `compare` and `finetune --compare` computed before folds existed
(numbers recorded on the code of commit 60b8115): the default, one split, must stay exactly that.
"""

from __future__ import annotations

import pytest

from conftest import tiny_ticket
from ticketzoo.compare import CompareConfig, SweepTicket, compare
from ticketzoo.data import make_image_folder
from ticketzoo.fileio import sha256_file
from ticketzoo.finetune import FinetuneConfig, finetune
from ticketzoo.train import TrainConfig

# key: (status, test accuracy, test images, epochs, best epoch), as recorded before folds existed
PINNED = {
    "dense-seed0": ("ok", 0.6875, 32, 4, 4),
    "dense-seed1": ("chance", 0.5625, 32, 4, 4),
    "tiny-conv2-s80--rewind-seed0": ("ok", 0.71875, 32, 4, 4),
    "tiny-conv2-s80--rewind-seed1": ("ok", 0.78125, 32, 4, 4),
    "tiny-conv2-s80--reinit-seed0": ("chance", 0.625, 32, 4, 4),
    "tiny-conv2-s80--reinit-seed1": ("chance", 0.46875, 32, 4, 4),
}
PINNED_FINGERPRINT = "cbabfdfa365d057027fc4311219694b8f8f0ad68757bf2c28c4603a46ac918f5"
PINNED_FINETUNE = [("rewind", 0, 0.71875, 4), ("rewind", 1, 0.78125, 4), ("dense", 0, 0.6875, 4),
                   ("dense", 1, 0.5625, 4)]


def _train(epochs: int = 4) -> TrainConfig:
    return TrainConfig(max_epochs=epochs, lr=0.01, optimizer="adam", batch_size=8, device="cpu", milestones=(),
                       patience=None)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    root = tmp_path_factory.mktemp("pinned")
    data = make_image_folder(root / "stripes", kind="textures", classes=2, per_class=40, size=16)
    t = tiny_ticket(sparsity=0.8, name="tiny-conv2-s80")
    path = root / "t.safetensors"
    t.save(path)
    return root, data, t, SweepTicket.of(t, path, sha256_file(path))


def _pinned_config(**kw) -> FinetuneConfig:
    return FinetuneConfig(train=_train(), split=(0.5, 0.1, 0.4), seeds=2, threads=1, **kw)


def test_one_split_compare_reproduces_the_numbers_from_before_folds(pinned):
    root, data, _, sweep = pinned
    res = compare([sweep], data, CompareConfig(_pinned_config(), conditions=("rewind", "reinit", "dense")),
                  out_dir=root / "cmp")
    got = {r["key"]: (r["status"], r["test_accuracy"], r["test_samples"], r["epochs"], r["best_epoch"])
           for r in res.records}
    assert got == PINNED
    assert res.setup["fingerprint"] == PINNED_FINGERPRINT  # old --out folders still resume


def test_one_split_finetune_compare_reproduces_the_numbers_from_before_folds(pinned):
    root, data, ticket, _ = pinned
    result = finetune(ticket, data, _pinned_config(compare=("dense",)), out_dir=root / "ft")
    assert [(r.init, r.seed, r.test.accuracy, r.train.best_epoch) for r in result.runs] == PINNED_FINETUNE
