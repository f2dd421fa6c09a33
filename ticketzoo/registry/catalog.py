"""The zoo catalog: one card per ticket the zoo publishes, shipped inside the package.

Each entry is a folder ``<catalog>/<name>/`` holding the ticket's ``README.md`` card,
whose front matter records the ticket file's sha256, size and ``location``:

* ``bundled``: the ticket file ships beside the card (``<name>/ticket.safetensors``),
  so it pulls offline;
* ``hf://org/repo[/name][@rev]`` or ``file:///dir/name``: fetched from there, then
  checked against the sha256 recorded here.

Earlier revisions of a name stay pullable as ``NAME@REV``: a new revision moves the card and
file above into ``<name>/revisions/<rev>/`` (the same two files; ``rev`` is the first 12 hex
digits of the file's sha256) before taking their place, and their README says which revision
superseded them. ``list`` shows the current revision (HEAD) only.

Extra catalog folders can be listed in ``$TICKETZOO_CATALOG`` (``os.pathsep``-separated);
they are searched before the bundled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ticketzoo.errors import RegistryError, TicketFormatError
from ticketzoo.fileio import catalog_dirs
from ticketzoo.folder import Entry, read_entry, read_readme
from ticketzoo.names import valid_name

BUNDLED = "bundled"
REVISIONS = "revisions"  # <name>/revisions/<rev>/: earlier revisions of <name>


@dataclass(frozen=True)
class CatalogEntry:
    entry: Entry  # card, sha256 and size as published
    location: str
    earlier: tuple["CatalogEntry", ...] = ()  # earlier revisions, newest first

    @property
    def name(self) -> str:
        return self.entry.name

    def revision(self, rev: str | None) -> "CatalogEntry | None":
        """This entry (``rev`` None or a prefix of its revision) or the earlier revision ``rev``
        names; None when neither."""
        for item in (self, *self.earlier):
            if rev is None or item.entry.revision.startswith(rev):
                return item
        return None

    def supersedes(self, rev: str | None) -> bool:
        """True when ``rev`` is one of this name's earlier published revisions (not HEAD)."""
        return rev is not None and any(item.entry.revision == rev for item in self.earlier)


def load_catalog() -> dict[str, CatalogEntry]:
    """Every catalog entry by name; the first folder that names a ticket wins."""
    out: dict[str, CatalogEntry] = {}
    for d in catalog_dirs():
        if not d.is_dir():
            continue
        for folder in sorted(d.iterdir()):
            if folder.name not in out and _is_entry(folder):
                out[folder.name] = _entry(folder)
    return out


def catalog_entry(name: str) -> CatalogEntry | None:
    """``load_catalog().get(name)``, reading only that name's folders."""
    if not valid_name(name):
        return None
    for d in catalog_dirs():
        if _is_entry(d / name):
            return _entry(d / name)
    return None


def _is_entry(folder: Path) -> bool:
    return folder.is_dir() and valid_name(folder.name) and (folder / "README.md").is_file()


def _entry(folder: Path) -> CatalogEntry:
    """A catalog folder's HEAD with its earlier revisions (newest first), each checked."""
    head = _read(folder)
    earlier = [_read(sub) for sub in sorted((folder / REVISIONS).glob("*")) if sub.is_dir()]
    for item in earlier:
        if item.name != head.name or item.entry.folder.name != item.entry.revision:
            raise RegistryError(f"catalog entry {item.entry.folder} is damaged: it holds "
                                f"{item.name}@{item.entry.revision}, not {head.name}@{item.entry.folder.name}")
    earlier.sort(key=lambda item: item.entry.card.created, reverse=True)
    return CatalogEntry(head.entry, head.location, tuple(earlier))


def _read(folder: Path) -> CatalogEntry:
    try:
        card, meta = readme = read_readme(folder)
        entry = read_entry(folder, location="catalog", readme=readme)
    except (RegistryError, TicketFormatError, ValueError) as e:
        raise RegistryError(f"catalog entry {folder} is damaged: {e}") from None
    return CatalogEntry(entry, str(meta.get("location") or BUNDLED))
