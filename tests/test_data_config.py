"""One DataConfig for every command, and cards that store the configs as they ran (issue 28)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import tiny_ticket
from test_cli import main_cli
from ticketzoo.card import Preprocess, preprocess_of, read_card, source_summary
from ticketzoo.config.data import DataConfig
from ticketzoo.config.find import FindRecipe
from ticketzoo.config.finetune import FinetuneConfig
from ticketzoo.errors import ConfigError
from ticketzoo.ticket import Ticket

CARDS = Path(__file__).resolve().parents[1] / "cards"
BUNDLED = sorted(p.parent.name for p in CARDS.glob("*/ticket.safetensors"))


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_card_upgrades_to_the_configs_it_ran(name):
    """Schema 1 and 2 cards read as FindRecipes: the training inside is the card's, the data
    config gives the preprocessing they always had, and nothing is left in a mirrored type."""
    card = Ticket.load(CARDS / name / "ticket.safetensors").card
    r = card.recipe
    assert card.schema == 3 and r.method == "imp" and r.find is not None and r.finetune is None
    assert r.find.train == r.train and r.find.arch == card.arch.name and r.find.source == card.source.dataset
    assert (r.find.data.input_size, r.find.data.channels) == (card.arch.input_size, card.arch.in_channels)
    assert r.record.recipe_hash and r.record.iterations_per_epoch > 0
    if card.arch.name == "resnet50":  # trained with --augment: the CIFAR pad-crop and flip
        assert (r.find.data.crop_pad, r.find.data.flip, r.find.control) == (4, True, "reinit")
        assert r.find.control_at == (0.89, 0.97)
        targets = r.summary().split("target sparsities ", 1)[1].split(", ")  # rev 1: 0.67 .. 0.99; rev 2: 0.89 ..
        assert f"{card.sparsity:.2f}" in targets and "rate 0.2" not in r.summary()
    else:  # the LeNets: a named dataset, 0.1 of its train set held out
        assert r.find.data_kind == "named" and r.find.data.split[1] == 0.1 and not r.find.data.augments
    assert preprocess_of(card) == Preprocess(resize=card.arch.input_size, pad=r.find.data.crop_pad,
                                             flip=r.find.data.flip)
    again = read_card(card.to_json())
    assert again == card and json.loads(card.to_json())["schema"] == 3


def test_a_first_release_recipe_json_reads_and_keeps_its_hash():
    """run folders' recipe.json from before DataConfig: flat data fields and `init`."""
    old = {"arch": "conv2", "source": "pets", "data_kind": "folder", "rounds": 2, "init": "default",
           "data_seed": 3, "split": [0.6, 0.2, 0.2], "val_fraction": 0.1, "input_size": 24, "channels": 1,
           "augment": True}
    recipe = FindRecipe.from_dict(old)
    assert recipe.weight_init == "default" and recipe.data == DataConfig(
        split=(0.6, 0.2, 0.2), split_seed=3, input_size=24, channels=1, crop_pad=4, flip=True)
    assert FindRecipe.from_dict(recipe.to_dict()) == recipe
    hashed = recipe.hashed_dict()  # the first release's layout: the same run folder name
    assert {k: hashed[k] for k in old if k != "rounds"} == {k: v for k, v in old.items() if k != "rounds"}


def test_the_named_val_share_is_the_only_split_a_dataset_reads():
    a = FindRecipe(arch="conv2", source="cifar10", data_kind="named",
                   data=DataConfig(input_size=32, channels=3, split=(0.8, 0.2, 0.0)))
    b = FindRecipe(arch="conv2", source="cifar10", data_kind="named",
                   data=DataConfig(input_size=32, channels=3, split=(0.7, 0.2, 0.1)))
    c = FindRecipe(arch="conv2", source="cifar10", data_kind="named",
                   data=DataConfig(input_size=32, channels=3, split=(0.8, 0.1, 0.1)))
    assert a.hash() == b.hash() != c.hash()


@pytest.mark.parametrize("bad,field", [
    ({"split": (0.5, 0.5)}, "split"), ({"split": (0.0, 0.5, 0.5)}, "split"), ({"crop_pad": -1}, "crop_pad"),
    ({"channels": 2}, "channels"), ({"resize": 0}, "resize"), ({"memory_budget": -1}, "memory_budget"),
    ({"split_seed": -1}, "split_seed"),
])
def test_bad_data_values_name_their_field(bad, field):
    with pytest.raises(ConfigError) as info:
        DataConfig(**bad)
    assert info.value.field == field


def test_a_find_recipe_needs_its_input_and_a_resize_not_below_it():
    with pytest.raises(ConfigError, match="names its input size and channels"):
        FindRecipe(arch="conv2", source="x", data=DataConfig())
    with pytest.raises(ConfigError, match="resize 16 is smaller than the input size 32"):
        FindRecipe(arch="conv2", source="x", data=DataConfig(input_size=32, channels=3, resize=16))


def _captured(monkeypatch, module, attr):
    seen = {}

    def fake(*args, **kw):
        seen["args"], seen["kw"] = args, kw
        raise ConfigError("stopped by the test")

    monkeypatch.setattr(module, attr, fake)
    return seen


