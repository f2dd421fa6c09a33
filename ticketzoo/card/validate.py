"""Validation: every card field a reader acts on, checked, as a format error."""

from __future__ import annotations

import math
import re

from ticketzoo.card.schema import CARD_SCHEMA, Card, Preprocess
from ticketzoo.card.tables import family_caption, family_table, seed_table
from ticketzoo.errors import TicketFormatError, short
from ticketzoo.names import valid_name

#: Bounds on what a card may claim. Far beyond any image classifier, and small enough
#: that building the architecture (even on the meta device) cannot overflow.
MAX_CLASSES = 1_000_000
MAX_CHANNELS = 256
MAX_INPUT_SIZE = 4096
_ARCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
#: A Hub license id: the Hub's list is lower-case SPDX-like ids ("apache-2.0", "cc-by-nc-4.0", "other").
LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}\Z")
#: The license a card states when none was set: ticketzoo's own (pyproject.toml).
DEFAULT_LICENSE = "apache-2.0"
#: The license ids the Hugging Face Hub lists for model repos (its "Licenses" documentation
#: page, as of 2026-12); "other" stands for any license not listed. ``push --license`` takes
#: only these (a card read from disk may carry any id LICENSE_RE allows).
HUB_LICENSES = frozenset("""
    apache-2.0 mit openrail openrail++ bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc
    cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0
    cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0
    cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1
    eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c
    ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openmdw-1.0 osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib
    pddl lgpl-lr deepfloyd-if-license fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2
    llama3.3 llama4 gemma unknown other
""".split())


def validate_card(card: Card, path: str | None = None) -> None:
    """Check a card's fields (types, ranges, schema) so no reader acts on a wild value.

    NaN compares false with everything, so every float is checked to be finite first.
    Architecture-specific options (``arch.kwargs``) are checked against the model
    registry when the network is built (:meth:`ticketzoo.ticket.Ticket.check_arch`).
    """

    def fail(problem: str, hint: str | None = None) -> TicketFormatError:
        return TicketFormatError(f"invalid card: {problem}", path=path, hint=hint)

    if card.schema != CARD_SCHEMA:  # schema 1 was upgraded on reading
        newer = isinstance(card.schema, int) and card.schema > CARD_SCHEMA
        raise TicketFormatError(f"card schema {card.schema} is not supported (this ticketzoo reads schema "
                                f"{CARD_SCHEMA})", path=path, hint="upgrade ticketzoo" if newer else None)
    if not valid_name(card.name):
        raise TicketFormatError(f"card name {_short_repr(card.name)} is not a valid ticket name", path=path)
    _fraction(card.sparsity, "sparsity", fail)
    if card.license and not LICENSE_RE.match(card.license):
        raise fail(f"license {_short_repr(card.license)} is not a license id (lower case, e.g. mit, apache-2.0)")
    a = card.arch
    if not _ARCH_NAME.match(a.name):
        raise fail(f"arch.name {_short_repr(a.name)} is not an architecture name")
    _bounded_int(a.num_classes, "arch.num_classes", 1, MAX_CLASSES, fail)
    _bounded_int(a.in_channels, "arch.in_channels", 1, MAX_CHANNELS, fail)
    _bounded_int(a.input_size, "arch.input_size", 1, MAX_INPUT_SIZE, fail)
    for what, values in (("arch.mean", a.mean), ("arch.std", a.std)):
        if not 1 <= len(values) <= MAX_CHANNELS or not all(math.isfinite(v) for v in values):
            raise fail(f"{what} must hold 1 to {MAX_CHANNELS} finite numbers")
    if any(v <= 0 for v in a.std):
        raise fail("arch.std must be positive")
    for k, v in a.kwargs.items():
        if not isinstance(v, (bool, int, str, type(None))) and not (isinstance(v, float) and math.isfinite(v)):
            raise fail(f"arch.kwargs[{k!r}] must be a finite number, a string, true/false or null")
    if card.preprocess is not None:
        _check_preprocess(card.preprocess, a.input_size, fail)
    for layer in card.layers:
        if not layer.name or any(d < 0 for d in layer.shape) or not 0 <= layer.kept <= layer.total:
            raise fail(f"per-layer entry {_short_repr(layer.name)} has an invalid shape or counts")
    r = card.recipe
    _fraction(r.rate, "recipe.rate", fail)
    # The configs checked their own values when read (Config.from_dict); their training is one.
    for name in ("find", "finetune"):
        part = getattr(r, name)
        if part is not None and (r.train is None or part.train.hashed_dict() != r.train.hashed_dict()):
            raise fail(f"recipe.{name}.train differs from recipe.train")
    if r.record.iterations_per_epoch < 0 or r.record.rewind_iterations < 0:
        raise fail("recipe.record's iteration counts must be >= 0")
    if r.rounds < 0:
        raise fail("recipe.rounds must be >= 0")
    for m in card.metrics:
        _fraction(m.sparsity, "metrics.sparsity", fail)
        for what, v in (("metrics.val_accuracy", m.val_accuracy), ("metrics.test_accuracy", m.test_accuracy)):
            if v is not None:
                _fraction(v, what, fail)
        if m.round < 0 or (m.epochs is not None and m.epochs < 0):
            raise fail("metrics.round and metrics.epochs must be >= 0")
    if not all(isinstance(v, str) for v in card.versions.values()):
        raise fail("versions must map names to strings")
    try:  # the seed table is rendered by `info` and into README.md: it must render
        if seed_table(card) is not None:
            ", ".join(map(str, card.extra["seeds"]))
        if family_table(card) is not None:
            family_caption(card)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise fail(f"extra source results are malformed ({type(e).__name__}: {e})") from None


def _check_preprocess(p: Preprocess, input_size: int, fail) -> None:
    """A declared preprocessing must be able to give ``input_size`` squares: the working
    square at least that big (or null, the input size itself)."""
    if p.resize is not None:
        if not _is_int(p.resize):
            raise fail(f"preprocess.resize must be an integer or null, got {_short_repr(p.resize)}")
        if not input_size <= p.resize <= MAX_INPUT_SIZE:
            raise fail(f"preprocess.resize must be in [arch.input_size, {MAX_INPUT_SIZE}] = "
                       f"[{input_size}, {MAX_INPUT_SIZE}], got {p.resize}",
                       hint="a card given another input size needs a preprocess for it (resize null: that size)")
    if not _is_int(p.pad) or not 0 <= p.pad <= MAX_INPUT_SIZE:
        raise fail(f"preprocess.pad must be an integer in [0, {MAX_INPUT_SIZE}], got {_short_repr(p.pad)}")
    if not isinstance(p.flip, bool):
        raise fail(f"preprocess.flip must be true or false, got {_short_repr(p.flip)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fraction(value: float, what: str, fail) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise fail(f"{what} must be a number in [0, 1], got {value!r}")


def _bounded_int(value: int, what: str, lo: int, hi: int, fail) -> None:
    if not lo <= value <= hi:
        raise fail(f"{what} must be in [{lo}, {hi}], got {_short_repr(value)}")


def _short_repr(value: object) -> str:
    return short(repr(value))
