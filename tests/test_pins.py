"""Pinned hashes and bytes: what a refactor must not change (issue 18).

Run folders are named by recipe hashes, resumes are refused on fingerprint changes and
tickets are compared by their bytes, so moving code must leave every one of these equal.
The literal values were computed by the code before the data/config refactor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

CARDS = Path(__file__).resolve().parents[1] / "cards"

# The CIFAR-10 ResNet-50 zoo recipe (scripts/make_resnet50_zoo.sh), as its run's recipe.json holds it.
ZOO_RECIPE = {
    "arch": "resnet50", "arch_kwargs": {}, "augment": True, "channels": 3, "control": "reinit",
    "control_at": [0.89, 0.97], "data_kind": "folder", "data_seed": 0, "exclude_first_conv": False,
    "exclude_head": False, "head_rate": None, "init": "xavier", "input_size": 32, "rate": 0.2,
    "rewind": "2ep", "rounds": 4, "scope": "global", "seed": 0, "source": "cifar10",
    "sparsities": [0.67, 0.89, 0.97, 0.99], "split": [0.9, 0.1, 0.0],
    "train": {"amp": True, "batch_size": 128, "channels_last": True, "cpu_amp": True,
              "cpu_channels_last": True, "device": "cpu", "gamma": 0.1, "label_smoothing": 0.1,
              "lr": 0.2, "max_epochs": 7, "milestones": [], "momentum": 0.9, "nesterov": True,
              "optimizer": "sgd", "patience": None, "restore_best": True, "schedule": "linear",
              "seed": 0, "warmup_epochs": 1, "weight_decay": 0.0005},
    "val_fraction": 0.1,
}


def test_recipe_hashes_are_pinned():
    from ticketzoo.config.find import FindRecipe
    from ticketzoo.config.finetune import FinetuneConfig
    from ticketzoo.train import TrainConfig

    zoo = FindRecipe.from_dict(ZOO_RECIPE)
    # Changed on purpose (issue 28): cpu_amp/cpu_channels_last are runtime choices, out of the
    # hash, so the same recipe names the same run folder on every CPU. Before: c79bfb0edaeb...
    assert zoo.hash() == "50ecc20e0c95f7cabc88a6fc0f3a4c714a94f9100e745d25ff0b708e386c627a"
    assert zoo.hashname() == "50ecc20e0c95"  # runs/zoo/cifar10-resnet50-50ecc20e0c95
    # recipe.json holds today's layout (issue 28: the data fields in `data`, `weight_init`); the
    # hash keeps the first release's, so the run folder keeps its name
    assert zoo.to_dict()["data"] == {"split": [0.9, 0.1, 0.0], "split_seed": 0, "input_size": 32, "channels": 3,
                                     "resize": None, "crop_pad": 4, "flip": True, "strict": False,
                                     "memory_budget": 2048.0}
    assert FindRecipe.from_dict(zoo.to_dict()) == zoo and zoo.weight_init == "xavier"
    assert TrainConfig().hash() == "b2ff1cd4466555f454271c1c2be4955e967bbbf11a7aa183d2c72761cfedce54"
    assert FinetuneConfig().hash() == "5ab541460c6b3b9fef8d71a582bf7e326fa5786e9b50db424828dbbb31d4730d"
    lenet = FindRecipe(arch="lenet_300_100", source="fashionmnist", data_kind="named")
    assert lenet.hash() == "b53143710eb7b695e89491f2db8e0fb24ffe06f42fabde9228554c4b9dbb060e"


def _named_stub():
    """A named dataset's shape as the fingerprints read it: labels and uint8 images per split."""
    rng = np.random.default_rng(0)

    def split(n):
        return SimpleNamespace(labels=rng.integers(0, 2, n).astype(np.int64),
                               images=rng.integers(0, 256, (n, 1, 4, 4)).astype(np.uint8))

    return SimpleNamespace(layout="named", name="stub", classes=("a", "b"),
                           train=split(6), val=split(2), test=split(2))


def _folder_stub(root: Path):
    item = lambda rel, label: SimpleNamespace(path=root / rel, label=label)  # noqa: E731
    return SimpleNamespace(layout="class-folders", name=root.name, root=root, classes=("a", "b"),
                           train=[item("a/1.png", 0), item("b/2.png", 1)], val=[item("a/3.png", 0)],
                           test=[item("b/4.png", 1)])


FINETUNE_CONFIGS = [
    ({}, "f2ba1b6c2dd747f0c17f629a8161c32b62657b693bdd4e61a242946072ec8ad3",
     "af2f56c3b35f27f517a1f6a1dfc7e925b89ba0ed98e7973233353b0aad0d9d51"),
    # threads and name are in neither; seeds and compare only in finetune's (a sweep varies
    # them itself); folds and input_size in both.
    ({"compare": ("dense",), "seeds": 3, "folds": 5, "input_size": 64, "threads": 2, "name": "x-y"},
     "840c648dd2e22280d3054cb570dca4ef9ca1ab1b9a21e0b8e394b343adc5cdb3",
     "59b106921f70f5b89d1f3c0c4e58bf5e94ce24fa8749cffc7e3f0e8405416807"),
]


