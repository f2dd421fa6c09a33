"""One entry point per registry verb, whatever the backend a reference names.

Pulled tickets always land in the local registry (``$TICKETZOO_HOME``), verified, so
later commands work offline by name.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from ticketzoo.errors import IntegrityError, InvalidRefError, TicketNotFoundError, UnknownArchitectureError, short
from ticketzoo.registry.catalog import BUNDLED, CatalogEntry, load_catalog
from ticketzoo.registry.checks import check_readme, listing_problem, ticket_warnings
from ticketzoo.registry.local import STATE_FILE, Entry, LocalRegistry, read_entry, verify_entry
from ticketzoo.registry.refs import Ref, check_name, parse_ref, parse_registry_url, path_exists
from ticketzoo.ticket import TICKET_FILE, Ticket


@dataclass(frozen=True)
class Pushed:
    """Where a push put a ticket."""

    name: str
    location: str  # registry URL or "local"
    revision: str  # content revision (local) or commit sha (hub)
    sha256: str
    url: str = ""  # hub commit URL, when there is one


def _home(home: Path | None) -> LocalRegistry:
    return LocalRegistry(home) if home is not None else LocalRegistry()


def _record_pull(local: LocalRegistry, ref: str, entry: Entry) -> None:
    state = {"last_pulled": {"ref": ref, "name": entry.name, "revision": entry.revision}}
    local.write_state(json.dumps(state, indent=2).encode())


def last_pulled(home: Path | None = None) -> Entry | None:
    """The ticket pulled most recently into the local registry, if any."""
    local = _home(home)
    try:
        state = json.loads((local.root / STATE_FILE).read_text())["last_pulled"]
        return local.resolve(state["name"], state["revision"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError, TicketNotFoundError):
        return None


def _import(
    local: LocalRegistry, folder: Path, location: str, expect_sha: str | None = None, *, verified: bool = False
) -> Entry:
    """Verify a fetched ticket folder (unless its fetcher already did) and publish it locally."""
    entry = read_entry(folder, location=location)
    if not verified:
        verify_entry(entry)
    if expect_sha is not None and entry.sha256 != expect_sha:
        raise IntegrityError(
            f"{entry.file}: sha256 {entry.sha256[:12]}… differs from the catalog's {expect_sha[:12]}…",
            path=entry.file,
        )
    data = entry.file.read_bytes()
    check_readme(entry, Ticket.from_bytes(data, entry.file).card)
    return local.publish(data)  # validates every invariant first


def _not_found(name: str, local: LocalRegistry, catalog: dict[str, CatalogEntry]) -> TicketNotFoundError:
    known = sorted(set(local.names()) | set(catalog))
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "run `ticketzoo list` to see available tickets"
    return TicketNotFoundError(f"no ticket named {name!r} in the local registry or the catalog", ref=name, hint=hint)


def _fetch_location(location: str, local: LocalRegistry) -> Path:
    """Download a catalog/remote location into a folder; returns that folder."""
    ref = parse_ref(location)
    if ref.kind == "hf":
        from ticketzoo.registry import hub

        return hub.download(ref.repo_id, ref.name, ref.revision)
    if ref.kind == "file":
        return LocalRegistry(ref.root, location=ref.root.as_uri()).resolve(ref.name, ref.revision).folder
    raise InvalidRefError(f"catalog location {location!r} must be bundled, hf:// or file://", ref=location)


def pull(ref_text: str, registry: str | None = None, *, home: Path | None = None, record: bool = True) -> Entry:
    """Bring a ticket into the local registry (verified) and return its entry.

    ``record`` makes it "the ticket pulled last" (what ``finetune`` uses without a REF);
    commands that only resolve a reference pass False.
    """
    local = _home(home)
    ref = parse_ref(ref_text)
    if registry is not None:
        if ref.kind != "name":
            raise InvalidRefError("with --registry, give a ticket NAME[@REV]", ref=ref_text)
        reg = parse_registry_url(registry)
        ref = _in_registry(reg, ref)
    if ref.kind == "path":
        raise InvalidRefError(
            f"{ref_text!r} is a file path; pull takes a name or URL", ref=ref_text, hint="use `ticketzoo push PATH`"
        )
    if ref.kind == "name":
        entry = _pull_name(ref, local)
    elif ref.kind == "file":
        remote = LocalRegistry(ref.root, location=ref.root.as_uri())
        entry = _import(local, remote.resolve(ref.name, ref.revision).folder, remote.location)
    else:  # hf
        from ticketzoo.registry import hub

        # download() checks the sha256 itself, to evict a bad copy from the HF cache
        entry = _import(local, hub.download(ref.repo_id, ref.name, ref.revision), ref.text, verified=True)
    if record:
        _record_pull(local, ref_text, entry)
    return entry


def _pull_name(ref: Ref, local: LocalRegistry) -> Entry:
    """A local ticket, verified; else (or when the local copy is damaged) the catalog's."""
    damaged: IntegrityError | None = None
    if local.has(ref.name, ref.revision):
        try:
            return local.pull(ref.name, ref.revision)
        except IntegrityError as e:
            damaged = e  # re-fetch from the catalog below when it has this ticket
    catalog = load_catalog()
    item = catalog.get(ref.name)
    if item is None or (ref.revision and not item.entry.revision.startswith(ref.revision)):
        if damaged is not None:
            raise damaged
        raise _not_found(ref.name, local, catalog)
    folder = item.entry.folder if item.location == BUNDLED else _fetch_location(item.location, local)
    return _import(local, folder, item.location, expect_sha=item.entry.sha256)


