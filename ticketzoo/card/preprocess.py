"""The preprocessing a ticket's weights were trained with: declared by new cards, derived for old ones.

Whatever trains a ticket writes :class:`Preprocess` into its card (``find``:
:func:`find_preprocess`, ``finetune``: :func:`finetune_preprocess`). Cards written before
that have none; :func:`preprocess_of` derives theirs from the recipe, the one place that rule
lives, so ``Ticket.transforms`` and ``predict`` read every card the same way.
"""

from __future__ import annotations

import dataclasses

from ticketzoo.card.schema import Card, Preprocess
from ticketzoo.config.data import DataConfig, default_working_size

def data_preprocess(data: DataConfig, working: int | None) -> Preprocess:
    """What a :class:`~ticketzoo.config.data.DataConfig` does to an image: ``working`` squares
    (None: the input size), padded by ``crop_pad`` and randomly cropped in training, flipped
    with ``flip``."""
    return Preprocess(resize=working, pad=data.crop_pad, flip=data.flip)


def find_preprocess(data: DataConfig) -> Preprocess:
    """``find``'s images: input-size squares unless ``data.resize``, as its data config says."""
    working = data.working_size(data.input_size, data.input_size) if data.input_size else None
    return data_preprocess(data, None if working == data.input_size else working)


def finetune_preprocess(data: DataConfig, working: int) -> Preprocess:
    """``finetune``'s images: ``working`` squares, randomly cropped in training."""
    return data_preprocess(data, working)


def preprocess_of(card: Card) -> Preprocess:
    """The card's preprocessing with ``resize`` in pixels: as declared, else derived from its recipe.

    Derived: a fine-tuned ticket's from ``recipe.finetune.data`` (its ``resize``, else the
    default working size); a ``find`` ticket's from ``recipe.find.data``; any other (a ticket
    made with ``Ticket.from_model``) keeps the rule ticketzoo applied to all cards before
    preprocessing was declared: the default working size, and a random crop and flip in training.
    """
    p = card.preprocess
    if p is None:
        r, size = card.recipe, card.arch.input_size
        if r.finetune is not None:
            p = finetune_preprocess(r.finetune.data, r.finetune.data.resize or default_working_size(size))
        elif r.find is not None:
            p = find_preprocess(r.find.data)
        else:
            p = Preprocess(resize=default_working_size(size), flip=True)
    return p if p.resize is not None else dataclasses.replace(p, resize=card.arch.input_size)