FOLDER_FP = "4ad975a2a8f8329ad96c746561508f1d910b10ac8466cdfe5f03f23fa60d0528"


@pytest.mark.parametrize("changes,finetune_fp,compare_fp", FINETUNE_CONFIGS)
def test_resume_fingerprints_are_pinned(tmp_path, changes, finetune_fp, compare_fp):
    """finetune's checkpoints/run.json and compare's sweep fingerprint (refused resumes)."""
    from ticketzoo.compare.sweep import _fingerprint
    from ticketzoo.finetune import protocol
    from ticketzoo.config.finetune import FinetuneConfig
    from ticketzoo.finetune.run import _check_resume
    from ticketzoo.train.platform import Platform

    from ticketzoo.config.data import DataConfig

    data = {k: changes[k] for k in ("input_size",) if k in changes}  # a data field since issue 28
    ft = FinetuneConfig(**{k: v for k, v in changes.items() if k not in data}, data=DataConfig(**data))
    resolved = protocol.resolve(ft.protocol, ft.train, ft.overrides, 6)
    ds = _named_stub()
    _check_resume(Platform(), tmp_path, ft, resolved, ds, None, "ab" * 32, False)
    assert json.loads((tmp_path / "checkpoints" / "run.json").read_text()) == {"fingerprint": finetune_fp}
    assert _fingerprint(ft, resolved, ds) == compare_fp


def test_folder_fingerprint_is_pinned(tmp_path):
    from ticketzoo.compare.sweep import _fingerprint
    from ticketzoo.finetune import protocol
    from ticketzoo.config.finetune import FinetuneConfig

    ft = FinetuneConfig()
    resolved = protocol.resolve(ft.protocol, ft.train, ft.overrides, 2)
    assert _fingerprint(ft, resolved, _folder_stub(tmp_path / "pets")) == FOLDER_FP


def test_find_card_recipe_is_pinned():
    from ticketzoo.card.schema import card_dict
    from ticketzoo.config.find import FindRecipe
    from ticketzoo.find.report import card_recipe

    recipe = card_recipe(FindRecipe.from_dict(ZOO_RECIPE), 3, 352)
    text = json.dumps(card_dict(recipe), sort_keys=True)  # as the card writes it
    # Changed with the recipe hash it records (pruning.recipe_hash, above); before: 0bf87a5be5c8...
    # Changed again by card schema 3 (issue 28: the configs as they ran, no mirrored recipe types);
    # before: 348716137ca8...
    assert hashlib.sha256(text.encode()).hexdigest() == \
        "854b18fae6f3b5d5fd58a71c612261c4c5a5608ff1ef0ae4d380a7352653feb3"


# The catalog's tickets re-encoded by Ticket.to_bytes, and their Hub README (render_readme). The
# files themselves are unchanged (their sha256 is in each README's front matter); re-encoding
# writes card schema 3 since issue 28 (before: 722d4958..., e01ed646..., 93b609ca..., 375c670c...
# and READMEs ce0a927b..., 8869a37f..., 8e5a74c5..., 8f7796c7...). The READMEs changed again when
# their usage line stopped claiming `pip install ticketzoo` (issue 32; before: 5d04859c...,
# 202f23b5..., 3e0e5e17..., 73800e6f...).
CATALOG = {
    "fashionmnist-lenet-300-100-s49": ("ce90b786c0c3f2d4be85f3db01201d29cca39e94f45af612eba53ba473bdb73c",
                                       "64030f99de76170f0bffc162bc0133dcea979c829eac7f82d728bf75d2b8cdb7"),
    "fashionmnist-lenet-300-100-s79": ("84ce7cfb8523a38d9d2b042e21b34fbe98a7355ce13f2050174d1771e64da911",
                                       "2b36879b95a5830cf8955e73a5536fc5bd10ae490ba66620457d2a3cefca6792"),
    "fashionmnist-lenet-300-100-s89": ("1a59af0ee9e22b931258bd94c39dda325d1b0401ae4c9330bffcd4643d92317d",
                                       "40c7aff00a51cf2dea9d2413a45c9958af94967b7647c8a31a6a4e75a3fd9a1f"),
    "fashionmnist-lenet-300-100-s93": ("8610f6c8a070fd227d496cfcc39a99095836c6148563cb58b18e6a8f5ecee56a",
                                       "59072c1a654ae3e8fc054be8e0ee824c98acce5beba1e3b9ad0246076704fa67"),
}


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_bytes_are_pinned(name):
    from ticketzoo.modelcard import render_readme
    from ticketzoo.ticket import Ticket

    path = CARDS / name / "ticket.safetensors"
    raw = path.read_bytes()
    ticket = Ticket.load(path)
    readme = render_readme(ticket.card, sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
    assert (hashlib.sha256(ticket.to_bytes()).hexdigest(),
            hashlib.sha256(readme.encode()).hexdigest()) == CATALOG[name]
