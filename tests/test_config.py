"""The one config base (ticketzoo.config): round trips, strict from_dict, stable hashes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ticketzoo.config import LATER, UNHASHED, Config
from ticketzoo.config.data import DataConfig
from ticketzoo.errors import ConfigError
from ticketzoo.config.find import FindRecipe
from ticketzoo.config.finetune import FinetuneConfig
from ticketzoo.train import TrainConfig

# Hashes computed with the hand-written to_dict/hash before the config base existed. Run
# folders are named by them and resume depends on them: they must never change (the data
# fields moved into FindRecipe.data in issue 28; the hash keeps the first release's layout).
LENET = dict(arch="lenet300", source="fashionmnist", data_kind="named", rounds=5, rate=0.5, rewind="0",
             seed=2, data=DataConfig(channels=1, input_size=28),
             train=TrainConfig(lr=0.01, max_epochs=10, patience=None, milestones=(), device="cpu"))
LATER_FIELDS = dict(arch="resnet18", source="flowers", rounds=3, scope="layerwise", head_rate=0.1,
                    exclude_first_conv=True, control="reinit", arch_kwargs={"width": 0.25},
                    data=DataConfig(input_size=32, channels=3, crop_pad=4, flip=True),  # `augment` until 2026-12
                    train=TrainConfig(optimizer="adamw", lr=1e-3, schedule="cosine", milestones=(),
                                      warmup_epochs=2, max_epochs=20))
PINNED = [
    (dict(arch="conv4", source="cifar10", data_kind="named"),
     "a55216af05e0b1f0063a4c876a255820fbddf7f27cff601f58adef1d3144e1b8", "cifar10-conv4-a55216af05e0"),
    (LENET, "81a026371949270bd6bbed61462a1c50fe92984945aeee320d6afc84416a4496",
     "fashionmnist-lenet300-81a026371949"),
    (LATER_FIELDS, "e6f4d450987223f4f972545db50cab217e1d600eb2c1e4cfb6c35e1e661a4290",
     "flowers-resnet18-e6f4d4509872"),
]


@pytest.mark.parametrize("kwargs,digest,run_name", PINNED)
def test_find_recipe_hashes_are_pinned(kwargs, digest, run_name):
    recipe = FindRecipe(**kwargs)
    assert recipe.hash() == digest and recipe.run_name() == run_name
    again = FindRecipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe and again.hash() == digest


def test_train_config_hashes_are_pinned():
    assert TrainConfig().hash() == "b2ff1cd4466555f454271c1c2be4955e967bbbf11a7aa183d2c72761cfedce54"
    cosine = TrainConfig(schedule="cosine", milestones=(), warmup_epochs=1, device="cuda")
    assert cosine.hash() == "c586f8f9e09752034af723ca3cef5be13ec4bcd74d7399e5e12a2824bccbb638"


def test_later_fields_stay_out_at_their_default():
    r = FindRecipe(arch="conv2", source="x")
    assert "augment" not in r.hashed_dict() and "schedule" not in r.to_dict()["train"]
    padded = FindRecipe(arch="conv2", source="x", data=DataConfig(input_size=32, channels=3, crop_pad=4, flip=True))
    assert padded.hashed_dict()["augment"] is True and "data" not in padded.hashed_dict()
    flipped = FindRecipe(arch="conv2", source="x", data=DataConfig(input_size=32, channels=3, flip=True))
    assert flipped.hashed_dict()["data"] == {"flip": True} and flipped.hash() != r.hash() != padded.hash()


def test_unhashed_fields_are_declared_not_special_cased():
    declared = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata == UNHASHED}
    assert declared == {"device"}
    assert TrainConfig(device="cpu").hash() == TrainConfig().hash()
    assert TrainConfig(device="cpu").to_dict()["device"] == "cpu"  # in the dict, out of the hash
    assert "device" not in FindRecipe(arch="conv2", source="x").hashed_dict()["train"]
    base = FinetuneConfig()
    same = FinetuneConfig(name="other", workers=3, threads=2, data=DataConfig(memory_budget=0),
                          train=TrainConfig(device="cpu"))
    assert same.hash() == base.hash() and same.to_dict() != base.to_dict()
    assert FinetuneConfig(seeds=2).hash() != base.hash()


def test_round_trips():
    for config in (TrainConfig(lr=1, milestones=[3, 4], patience=None), FindRecipe(**LATER_FIELDS),
                   FinetuneConfig(train=TrainConfig(lr=0.01), compare="dense,reinit", name="a-b", threads=2,
                                  overrides=["lr"], data=DataConfig(split=[0.6, 0.2, 0.2]))):
        data = json.loads(json.dumps(config.to_dict()))
        assert type(config).from_dict(data) == config
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


@pytest.mark.parametrize("cls,data,field,message", [
    (TrainConfig, {"learning_rate": 0.1}, "learning_rate", "unknown training option"),
    (TrainConfig, {"lr": "0.1"}, "lr", "lr must be a number"),
    (TrainConfig, {"batch_size": True}, "batch_size", "batch_size must be an integer"),
    (TrainConfig, {"nesterov": 1}, "nesterov", "nesterov must be true or false"),
    (TrainConfig, {"milestones": [1, "2"]}, "milestones", "milestones must be a list of integers"),
    (TrainConfig, {"lr": -1}, "lr", "lr must be > 0"),
    (FindRecipe, {"arch": "a", "source": "b", "rounds": 2.0}, "rounds", "rounds must be an integer"),
    (FindRecipe, {"arch": "a", "source": "b", "train": {"lr": -1}}, "train.lr", "lr must be > 0"),
    (FindRecipe, {"arch": "a", "source": "b", "train": {"momentun": 0}}, "train.momentun", "unknown training"),
    (FindRecipe, {"arch": "a", "source": "b", "data": {"split": [0.5, 0.5]}}, "data.split", "list of 3 numbers"),
    (FindRecipe, {"arch": "a", "source": "b", "split": [0.5, 0.5]}, "data.split", "list of 3 numbers"),  # old
    (FindRecipe, {"arch": "a", "source": "b", "nope": 1}, "nope", "unknown recipe field"),
    (FinetuneConfig, {"seeds": "2"}, "seeds", "seeds must be an integer"),
    (FinetuneConfig, {"threads": 0}, "threads", "threads must be a positive integer"),
    (FinetuneConfig, {"train": 3}, "train", "train must be a TrainConfig"),
    (FinetuneConfig, {"innit": "rewind"}, "innit", "unknown fine-tuning option"),
])
def test_from_dict_is_strict_and_names_the_field(cls, data, field, message):
    with pytest.raises(ConfigError, match=message) as info:
        cls.from_dict(data)
    assert info.value.field == field


def test_a_new_config_gets_the_base_for_free():
    @dataclasses.dataclass(frozen=True)
    class Toy(Config):
        size: int = 1
        ratio: float = 0.5
        where: str = dataclasses.field(default="here", metadata=UNHASHED)
        extra: tuple[int, ...] = dataclasses.field(default=(), metadata=LATER)

        def __post_init__(self):
            self.check_types()

    assert Toy().to_dict() == {"size": 1, "ratio": 0.5, "where": "here"}
    assert Toy(extra=[1]).to_dict()["extra"] == [1] and Toy(extra=[1]).extra == (1,)
    assert Toy(where="there").hash() == Toy().hash() != Toy(size=2).hash()
    assert Toy.from_dict({"ratio": 1}).ratio == 1.0
    with pytest.raises(ConfigError) as info:
        Toy(size="1")
    assert info.value.field == "size" and info.value.value == "1"


# --- typed recipes in the card (card schema 2) ------------------------------------------------

from pathlib import Path  # noqa: E402

from ticketzoo import card as cards  # noqa: E402

CARDS = Path(__file__).resolve().parent.parent / "cards"


def test_the_card_records_the_configs_as_they_ran():
    """Schema 3: the recipe holds the TrainConfig and FindRecipe themselves, read back with
    from_dict; a card whose parts disagree about the training is refused."""
    from ticketzoo.errors import TicketFormatError
    from ticketzoo.find.report import card_recipe

    recipe = FindRecipe(arch="conv2", source="x", train=TrainConfig(lr=0.5, cpu_amp=False))
    r = card_recipe(recipe, 1, 10)
    card = cards.Card(name="a", arch=cards.ArchConfig(name="conv2", num_classes=2), source=cards.SourceData("x"),
                      recipe=r)
    again = cards.read_card(card.to_json())
    assert again.recipe.find == recipe and again.recipe.train == recipe.train and again.recipe.train.lr == 0.5
    assert again.recipe.record.recipe_hash == recipe.hash() and again.recipe.record.rewind_iterations == 20
    bad = json.loads(card.to_json())
    bad["recipe"]["train"]["lr"] = 0.1
    with pytest.raises(TicketFormatError, match="recipe.find.train differs"):
        cards.read_card(json.dumps(bad))


@pytest.mark.parametrize("folder", sorted(p.name for p in CARDS.glob("fashionmnist-lenet-*/")
                                         if (p / "README.md").exists()))
def test_bundled_schema_1_cards_still_read(folder):  # the starter zoo, written before schema 2
    from ticketzoo import codec
    from ticketzoo.modelcard import parse_readme
    from ticketzoo.ticket import Ticket

    path = CARDS / folder / "ticket.safetensors"
    raw = json.loads(codec.read_header(str(path))["card"])
    assert raw["schema"] == 1 and "params" in raw["recipe"]  # written before the typed recipe
    card = Ticket.load(path).card
    readme_card, _ = parse_readme((CARDS / folder / "README.md").read_text(), str(path))
    assert card == readme_card and card.schema == cards.CARD_SCHEMA
    r, old = card.recipe, raw["recipe"]["params"]
    assert r.record.recipe_hash == old["recipe_hash"] and r.find.head_rate_for() == old["head_rate"]
    assert r.train.lr == old["train"]["lr"] and r.train.milestones == tuple(old["train"]["milestones"])
    assert r.find.rounds == old["total_rounds"] and r.find.train == r.train
    again = cards.read_card(card.to_json())
    assert again == card and json.loads(card.to_json())["schema"] == 3


def test_a_schema_1_finetune_card_reads_as_its_own_recipe():
    v1 = {"name": "a-ft-b", "schema": 1, "arch": {"name": "conv2", "num_classes": 3},
          "source": {"dataset": "b"},
          "recipe": {"method": "finetune", "scope": "global", "rate": 0.2, "rounds": 3, "rewind": "2ep",
                     "seed": 1, "params": {
                         "init": "rewind", "protocol": "auto", "split": [0.5, 0.1, 0.4], "augment": False,
                         "weight_init": "xavier", "resize": 36, "weight_sets": {"rewind": "start"},
                         "train": {**TrainConfig(lr=0.01).to_dict(), "device": "cpu"},
                         "resolved": {"protocol": "auto", "batch_size": 8, "reasons": {"batch_size": "small"}}}}}
    card = cards.read_card(json.dumps(v1))
    r = card.recipe
    assert r.train == TrainConfig(lr=0.01, cpu_amp=False, cpu_channels_last=False)  # fp32: what ran then
    assert r.find is None and r.finetune.train == r.train
    assert (r.finetune.init, r.finetune.protocol, r.finetune.data.resize) == ("rewind", "auto", 36)
    assert r.record.reasons == {"batch_size": "small"} and r.finetune.data.split == (0.5, 0.1, 0.4)
    assert "finetune from rewind weights (protocol auto): sgd lr 0.01" in r.summary()


def test_newer_card_schemas_are_refused():
    from ticketzoo.errors import TicketFormatError

    data = {"name": "x", "schema": cards.CARD_SCHEMA + 1, "arch": {"name": "conv2", "num_classes": 3},
            "source": {"dataset": "b"}}
    with pytest.raises(TicketFormatError, match="upgrade ticketzoo"):
        cards.read_card(json.dumps(data))
    with pytest.raises(TicketFormatError, match="finite"):
        cards.read_card(json.dumps({**data, "schema": 2, "recipe": {"train": {"lr": float("nan")}}}))
