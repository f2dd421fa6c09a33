"""A ticket's preprocessing (``card.preprocess``, :mod:`ticketzoo.card.preprocess`) and
``Ticket.transforms``: what ``predict`` feeds a ticket is what its training fed it.

Pixels: an image through the training pipeline's eval split and through ``Ticket.transforms``
gives the same tensor. End to end: ``predict`` on a test split scores what ``finetune`` and
``find`` measured on it. Old cards: the bundled ones derive their rule and keep their bytes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import colour_folder, tiny_ticket
from sparse_build import compiled, sparse_cache  # noqa: F401 - fixtures
from ticketzoo import codec
from ticketzoo.card import Preprocess, Recipe, find_preprocess, finetune_preprocess, preprocess_of
from ticketzoo.config.data import DataConfig
from ticketzoo.config.find import FindRecipe
from ticketzoo.config.finetune import FinetuneConfig
from ticketzoo.config.train import TrainConfig
from synthetic import make_image_folder
from ticketzoo.errors import TicketFormatError
from ticketzoo.ticket import Ticket

CARDS = Path(__file__).resolve().parents[1] / "cards"


def mixed_images(root: Path) -> Path:
    """DIR/{train,test}/{a,b}/*, awkward files: non-square, a large JPEG (decoded at a draft
    scale), grey, RGBA, 16-bit grey."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, cls in enumerate(("a", "b")):
            d = root / split / cls
            d.mkdir(parents=True)
            for i, (w, h) in enumerate([(40, 40), (57, 31), (300, 220), (23, 45)]):
                rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                if i == 2:
                    Image.fromarray(rgb).save(d / f"{i}.jpg", quality=90)
                elif (i + c) % 3 == 0:
                    Image.fromarray(rgb[:, :, 0], mode="L").save(d / f"{i}.png")
                elif (i + c) % 3 == 1:
                    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]]), mode="RGBA").save(d / f"{i}.png")
                else:
                    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(d / f"{i}.png")  # I;16
    return root


def through(ticket: Ticket, paths) -> torch.Tensor:
    t = ticket.transforms(train=False)
    return torch.stack([t(Image.open(p)) for p in paths])


# --- pixels: the training pipeline's eval split == Ticket.transforms ----------------------------


@pytest.mark.parametrize("resize", [None, 24])
def test_transforms_give_finetunes_eval_tensors(tmp_path, resize):
    """``finetune``'s test split (loading.load / make_sets) and the card's transform agree, both
    for a card that declares the rule (as ``finetune`` now writes it) and one whose recipe implies it."""
    from ticketzoo.data import loading

    root = mixed_images(tmp_path / "imgs")
    config = FinetuneConfig(data=DataConfig(resize=resize))
    ticket = tiny_ticket(input_size=16)
    ds, sets = loading.load(root, config, ticket.card.arch)
    want = sets["test"].__getitems__(list(range(len(ds.test))))[0]
    working = config.working_size(16)
    declared = ticket.with_card(preprocess=finetune_preprocess(config.data, working))
    older = ticket.with_card(recipe=Recipe(method="finetune", train=config.train, finetune=config))
    assert older.card.preprocess is None and older.preprocess == declared.preprocess
    for t in (declared, older):
        got = through(t, [s.path for s in ds.test])
        assert got.shape == want.shape == (8, 3, 16, 16)
        assert (got - want).abs().max().item() <= 1e-6
    if resize is not None:  # the rule before cards declared it (256/224 of the input size) saw other pixels
        assert (through(ticket, [s.path for s in ds.test]) - want).abs().max().item() > 0.1


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("resize", [None, 20])
def test_transforms_give_finds_eval_tensors(tmp_path, augment, resize):
    """``find``'s test split (load_source: images straight to input-size squares; with ``augment``
    the device-resident loaders) and the card's transform agree."""
    from ticketzoo.data.loading import load_source
    from ticketzoo.find import resolve_data
    from ticketzoo.models.transforms import image_transform

    root = mixed_images(tmp_path / "imgs")
    data = DataConfig(input_size=16, channels=1, resize=resize, crop_pad=4 if augment else 0, flip=augment)
    src = load_source(resolve_data(str(root)), data, batch_size=64, seed=0, device="cpu")
    want = torch.cat([x for x, _ in src.test]).contiguous()
    paths = [str(p) for c in ("a", "b") for p in sorted((root / "test" / c).iterdir())]  # the split's order
    ticket = tiny_ticket(input_size=16)
    grey = dataclasses.replace(ticket.card.arch, in_channels=1, mean=src.mean, std=src.std)
    declared = ticket.card.replace(arch=grey, preprocess=find_preprocess(data))
    recipe = FindRecipe(arch="conv2", source="imgs", data=data)
    older = ticket.card.replace(arch=grey, recipe=Recipe(method="imp", train=recipe.train, find=recipe))
    assert preprocess_of(older) == preprocess_of(declared)
    for card in (declared, older):
        t = image_transform(card.arch, preprocess_of(card))
        got = torch.stack([t(Image.open(p)) for p in paths])
        assert got.shape == want.shape == (8, 1, 16, 16)
        assert (got - want).abs().max().item() <= 1e-6
    before = ticket.card.replace(arch=grey)  # the rule before cards declared it: 18 px, center crop
    t = image_transform(before.arch, preprocess_of(before))
    assert (torch.stack([t(Image.open(p)) for p in paths]) - want).abs().max().item() > 0.1


def test_train_transform_crops_pads_and_flips_as_declared():
    img = Image.fromarray(np.arange(16 * 16, dtype=np.uint8).reshape(16, 16), mode="L")
    ticket = tiny_ticket(input_size=16)
    whole = ticket.with_card(preprocess=Preprocess(resize=None)).transforms()(img)
    torch.manual_seed(0)
    flips = ticket.with_card(preprocess=Preprocess(resize=None, flip=True)).transforms(train=True)
    outs = [flips(img) for _ in range(20)]  # the whole square each time, flipped or not
    assert all(torch.equal(x, whole) or torch.equal(x, whole.flip(-1)) for x in outs)
    assert any(torch.equal(x, whole) for x in outs) and any(torch.equal(x, whole.flip(-1)) for x in outs)
    padded = ticket.with_card(preprocess=Preprocess(resize=None, pad=4)).transforms(train=True)
    outs = [padded(img) for _ in range(20)]
    zero = (0 - 0.5) / 0.25  # a padded pixel, normalised (the image's own 0 is only its corner)
    assert any((x[0] == zero).all(dim=0).any() or (x[0] == zero).all(dim=1).any() for x in outs)
    assert ticket.with_card(preprocess=Preprocess(resize=None, pad=4)).transforms()(img).equal(whole)


# --- end to end: predict scores what training measured ------------------------------------------


def presplit(root: Path, *, size: int, per_class: int, counts: tuple[int, int, int]) -> Path:
    """DIR/{train,val,test}/<class>/*: ``make_image_folder``'s stripes divided ``counts`` per class."""
    flat = make_image_folder(root.with_name(root.name + "-flat"), kind="textures", classes=2,
                             per_class=per_class, size=size, seed=0)
    for cls in sorted(p.name for p in flat.iterdir()):
        files = sorted((flat / cls).iterdir())
        start = 0
        for split, n in zip(("train", "val", "test"), counts):
            (root / split / cls).mkdir(parents=True)
            for f in files[start : start + n]:
                shutil.copy(f, root / split / cls / f.name)
            start += n
    return root


def accuracy(result) -> float:
    return sum(r.label == Path(r.path).parent.name for r in result.rows) / len(result.rows)


def agrees(result, ticket: Ticket, paths, inputs: torch.Tensor) -> None:
    """``predict``'s class and probability per image are the network's on the training pipeline's tensors."""
    with torch.no_grad():
        probs = torch.softmax(ticket.to_model("trained").eval()(inputs), 1)
    by_path = {r.path: r for r in result.rows}
    rows = [by_path[str(p)] for p in paths]
    assert [r.index for r in rows] == probs.argmax(1).tolist()
    assert [r.probability for r in rows] == pytest.approx(probs.max(1).values.tolist(), rel=1e-4)


@pytest.mark.parametrize("resize", [None, 28])
def test_predict_scores_what_finetune_measured(compiled, cli, tmp_path, resize):
    from test_finetune import qcfg

    from ticketzoo.data import loading
    from ticketzoo.finetune import finetune
    from ticketzoo.predict import image_files, predict

    root = presplit(tmp_path / "stripes", size=32, per_class=40, counts=(20, 4, 16))
    config = qcfg(resize=resize)
    result = finetune(tiny_ticket(sparsity=0.5, name="tiny-base"), root, config, out_dir=tmp_path / "out")
    saved = Ticket.load(tmp_path / "out" / "ticket.safetensors")
    assert saved.card.preprocess == Preprocess(resize=resize or 18, pad=0, flip=False)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    got = predict(saved, image_files(root / "test"))
    assert len(got.rows) == 32 and got.declared and got.preprocess == saved.card.preprocess
    assert abs(accuracy(got) - metrics["test_accuracy"]) <= 1 / 32 + 1e-9
    assert metrics["test_accuracy"] == result.test_accuracy
    ds, sets = loading.load(root, config, saved.card.arch)  # the test split finetune measured
    agrees(got, saved, [s.path for s in ds.test], sets["test"].__getitems__(list(range(len(ds.test))))[0])
    code, out, _ = cli("predict", tmp_path / "out", "--data", root / "test", "--json")
    assert code == 0 and json.loads(out)["preprocess"] == {"resize": resize or 18, "pad": 0, "flip": False,
                                                           "declared": True}


def test_predict_scores_what_find_measured(compiled, tmp_path):
    from test_find import _recipe

    from ticketzoo.data.loading import load_source
    from ticketzoo.find import find_tickets, resolve_data
    from ticketzoo.predict import predict

    folder = colour_folder(tmp_path / "colours", per_class=20, size=24)
    recipe = _recipe(folder, rounds=1, epochs=4, split=(0.5, 0.1, 0.4))
    result = find_tickets(recipe, str(folder), run_dir=tmp_path / "runs")
    ticket = Ticket.load(result.tickets[-1])
    assert ticket.card.preprocess == find_preprocess(recipe.data) and ticket.preprocess.resize == 16
    src = load_source(resolve_data(str(folder)), recipe.data, batch_size=64, seed=0, device="cpu")
    paths = [s.path for s in src.test.dataset.samples]
    inputs = torch.cat([x for x, _ in src.test])
    assert (through(ticket, paths) - inputs).abs().max().item() <= 1e-6
    got = predict(ticket, [Path(p) for p in paths])
    agrees(got, ticket, paths, inputs)
    measured = ticket.card.metrics[-1].test_accuracy
    assert len(got.rows) == 24 and abs(accuracy(got) - measured) <= 1 / 24 + 1e-9


# --- old cards: derived, bytes unchanged; new cards: the block written and checked ---------------


def test_bundled_cards_derive_the_find_rule_and_keep_their_bytes():
    path = CARDS / "fashionmnist-lenet-300-100-s79" / "ticket.safetensors"
    raw = path.read_bytes()
    ticket = Ticket.load(path)
    assert ticket.card.preprocess is None and ticket.card.recipe.find is not None
    assert ticket.preprocess == Preprocess(resize=28, pad=0, flip=False)  # the 28 px images, whole
    assert "preprocess" not in json.loads(ticket.card.to_json())
    assert ticket.to_bytes() == codec.pack(codec.st_load(raw), list(ticket.weight_sets), ticket.card.to_json())
    cifar = Ticket.load(CARDS / "cifar10-resnet50-s89" / "ticket.safetensors")
    assert cifar.card.recipe.find.data.flip and cifar.preprocess == Preprocess(resize=32, pad=4, flip=True)


def test_derivation_of_cards_without_the_block():
    ticket = tiny_ticket(input_size=28)  # made with Ticket.from_model: the rule every card had before
    assert ticket.card.preprocess is None and ticket.preprocess == Preprocess(resize=32, pad=0, flip=True)
    def tuned_with(**data):
        config = FinetuneConfig(data=DataConfig(**data))
        return ticket.with_card(recipe=Recipe(method="finetune", train=config.train, finetune=config))

    tuned = tuned_with(flip=True)
    assert tuned.preprocess == Preprocess(resize=32, pad=0, flip=True)
    tuned = tuned_with(resize=40)
    assert tuned.preprocess == Preprocess(resize=40, pad=0, flip=False)
    declared = tuned.with_card(preprocess=Preprocess(resize=None))  # a declaration wins over the recipe
    assert declared.preprocess == Preprocess(resize=28)


def test_declared_block_round_trips_and_a_bad_one_names_the_file(tmp_path):
    ticket = tiny_ticket(input_size=16).with_card(preprocess=Preprocess(resize=20, pad=2, flip=True))
    path = tmp_path / "t.safetensors"
    ticket.save(path)
    assert Ticket.load(path).card.preprocess == Preprocess(resize=20, pad=2, flip=True)
    assert json.loads(ticket.card.to_json())["preprocess"] == {"resize": 20, "pad": 2, "flip": True}
    tensors = codec.st_load(path.read_bytes())
    for bad, message in [({"resize": 12}, r"preprocess.resize must be in \[arch.input_size"),
                         ({"resize": 5000}, "preprocess.resize must be in"),
                         ({"pad": -1}, "preprocess.pad must be an integer in"),
                         ({"resize": "big"}, "preprocess.resize must be"),
                         ({"flip": "yes"}, "preprocess.flip must be"),
                         ({"resize": 16.5}, "preprocess.resize must be")]:
        card = json.loads(ticket.card.to_json())
        card["preprocess"].update(bad)
        data = codec.pack(tensors, list(ticket.weight_sets), json.dumps(card))
        with pytest.raises(TicketFormatError, match=message) as err:
            Ticket.from_bytes(data, str(tmp_path / "bad.safetensors"))
        assert err.value.path is not None and "bad.safetensors" in str(err.value)
