"""Cross-checks between what a registry records and what a ticket file holds.

A registry folder's ``README.md`` repeats the ticket's card so that ``list`` and ``info``
need not decode the ticket; these checks make sure the copy is the ticket's own card (and
say so when it is not), and collect what ``verify`` warns about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketzoo.card import Card, card_differences, read_card
from ticketzoo.errors import IntegrityError, TicketFormatError, UnknownArchitectureError
from ticketzoo.fileformat import read_header
from ticketzoo.folder import README, Entry
from ticketzoo.names import shown

if TYPE_CHECKING:  # imported (with torch) where it is used: list, info, gc, rm import no torch
    from ticketzoo.ticket import Ticket

__all__ = ["check_readme", "header_card", "listing_problem", "ticket_warnings"]


def header_card(entry: Entry) -> Card:
    """The card inside the ticket file's own header (read without decoding any tensor)."""
    meta = read_header(str(entry.file))
    if "card" not in meta:
        raise TicketFormatError("header has no 'card'", path=entry.file)
    return read_card(meta["card"], path=str(entry.file))


def check_readme(entry: Entry, own: Card | None = None) -> None:
    """The README's card (what listings show) must be the ticket file's own card."""
    own = own if own is not None else header_card(entry)
    diff = card_differences(entry.card, own)
    if diff:
        field = diff[0]
        said, has = getattr(entry.card, field), getattr(own, field)
        if field == "arch" and said.name != has.name:
            said, has = said.name, has.name
        detail = f"{field}: README says {shown(said, 60)}, the ticket says {shown(has, 60)}"
        if len(diff) > 1:
            detail += f"; also {', '.join(diff[1:])}"
    else:  # the front matter is what the Hub and other tools show
        front = [(k, v) for k, v in (("name", own.name), ("arch", own.arch.name)) if entry.front.get(k, v) != v]
        if not front:
            return
        key, value = front[0]
        detail = f"{key}: README front matter says {shown(entry.front[key], 60)}, the ticket says {value!r}"
    raise IntegrityError(f"{entry.folder / README}: its card differs from the ticket file's own header ({detail})",
                         path=entry.folder, hint="the README.md was edited or belongs to another ticket; "
                         f"pull the ticket again, or delete {entry.folder}")


def listing_problem(entry: Entry) -> str | None:
    """Why a listed entry cannot be trusted as shown (missing or resized file, README not the
    ticket's own card), or None. Cheap: reads the header, not the tensors."""
    try:
        size = entry.file.stat().st_size
    except OSError:
        return "ticket file is missing"
    if size != entry.size:
        return f"ticket file is {size} bytes, its README records {entry.size}"
    try:
        check_readme(entry)
    except (IntegrityError, TicketFormatError) as e:
        return e.message.split(": ", 1)[-1] if isinstance(e, IntegrityError) else e.problem
    return None


def ticket_warnings(ticket: Ticket) -> list[str]:
    """What a valid ticket may still hold that a user should hear about."""
    from ticketzoo import __version__
    from ticketzoo.models import get_arch

    where = ticket.path or ticket.name
    out = []
    try:
        get_arch(ticket.card.arch.name)
    except UnknownArchitectureError:
        out.append(f"{where}: architecture {ticket.card.arch.name!r} is unknown to ticketzoo {__version__}; "
                   "its tensors were not checked against it (a newer ticketzoo may know it)")
    bad = ticket.nonfinite()
    if bad:
        first = next(iter(bad))
        out.append(f"{where}: {len(bad)} tensor(s) hold NaN or infinite values (first: {first!r}, "
                   f"{bad[first]} value(s)); training from them will diverge")
    return out