def _in_registry(reg: Ref, ref: Ref) -> Ref:
    name = ref.name
    rev = f"@{ref.revision}" if ref.revision else ""
    if reg.kind == "file":
        return parse_ref(f"{(reg.root / name).as_uri()}{rev}")
    # hf://org -> the repo org/NAME; hf://org/repo -> the folder NAME of a family repo.
    return parse_ref(f"hf://{reg.repo_id}/{name}{rev}")


def load(ref_text: str, *, home: Path | None = None) -> tuple[Ticket, Entry | None]:
    """A validated Ticket for a path or a reference (pulling it first when needed)."""
    ref = parse_ref(ref_text)
    if ref.kind == "path":
        path = ticket_path(ref_text)
        if not path_exists(path):
            raise TicketNotFoundError(f"no ticket file at {short(str(path))}", ref=ref_text[:200])
        return Ticket.load(path), None
    entry = pull(ref_text, home=home, record=False)
    return Ticket.load(entry.file), entry


def push(
    source: str,
    registry: str | None = None,
    *,
    name: str | None = None,
    home: Path | None = None,
    private: bool = False,
    revision: str | None = None,
    tag: str | None = None,
    message: str | None = None,
) -> Pushed:
    """Publish a ticket file or local ticket to the local registry, a file:// or hf:// one."""
    ticket, entry = load(source, home=home)
    data = (entry.file if entry is not None else ticket_path(source)).read_bytes()
    name = check_name(name or ticket.name)
    if registry is None or parse_registry_url(registry).kind == "file":
        target = _home(home) if registry is None else _file_registry(registry)
        stored = target.publish(data, name=name)
        return Pushed(name, target.location, stored.revision, stored.sha256)
    from ticketzoo.registry import hub

    if ticket.name != name:
        ticket = ticket.with_card(name=name)
        data = ticket.to_bytes()
    reg = parse_registry_url(registry)
    return hub.upload(ticket, data, reg.repo_id, name, private=private, revision=revision, tag=tag, message=message)


def ticket_path(source: str) -> Path:
    """The ticket file a path reference names (a file, or a folder holding ticket.safetensors)."""
    p = parse_ref(source).path
    try:
        return p / TICKET_FILE if p.is_dir() else p
    except OSError:  # e.g. a name too long for the OS: no folder, and load() says the file is missing
        return p


def _file_registry(url: str) -> LocalRegistry:
    reg = parse_registry_url(url)
    return LocalRegistry(reg.root, location=url)


def list_entries(*, home: Path | None = None) -> list[tuple[Entry, str]]:
    """Catalog and local entries as (entry, where) with where in {"local", "catalog", "local+catalog"}."""
    return [(e, w) for e, w, _ in scan_entries(home=home)[0]]


def scan_entries(*, home: Path | None = None) -> tuple[list[tuple[Entry, str, str | None]], list[tuple[str, str]]]:
    """``([(entry, where, problem)], [(name, problem)])``: every listed entry with why it cannot
    be trusted as shown (None when it can: see :func:`listing_problem`), and local tickets
    whose record cannot be read at all."""
    found, damaged = _home(home).scan()
    local = {e.name: e for e in found}
    catalog = load_catalog()
    rows = []
    for n in sorted(set(local) | set(catalog)):
        if n in local:
            where = "local+catalog" if n in catalog else "local"
            rows.append((local[n], where, listing_problem(local[n])))
        else:
            item = catalog[n]
            problem = listing_problem(item.entry) if item.location == BUNDLED else None
            rows.append((item.entry, "catalog", problem))
    return rows, damaged


def verify(ref_text: str, *, home: Path | None = None) -> tuple[Ticket, Entry | None]:
    """Check a path or a stored ticket: sha256 against its record, the README card against the
    file's own, every format invariant, and every tensor against the architecture (built on
    the meta device). An architecture this ticketzoo does not know is a warning
    (:func:`ticket_warnings`), not an error."""
    ref = parse_ref(ref_text)
    if ref.kind == "path":
        ticket, entry = load(ref_text, home=home)
    else:
        local = _home(home)
        if ref.kind == "name" and local.has(ref.name, ref.revision):
            entry = local.pull(ref.name, ref.revision)
        else:
            entry = pull(ref_text, home=home, record=False)
        ticket = Ticket.load(entry.file)
        check_readme(entry, ticket.card)
    try:
        ticket.check_arch()
    except UnknownArchitectureError:
        pass  # reported by ticket_warnings
    return ticket, entry


def resolve_card(ref_text: str, *, home: Path | None = None):
    """The card of a ticket without pulling it when the catalog already describes it.

    A stored ticket file is checked first (sha256, and its header's card against the
    README's), so a damaged or missing file is an error, not a card shown as if intact.
    """
    ref = parse_ref(ref_text)
    if ref.kind == "path":
        ticket, _ = load(ref_text, home=home)
        return ticket.card, None
    local = _home(home)
    if ref.kind == "name":
        if local.has(ref.name, ref.revision):
            entry = local.pull(ref.name, ref.revision)
            check_readme(entry)
            return entry.card, entry
        item = load_catalog().get(ref.name)
        if item is not None and not ref.revision:
            if item.location == BUNDLED:
                check_readme(verify_entry(item.entry))
            return item.entry.card, None
    entry = pull(ref_text, home=home, record=False)
    return entry.card, entry
