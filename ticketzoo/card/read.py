"""Reading a card: JSON to :class:`Card`, schema-1 and schema-2 cards upgraded, types checked."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from ticketzoo.card.schema import Card
from ticketzoo.card.validate import validate_card
from ticketzoo.config import Config, config_type, describe_type, fit
from ticketzoo.config.find import upgrade_legacy
from ticketzoo.errors import ConfigError, TicketFormatError, short


def read_card(text: str, path: str | None = None) -> Card:
    """The card in ``text`` (its JSON), schemas 1 and 2 upgraded, every field checked; a bad card
    is a :class:`TicketFormatError` naming ``path``."""
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("schema") == 1:
            data = _upgrade_v1(data)
        if isinstance(data, dict) and data.get("schema") == 2:
            data = _upgrade_v2(data)
        card = _build(Card, data)
    except RecursionError:
        raise TicketFormatError("invalid card: JSON nested too deeply", path=path) from None
    except (ValueError, TypeError, KeyError, OverflowError, ConfigError) as e:
        raise TicketFormatError(f"invalid card: {short(str(e))}", path=path) from None
    validate_card(card, path)
    return card


# The recipe parts of schema 2, by the names it wrote them under (a record of that format).
_V2_PRUNING = ("recipe_hash", "total_rounds", "head_rate", "exclude_head", "exclude_first_conv", "init",
               "arch_kwargs", "iterations_per_epoch", "rewind_iterations", "data_seed", "split", "val_fraction",
               "sparsities", "control_at", "augment")
_V2_FINETUNE = ("init", "protocol", "reasons", "split", "augment", "weight_init", "resize", "weight_sets")
_V1_PARAMS = {"imp": ("pruning", _V2_PRUNING), "finetune": ("finetune", _V2_FINETUNE)}


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 card's JSON as schema 2: ``recipe.params`` into the recipe's parts."""
    data = {**data, "schema": 2}
    recipe = data.get("recipe")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("params", {}), dict):
        return data
    recipe = dict(recipe)
    params = dict(recipe.pop("params", {}) or {})
    train = params.pop("train", None)
    if isinstance(train, dict):
        recipe["train"] = {k: v for k, v in train.items() if k != "device"}
    resolved = params.pop("resolved", None)
    if isinstance(resolved, dict) and "reasons" in resolved:
        params["reasons"] = resolved["reasons"]
    if recipe.get("method") in _V1_PARAMS:
        part, known = _V1_PARAMS[recipe["method"]]
        recipe[part] = {k: v for k, v in params.items() if k in known}
    data["recipe"] = recipe
    return data


