"""What the local registry remembers in ``state.json``: the ticket pulled last (what
``finetune`` takes without a REF) and the ticket fine-tuned last; ``push`` without a
source takes whichever came later, and only when the command that made it succeeded:
``finetune`` records that it started (:func:`finetune_started`) and, once done, its
result (:func:`remember_finetuned`), so a fine-tune that failed or still runs is never
silently replaced by an older ticket. Written under the registry lock, merged, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ticketzoo.errors import TicketNotFoundError
from ticketzoo.folder import Entry
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.named import ticket_file


def _home(home: Path | None) -> LocalRegistry:
    return LocalRegistry(home) if home is not None else LocalRegistry()


@dataclass(frozen=True)
class Last:
    """The ticket a command without a REF uses: ``what`` is ``"fine-tuned"`` or ``"pulled"``."""

    what: str
    source: str  # a path (fine-tuned) or NAME@REV (pulled): what push/load take
    name: str


def last_pulled(home: Path | None = None) -> Entry | None:
    """The ticket pulled most recently into the local registry, if it is still there."""
    local = _home(home)
    try:
        state = local.read_state()["last_pulled"]
        return local.resolve(state["name"], state["revision"])
    except (OSError, ValueError, KeyError, TypeError, TicketNotFoundError):
        return None


def finetune_started(out_dir: str | Path | None = None, *, home: Path | None = None) -> None:
    """Record that a fine-tune (into ``out_dir``, when known) has started: until
    :func:`remember_finetuned` records its result, ``push`` without a source refuses."""
    out = str(Path(out_dir).absolute()) if out_dir is not None else None
    _home(home).update_state({"finetune_started": {"out": out}, "last": "finetune-started"})


def finetune_failed(reason: str, *, home: Path | None = None) -> None:
    """Record why the fine-tune that started last ended without a result (one line)."""
    local = _home(home)
    started = local.read_state().get("finetune_started")
    started = started if isinstance(started, dict) else {}
    local.update_state({"finetune_started": {**started, "error": reason}})


@dataclass(frozen=True)
class Unfinished:
    """A fine-tune that started last and recorded no result."""

    out: str  # its output folder, "" when not known
    error: str | None  # why it failed; None: it was killed, or still runs


def unfinished_finetune(home: Path | None = None) -> Unfinished | None:
    """The fine-tune that started last and never recorded a result (it failed, was killed,
    or still runs); None when the last command finished."""
    state = _home(home).read_state()
    if state.get("last") != "finetune-started":
        return None
    started = state.get("finetune_started")
    started = started if isinstance(started, dict) else {}
    out, error = started.get("out"), started.get("error")
    return Unfinished(out if isinstance(out, str) else "", error if isinstance(error, str) else None)


def remember_finetuned(path: str | Path, *, home: Path | None = None) -> None:
    """Record a fine-tuned ticket file (or its folder) as "the ticket fine-tuned last", which
    ``push`` without a source publishes. Called by the CLI after a fine-tune succeeds."""
    from ticketzoo.ticket import Ticket

    file = ticket_file(Path(path).absolute())
    name = Ticket.load(file).name
    _home(home).update_state({"last_finetuned": {"path": str(file), "name": name}, "last": "finetuned"})


def last_finetuned(home: Path | None = None) -> Path | None:
    """The ticket file fine-tuned most recently, if it still exists."""
    try:
        path = Path(_home(home).read_state()["last_finetuned"]["path"])
    except (KeyError, TypeError, ValueError):
        return None
    return path if path.is_file() else None


def last_ticket(home: Path | None = None) -> Last | None:
    """The ticket fine-tuned or pulled last (whichever came later and still exists)."""
    local = _home(home)
    state = local.read_state()
    found = []
    tuned = last_finetuned(home)
    if tuned is not None:
        found.append(Last("fine-tuned", str(tuned), str(state["last_finetuned"].get("name", tuned.parent.name))))
    pulled = last_pulled(home)
    if pulled is not None:
        found.append(Last("pulled", f"{pulled.name}@{pulled.revision}", pulled.name))
    if state.get("last") == "pulled":
        found.reverse()
    return found[0] if found else None


def record_pull(local: LocalRegistry, ref: str, entry: Entry) -> None:
    """Make ``entry`` the ticket pulled last (``ref`` as the user typed it). Checked under
    the lock: a revision ``rm`` or ``gc`` removed since the pull read it is refused (a
    TicketNotFoundError saying so), so no command reports a pull of what is gone, and
    ``gc`` (which decides under the same lock) spares what it records."""
    def still_there() -> None:
        if not entry.folder.is_dir():
            raise local._removed(entry.name, entry.revision)

    local.update_state({"last_pulled": {"ref": ref, "name": entry.name, "revision": entry.revision},
                        "last": "pulled"}, check=still_there)
