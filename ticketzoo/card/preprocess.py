"""The preprocessing a ticket's weights were trained with: declared by new cards, derived for old ones.

Whatever trains a ticket writes :class:`Preprocess` into its card (``find``:
:func:`find_preprocess`, ``finetune``: :func:`finetune_preprocess`). Cards written before
that have none; :func:`preprocess_of` derives theirs from the recipe, the one place that rule
lives, so ``Ticket.transforms`` and ``predict`` read every card the same way.
"""

from __future__ import annotations

import dataclasses

from ticketzoo.card.schema import Card, Preprocess
from ticketzoo.config.data import default_working_size  # noqa: F401 (re-exported by ticketzoo.card)

#: ``find --augment``'s zero padding around the square before the random crop.
FIND_AUGMENT_PAD = 4


def find_preprocess(augment: bool) -> Preprocess:
    """``find``'s images: input-size squares, whole; ``augment``: padded, randomly cropped and flipped."""
    return Preprocess(resize=None, pad=FIND_AUGMENT_PAD if augment else 0, flip=augment)


def finetune_preprocess(resize: int, augment: bool) -> Preprocess:
    """``finetune``'s images: ``resize`` squares, randomly cropped in training (flipped with ``augment``)."""
    return Preprocess(resize=resize, pad=0, flip=augment)


def preprocess_of(card: Card) -> Preprocess:
    """The card's preprocessing with ``resize`` in pixels: as declared, else derived from its recipe.

    Derived: a fine-tuned ticket's from ``recipe.finetune`` (its ``resize``, else the default
    working size; its ``augment``); a ``find`` ticket's (``recipe.pruning``) from its
    ``augment``; any other (a ticket made with ``Ticket.from_model``) keeps the rule ticketzoo
    applied to all cards before preprocessing was declared: the default working size, and
    a random crop and flip in training.
    """
    p = card.preprocess
    if p is None:
        r, size = card.recipe, card.arch.input_size
        if r.finetune is not None:
            p = finetune_preprocess(r.finetune.resize or default_working_size(size), r.finetune.augment)
        elif r.pruning is not None:
            p = find_preprocess(r.pruning.augment)
        else:
            p = Preprocess(resize=default_working_size(size), flip=True)
    return p if p.resize is not None else dataclasses.replace(p, resize=card.arch.input_size)
