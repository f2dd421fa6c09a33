"""What a comparison trains: one :class:`Job` per (condition, ticket, seed), dense once.

Conditions (Sabatelli et al. Sec. 3; Frankle & Carbin Sec. 2 for the controls):

| condition | network | weights it starts from |
|---|---|---|
| ``rewind`` | the ticket's mask | its θk (``f(x; m⊙θk)``), fresh head |
| ``trained`` | the ticket's mask | its source-trained θ (``f(x; m⊙θi)``), fresh head; only when the ticket has them |
| ``reinit`` | the ticket's mask | fresh weights drawn with the job's seed |
| ``random_prune`` | a random mask with the ticket's per-layer kept counts | fresh weights |
| ``dense`` | no mask | fresh weights; once per architecture, not per ticket |

``reinit``, ``random_prune`` and ``dense`` of one seed draw the same fresh weights before
masking, so the controls differ from each other only by the mask.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ticketzoo.config.compare import CONDITIONS
from ticketzoo.names import family_members, family_of  # noqa: F401 - re-exported

MASKED = ("rewind", "trained", "reinit", "random_prune")  # one job per ticket
LABELS = {
    "rewind": "ticket θk (rewind)",
    "trained": "trained θ under the mask",
    "reinit": "reinit (same mask)",
    "random_prune": "random pruning (same layer counts)",
    "dense": "dense from scratch",
}
@dataclass(frozen=True)
class SweepTicket:
    """One ticket of a comparison, as the jobs need it (picklable: a path, not tensors)."""

    name: str
    path: str  # the ticket file
    sha256: str
    sparsity: float  # fraction of prunable weights removed
    arch: str  # architecture key (name and builder arguments): dense runs once per arch
    has_trained: bool  # the ticket carries its source-trained weights
    family: str = ""  # line label in the plot; default: the name without -sNN

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", family_of(self.name))

    @classmethod
    def of(cls, ticket, path, sha256: str, family: str = "") -> "SweepTicket":
        """From a loaded :class:`~ticketzoo.ticket.Ticket` and its file."""
        import json

        a = ticket.card.arch
        arch = json.dumps([a.name, a.in_channels, a.input_size, a.kwargs], sort_keys=True)
        return cls(ticket.name, str(path), sha256, float(ticket.sparsity), arch,
                   "trained" in ticket.weight_sets, family)


@dataclass(frozen=True)
class Job:
    """One training run of a comparison; ``key`` names its folder."""

    key: str
    condition: str
    seed: int
    ticket: SweepTicket  # for dense: a ticket of the architecture (its weights are not used)
    family: str  # "" for dense
    sparsity: float  # of the trained network: the ticket's for masked conditions, 0 for dense
    fold: int | None = None  # its test fold with --folds K > 1; None: the folder's one split

    def spec(self) -> dict:
        """What the job computes (with the sweep's fingerprint: what decides its result)."""
        spec = {"key": self.key, "condition": self.condition, "seed": self.seed,
                "ticket": self.ticket.name if self.condition != "dense" else None,
                "ticket_sha256": self.ticket.sha256 if self.condition != "dense" else None,
                "arch": self.ticket.arch, "sparsity": self.sparsity}
        return spec if self.fold is None else {**spec, "fold": self.fold}  # one split: as before folds

    def to_dict(self) -> dict:
        return {**self.spec(), "family": self.family, "ticket_info": asdict(self.ticket)}


def make_plan(tickets: list[SweepTicket], conditions, seeds: list[int], folds: int = 1) -> tuple[list[Job], list[str]]:
    """Every job, dense first, then per ticket (by family and sparsity) each condition,
    fold (``folds`` > 1) and seed; and notes on what was left out (a ticket without
    trained weights)."""
    from ticketzoo.errors import ConfigError

    conditions = tuple(dict.fromkeys(conditions))
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise ConfigError(f"unknown condition(s) {', '.join(unknown) or '(none given)'}",
                          field="conditions", value=list(conditions), hint=f"choose from {', '.join(CONDITIONS)}")
    if not tickets:
        raise ConfigError("no ticket to compare", field="tickets")
    names = [t.name for t in tickets]
    if len(set(names)) != len(names):
        raise ConfigError(f"a ticket is named twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}",
                          field="tickets")
    jobs, notes = [], []
    if "dense" in conditions:
        archs = list(dict.fromkeys(t.arch for t in tickets))
        for arch in archs:
            first = next(t for t in tickets if t.arch == arch)
            suffix = "" if len(archs) == 1 else f"-{_slug(arch)}"
            jobs += [Job(f"dense{suffix}{_f(f)}-seed{s}", "dense", s, first, "", 0.0, f)
                     for f in _folds(folds) for s in seeds]
    for t in sorted(tickets, key=lambda t: (t.family, t.sparsity, t.name)):
        for c in (c for c in conditions if c in MASKED):
            if c == "trained" and not t.has_trained:
                notes.append(f"{t.name} has no source-trained weights: no 'trained' runs for it.")
                continue
            jobs += [Job(f"{t.name}--{c}{_f(f)}-seed{s}", c, s, t, t.family, t.sparsity, f)
                     for f in _folds(folds) for s in seeds]
    return jobs, notes


def _folds(k: int) -> list[int | None]:
    return [None] if k == 1 else list(range(k))


def _f(fold: int | None) -> str:
    return "" if fold is None else f"-fold{fold}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