def _upgrade_v2(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-2 card's JSON as schema 3: its mirrored recipe parts as the configs they
    recorded (:class:`FindRecipe`, :class:`FinetuneConfig`), run facts in ``recipe.record``."""
    data = {**data, "schema": 3}
    recipe = data.get("recipe")
    if not isinstance(recipe, dict):
        return data
    recipe = {k: v for k, v in recipe.items() if k not in ("pruning", "finetune")}
    train = recipe.get("train")
    if isinstance(train, dict):  # schema 2 recorded CPU precision as it ran, off before it existed
        train = recipe["train"] = {"cpu_amp": False, "cpu_channels_last": False, **train}
    pruning, tuned = data["recipe"].get("pruning"), data["recipe"].get("finetune")
    record: dict[str, Any] = {}
    if isinstance(pruning, dict):
        record = {k: pruning[k] for k in ("recipe_hash", "iterations_per_epoch", "rewind_iterations") if k in pruning}
        recipe["find"] = _find_of(data, recipe, pruning, train)
    if isinstance(tuned, dict):
        record = {k: tuned[k] for k in ("reasons", "weight_sets") if k in tuned}
        recipe["finetune"] = {
            **({"train": train} if isinstance(train, dict) else {}),
            **{k: tuned[k] for k in ("init", "protocol", "weight_init") if k in tuned},
            "data": {**({"split": tuned["split"]} if "split" in tuned else {}),
                     **({"resize": tuned["resize"]} if tuned.get("resize") is not None else {}),
                     "flip": bool(tuned.get("augment", False))}}
    recipe["record"] = record
    data["recipe"] = recipe
    return data


def _find_of(card: dict[str, Any], recipe: dict[str, Any], pruning: dict[str, Any], train) -> dict[str, Any]:
    """The find recipe a schema-2 card recorded, in the form ``FindRecipe.from_dict`` reads."""
    arch = card.get("arch") or {}
    scope, rate = recipe.get("scope", "global"), recipe.get("rate", 0.2)
    head_rate = pruning.get("head_rate")  # recorded resolved; explicit only where it is not the rule
    if head_rate is not None and scope == "layerwise" and head_rate == rate / 2:
        head_rate = None
    control = (card.get("lineage") or {}).get("control") or _recorded_control(card)
    folder = pruning.get("split") is not None  # schema 2 wrote `split` for folders, `val_fraction` for datasets
    out = {"arch": arch.get("name"), "source": (card.get("source") or {}).get("dataset"),
           "data_kind": "folder" if folder else "named", "rounds": pruning.get("total_rounds", recipe.get("rounds")),
           "rate": rate, "scope": scope, "rewind": recipe.get("rewind", "0it"), "seed": recipe.get("seed") or 0,
           "head_rate": head_rate, "control": control if pruning.get("control_at") or control else None,
           "input_size": arch.get("input_size", 32), "channels": arch.get("in_channels", 3),
           **{k: pruning[k] for k in ("exclude_head", "exclude_first_conv", "init", "arch_kwargs", "data_seed",
                                      "sparsities", "control_at", "augment") if k in pruning},
           **({"split": pruning["split"]} if folder else {"val_fraction": pruning.get("val_fraction", 0.1)})}
    if isinstance(train, dict):
        out["train"] = train
    return upgrade_legacy(out)


def _recorded_control(card: dict[str, Any]) -> str | None:
    """The control a schema-2 IMP card's results name (``extra.source_results.rounds[].controls``):
    its recipe recorded the rounds that trained one (``control_at``) but not which."""
    results = (card.get("extra") or {}).get("source_results")
    rounds = results.get("rounds") if isinstance(results, dict) else None
    names = {name for r in rounds or () if isinstance(r, dict) and isinstance(r.get("controls"), dict)
             for name in r["controls"]}
    return names.pop() if len(names) == 1 else None


def _known(tp: type, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` without the keys config ``tp`` (and its nested configs) does not know: a newer
    writer's fields, ignored as in the rest of the card."""
    hints = typing.get_type_hints(tp)
    names = {f.name for f in dataclasses.fields(tp)}
    out = {}
    for key, item in value.items():
        if key not in names:
            continue
        sub = config_type(hints[key])
        out[key] = _known(sub, item) if sub is not None and isinstance(item, dict) else item
    return out


class _Misfit(TypeError):
    """A card value of the wrong type; the message names where it is (``arch.kwargs['width']``)."""

    def __init__(self, path: str, tp: Any, value: Any) -> None:
        what = f"an object ({tp.__name__})" if dataclasses.is_dataclass(tp) else describe_type(tp)
        super().__init__(f"{path or 'the card'} must be {what}, got {short(repr(value))}")


def _build(tp: Any, value: Any, path: str = "") -> Any:
    """Rebuild a (possibly nested) dataclass value from JSON data, checking types."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, Config):
        if not isinstance(value, dict):
            raise _Misfit(path, tp, value)
        return tp.from_dict(_known(tp, value), prefix=f"{path}." if path else "")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Misfit(path, tp, value)
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.init}
        # Unknown keys come from newer writers of the same schema: ignore them.
        kwargs = {k: _build(hints[k], v, f"{path}.{k}" if path else k) for k, v in value.items() if k in known}
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:  # X | None: X's own, more precise, complaint
            return _build(args[0], value, path)
        for a in args:
            try:
                return _build(a, value, path)
            except (TypeError, ValueError):
                continue
        raise _Misfit(path, tp, value)
    if origin is tuple:
        if not isinstance(value, list):
            raise _Misfit(path, tp, value)
        (item,) = typing.get_args(tp)[:1]
        return tuple(_build(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Misfit(path, tp, value)
        item = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        return {k: _build(item, v, f"{path}[{k!r}]") for k, v in value.items()}
    if tp in (int, float, str, bool):  # the same scalar rules as every config
        ok, fixed = fit(tp, value)
        if not ok:
            raise _Misfit(path, tp, value)
        return fixed
    return value
