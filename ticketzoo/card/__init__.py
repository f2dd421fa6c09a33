"""The ticket card: what a ticket is, where it came from, how it was made.

A :class:`Card` is a frozen dataclass (:mod:`.schema`). It travels as one JSON string in
the ticket's safetensors header (:func:`read_card`, :mod:`.read`, checked by
:mod:`.validate`) and is rendered as a Hugging Face model card (``README.md`` with YAML
front matter, :mod:`ticketzoo.modelcard`) beside the file in a registry. Modules, each
importing only those before it: ``schema``, ``tables``, ``validate``, ``read``,
``preprocess`` (the preprocessing a card declares or, on older cards, implies).
"""

from ticketzoo.card.schema import (
    CARD_SCHEMA,
    UNRECORDED,
    ArchConfig,
    ArchOption,
    Card,
    LayerSparsity,
    Lineage,
    Preprocess,
    Recipe,
    RoundMetrics,
    RunRecord,
    SourceData,
    now_iso,
)
from ticketzoo.card.tables import (FAMILY_TABLE_HEADER, SEED_TABLE_HEADER, SourceSummary, card_differences,
                                   family_caption, family_table, seed_table, source_summary)
from ticketzoo.card.validate import (
    DEFAULT_LICENSE,
    LICENSE_RE,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_INPUT_SIZE,
    validate_card,
)
from ticketzoo.card.read import read_card
from ticketzoo.card.preprocess import data_preprocess, default_working_size, find_preprocess, finetune_preprocess, preprocess_of

__all__ = [
    "CARD_SCHEMA", "DEFAULT_LICENSE", "FAMILY_TABLE_HEADER", "LICENSE_RE", "MAX_CHANNELS", "MAX_CLASSES", "MAX_INPUT_SIZE",
    "SEED_TABLE_HEADER", "UNRECORDED", "ArchConfig", "ArchOption", "Card",
    "LayerSparsity", "Lineage", "Preprocess", "Recipe", "RoundMetrics", "RunRecord", "SourceData", "SourceSummary",
    "card_differences", "default_working_size", "family_caption", "family_table",
    "data_preprocess", "find_preprocess", "finetune_preprocess", "now_iso", "preprocess_of", "read_card", "seed_table", "source_summary", "validate_card",
]
