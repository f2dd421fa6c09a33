"""The zoo catalog: one card per ticket the zoo publishes, shipped inside the package.

Each entry is a folder ``<catalog>/<name>/`` holding the ticket's ``README.md`` card,
whose front matter records the ticket file's sha256, size and ``location``:

* ``bundled``: the ticket file ships beside the card (``<name>/ticket.safetensors``),
  so it pulls offline;
* ``hf://org/repo[/name][@rev]`` or ``file:///dir/name``: fetched from there, then
  checked against the sha256 recorded here.

Extra catalog folders can be listed in ``$TICKETZOO_CATALOG`` (``os.pathsep``-separated);
they are searched before the bundled one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketzoo.errors import RegistryError, TicketFormatError
from ticketzoo.fileio import catalog_dirs
from ticketzoo.folder import Entry, read_entry, read_readme
from ticketzoo.names import valid_name

BUNDLED = "bundled"


@dataclass(frozen=True)
class CatalogEntry:
    entry: Entry  # card, sha256 and size as published
    location: str

    @property
    def name(self) -> str:
        return self.entry.name


def load_catalog() -> dict[str, CatalogEntry]:
    """Every catalog entry by name; the first folder that names a ticket wins."""
    out: dict[str, CatalogEntry] = {}
    for d in catalog_dirs():
        if not d.is_dir():
            continue
        for folder in sorted(d.iterdir()):
            if not folder.is_dir() or not valid_name(folder.name) or folder.name in out:
                continue
            if not (folder / "README.md").is_file():
                continue
            try:
                card, meta = readme = read_readme(folder)
                entry = read_entry(folder, location="catalog", readme=readme)
            except (RegistryError, TicketFormatError, ValueError) as e:
                raise RegistryError(f"catalog entry {folder} is damaged: {e}") from None
            out[folder.name] = CatalogEntry(entry, str(meta.get("location") or BUNDLED))
    return out
