"""Reading a card: JSON to :class:`Card`, schema-1 cards upgraded, types checked."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from ticketzoo.card.schema import Card, FinetuneRecipe, PruningRecipe
from ticketzoo.card.validate import validate_card
from ticketzoo.config import describe_type, fit
from ticketzoo.errors import TicketFormatError, short


def read_card(text: str, path: str | None = None) -> Card:
    """The card in ``text`` (its JSON), schema 1 upgraded, every field checked; a bad card is a
    :class:`TicketFormatError` naming ``path``."""
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("schema") == 1:
            data = _upgrade_v1(data)
        card = _build(Card, data)
    except RecursionError:
        raise TicketFormatError("invalid card: JSON nested too deeply", path=path) from None
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise TicketFormatError(f"invalid card: {short(str(e))}", path=path) from None
    validate_card(card, path)
    return card


_V1_PARAMS = {"imp": PruningRecipe, "finetune": FinetuneRecipe}


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 card's JSON as schema 2: ``recipe.params`` into the typed recipe."""
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
    part = _V1_PARAMS.get(recipe.get("method"))
    if part is not None:
        known = {f.name for f in dataclasses.fields(part)}
        recipe["pruning" if part is PruningRecipe else "finetune"] = {k: v for k, v in params.items() if k in known}
    data["recipe"] = recipe
    return data


class _Misfit(TypeError):
    """A card value of the wrong type; the message names where it is (``arch.kwargs['width']``)."""

    def __init__(self, path: str, tp: Any, value: Any) -> None:
        what = f"an object ({tp.__name__})" if dataclasses.is_dataclass(tp) else describe_type(tp)
        super().__init__(f"{path or 'the card'} must be {what}, got {short(repr(value))}")


def _build(tp: Any, value: Any, path: str = "") -> Any:
    """Rebuild a (possibly nested) dataclass value from JSON data, checking types."""
    origin = typing.get_origin(tp)
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