def test_find_builds_its_recipe_from_the_options(monkeypatch, capsys):
    from ticketzoo import find

    seen = _captured(monkeypatch, find, "find_tickets")
    args = ["find", "--arch", "conv2", "--data", "cifar10", "--epochs", 3, "--rewind", "1ep"]
    assert main_cli(capsys, *args, "--crop-pad", 2, "--flip", "--split-seed", 5, "--resize", 40)[0] == 1
    recipe = seen["args"][0]
    assert recipe.data == DataConfig(input_size=32, channels=3, crop_pad=2, flip=True, split_seed=5, resize=40)
    assert main_cli(capsys, *args, "--augment", "--data-seed", 3, "--val-fraction", 0.2)[0] == 1  # old spellings
    recipe = seen["args"][0]
    assert (recipe.data.crop_pad, recipe.data.flip, recipe.data.split_seed) == (4, True, 3)
    assert recipe.data.split == (0.8, 0.2, 0.0)


def test_augment_means_one_thing_in_finetune_too(monkeypatch, capsys, tmp_path):
    import ticketzoo.finetune as ft

    base = tmp_path / "base.safetensors"
    tiny_ticket(name="base").save(base)
    seen = _captured(monkeypatch, ft, "finetune")
    assert main_cli(capsys, "finetune", base, "--data", tmp_path, "--augment")[0] == 1
    config = seen["args"][2]
    assert isinstance(config, FinetuneConfig) and (config.data.crop_pad, config.data.flip) == (4, True)
    assert main_cli(capsys, "finetune", base, "--data", tmp_path, "--flip", "--memory-budget", 64)[0] == 1
    config = seen["args"][2]
    assert (config.data.crop_pad, config.data.flip, config.data.memory_budget_bytes) == (0, True, 64 * 2**20)


def test_a_finetune_declares_its_padding_and_predict_scores_what_it_measured(tmp_path):
    """crop_pad reaches the training crops and the card; eval (and predict) take the centre."""
    from test_finetune import qcfg, quick

    from ticketzoo.finetune import finetune
    from ticketzoo.predict import predict

    root = quick(tmp_path / "data")
    config = qcfg(crop_pad=2, flip=True)
    finetune(tiny_ticket(sparsity=0.5, name="tiny-base"), root, config, out_dir=tmp_path / "out")
    saved = Ticket.load(tmp_path / "out" / "ticket.safetensors")
    assert saved.card.preprocess == Preprocess(resize=18, pad=2, flip=True)
    assert saved.card.recipe.finetune.data.crop_pad == 2 and saved.card.recipe.finetune.data.resize == 18
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["data"]["crop_pad"] == 2
    from ticketzoo.data import loading

    ds, _ = loading.load(root, config, saved.card.arch)
    got = predict(saved, [Path(s.path) for s in ds.test])
    right = sum(row.label == ds.classes[s.label] for row, s in zip(got.rows, ds.test))
    assert abs(right / len(ds.test) - metrics["test_accuracy"]) <= 1 / len(ds.test) + 1e-9


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_readme_and_its_file_upgrade_to_the_same_card(name):
    """Both were written under older schemas (the README re-rendered at another time than the
    header): upgraded, they must agree, or `list` reports the ticket as damaged."""
    from ticketzoo.folder import read_readme

    readme, _ = read_readme(CARDS / name)
    assert readme == Ticket.load(CARDS / name / "ticket.safetensors").card


def test_list_wide_says_what_each_ticket_is_on_its_source(capsys):
    code, out, _ = main_cli(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    s97 = rows["cifar10-resnet50-s97"]["source_results"]
    assert (s97["ticket"], s97["dense"], s97["reinit"], s97["vs_reinit"], s97["seeds"]) == (
        0.8206, 0.815, 0.8097, "no difference shown", 1)  # one seed: McNemar's p < 0.05, but within training noise
    assert rows["cifar10-resnet50-s89"]["source_results"]["vs_reinit"] == "higher"  # beyond both
    fm = rows["fashionmnist-resnet50-s97"]["source_results"]  # p = 0.01, but within training noise
    assert (fm["ticket"], fm["dense"], fm["reinit"], fm["vs_reinit"]) == (0.9127, 0.9006, 0.9075, "no difference shown")
    assert rows["fashionmnist-resnet50-s89"]["source_results"]["vs_reinit"] == "higher"
    # Revision 1 recorded no paired test: its verdict says so rather than passing for a tested one.
    first = Ticket.load(CARDS / "fashionmnist-resnet50-s97" / "revisions" / "5e425c03da15" / "ticket.safetensors")
    old = source_summary(first.card)
    assert (old.ticket, old.reinit, old.vs_reinit) == (0.8132, 0.8343, "lower (untested)")
    lenet = rows["fashionmnist-lenet-300-100-s79"]["source_results"]
    assert lenet["seeds"] == 3 and lenet["vs_reinit"] == "no difference shown"  # the Welch test's verdict
    assert rows["cifar10-resnet50-s99"]["source_results"]["vs_reinit"] is None  # no control at s99
    code, out, _ = main_cli(capsys, "list", "--wide", "--arch", "resnet50")
    assert code == 0 and "vs reinit" in out and "82.1%" in out and "81.5%" in out
