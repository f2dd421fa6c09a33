"""The on-disk ticket folder: one writer and one reader for every producer and backend.

A ticket folder holds exactly the files a Hugging Face repo holds::

    ticket.safetensors   the ticket (format ``ticketzoo-csr/1``)
    README.md            the card as a model card, with the file's sha256 and size

The local registry's revisions, ``file://`` registries, the Hub upload staging folder,
``find``'s tickets and ``finetune``'s output all write it through
:func:`write_ticket_folder`, so their layouts are identical by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ticketzoo.card import Card
from ticketzoo.modelcard import parse_readme, render_readme
from ticketzoo.errors import IntegrityError, RegistryError
from ticketzoo.fileformat import TICKET_FILE
from ticketzoo.fileio import atomic_write_bytes, sha256_bytes, sha256_file

README = "README.md"
REV_LEN = 12
SHA_RE = re.compile(r"^[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Entry:
    """A ticket revision stored in a registry folder."""

    name: str
    revision: str
    sha256: str
    size: int
    folder: Path
    card: Card
    location: str = ""  # where it lives, for display ("local", "file:///...", "hf://...")
    front: dict = field(default_factory=dict, compare=False, repr=False)  # README front matter's ticketzoo block

    @property
    def file(self) -> Path:
        return self.folder / TICKET_FILE


def read_readme(folder: Path) -> tuple[Card, dict]:
    """The card and front-matter ``ticketzoo`` block of a ticket folder's README."""
    readme = folder / README
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as e:
        raise RegistryError(f"{readme}: cannot read ticket card: {e.strerror}") from None
    return parse_readme(text, path=str(readme))


def read_entry(folder: Path, *, location: str = "", readme: tuple[Card, dict] | None = None) -> Entry:
    """Read a ticket folder's README (cheap: no tensor is decoded)."""
    card, meta = readme or read_readme(folder)
    sha, size = meta.get("sha256"), meta.get("size")
    if not isinstance(sha, str) or not SHA_RE.match(sha) or not isinstance(size, int) or size < 0:
        raise IntegrityError(f"{folder / README}: card has no valid sha256/size for the ticket file", path=folder)
    return Entry(card.name, sha[:REV_LEN], sha, size, folder, card, location, dict(meta))


def verify_entry(entry: Entry) -> Entry:
    """Check the ticket file against the sha256 and size recorded beside it."""
    path = entry.file
    try:
        size = path.stat().st_size
    except OSError:
        raise IntegrityError(f"{path}: ticket file is missing", path=path) from None
    if size != entry.size:
        raise IntegrityError(f"{path}: size {size} differs from the recorded {entry.size} bytes", path=path)
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise IntegrityError(
            f"{path}: sha256 {actual[:12]}… differs from the recorded {entry.sha256[:12]}…",
            path=path,
            hint=f"the file was modified or damaged; pull it again from its source, or delete {entry.folder}",
        )
    return entry


def write_ticket_folder(folder: Path, data: bytes, card: Card, *, extra_meta: dict | None = None,
                        front: dict | None = None) -> str:
    """Write ``ticket.safetensors`` + ``README.md`` into an existing folder; returns sha256.

    ``extra_meta`` joins the README's ``ticketzoo`` block; ``front`` adds top-level front
    matter keys (e.g. ``license``)."""
    sha = sha256_bytes(data)
    atomic_write_bytes(folder / TICKET_FILE, data, registry=True)
    readme = render_readme(card, sha256=sha, size=len(data), extra_meta=extra_meta, front=front)
    atomic_write_bytes(folder / README, readme.encode("utf-8"), registry=True)
    return sha
