"""Carry an IMP run between machines that keep nothing (a lent GPU, a preempted job).

Once masks are nested, the last finished round's winning ticket holds everything IMP needs
to go on: its mask (every later mask is a subset of it), its ``rewind`` set (θk on that
mask: all of θk a later round reads, plus θk's dense tensors) and its ``trained`` set
(whose magnitudes choose the next mask). With the run's ``log.json`` (the recipe, its hash
and every finished round's results) that makes a *carry folder*::

    <carry>/log.json              the run's log
    <carry>/<ticket>/             the last finished round's winning ticket, as a ticket folder
                                  (ticket.safetensors + README.md); a carry folder of an
                                  earlier version holds ``<carry>/<ticket>.safetensors``

:func:`export_carry` writes one from a run folder; :func:`seed_run` turns one into a fresh
run folder from which ``find`` continues with the next round. The continued run trains
exactly what an uninterrupted run would (same device and thread count: same tickets). The
random-prune control reads all of θk, so a run with that control cannot be carried.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ticketzoo.errors import CheckpointError
from ticketzoo.config.find import FindRecipe
from ticketzoo.find.report import RoundResult
from ticketzoo.find.rundir import RECIPE_FILE, RunDir, save_tensors, write_json, write_ticket_dir
from ticketzoo.fileio import atomic_write_bytes
from ticketzoo.ticket import TICKET_FILE

CARRIED_FILE = "carried.json"  # in a seeded run folder: the rounds that came with the carry


def last_round(rows: list[RoundResult], recipe: FindRecipe) -> RoundResult | None:
    """The last winning-ticket round whose control (when the recipe trains one in that round,
    see ``control_at``) finished too."""
    for r in reversed([r for r in rows if r.line == "imp" and r.round >= 1 and r.file]):
        if not recipe.controls_at(r.round) or any(c.round == r.round and c.line == recipe.control
                                                  for c in rows):
            return r
    return None


def export_carry(run_root: str | Path, dest: str | Path) -> Path:
    """Write ``log.json`` and the last finished round's ticket folder of ``run_root`` into
    ``dest``; returns the ticket folder. Under ``torchrun`` only rank 0 writes (not a
    collective: a caller may call it on rank 0 alone); other ranks get ``dest`` back."""
    from ticketzoo.ticket import Ticket
    from ticketzoo.train import distributed

    if not distributed.is_main():
        return Path(dest)

    root, dest = Path(run_root), Path(dest)
    log = root / "log.json"
    if not log.is_file():
        raise CheckpointError(f"{root} has no log.json: no round has finished yet")
    data = json.loads(log.read_text(encoding="utf-8"))
    rows = [RoundResult.from_dict(r) for r in data.get("rounds", [])]
    last = last_round(rows, FindRecipe.from_dict(data.get("recipe") or {}))
    if last is None:
        raise CheckpointError(f"{root}: no pruning round has finished yet, nothing to carry",
                              hint="a carry starts after round 1 (round 0 is the dense network)")
    dest.mkdir(parents=True, exist_ok=True)
    payload = (root / last.file).read_bytes()  # a ticket folder's file, or an older run's bare file
    write_ticket_dir(dest, last.ticket, payload, Ticket.from_bytes(payload, root / last.file).card)
    keep = [r.to_dict() for r in rows if r.round <= last.round]
    atomic_write_bytes(dest / "log.json", (json.dumps({**data, "rounds": keep}, indent=2) + "\n").encode())
    return dest / last.ticket


def read_carry(carry: str | Path, recipe: FindRecipe) -> tuple[list[RoundResult], RoundResult, Path]:
    """The carried rounds, the last one, and its ticket file; checked against ``recipe``."""
    folder = Path(carry)
    try:
        data = json.loads((folder / "log.json").read_text(encoding="utf-8"))
        rows = [RoundResult.from_dict(r) for r in data["rounds"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{folder}: not a carry folder (log.json: {e})",
                              hint="make one with `ticketzoo find ... --carry-out DIR`") from None
    if data.get("hash") != recipe.hash():
        raise CheckpointError(f"{folder} carries a run of a different recipe",
                              hint="continue with exactly the options the carried run used")
    if recipe.control == "random-prune":
        raise CheckpointError("a run with the random-prune control cannot be carried (it reads all of θk)")
    last = last_round(rows, recipe)
    ticket = None
    if last is not None:
        ticket = folder / last.ticket / TICKET_FILE
        if not ticket.is_file():  # a carry folder written before tickets were folders
            ticket = folder / f"{last.ticket}.safetensors"
    if ticket is None or not ticket.is_file():
        raise CheckpointError(f"{folder}: the ticket of its last round is missing")
    return rows, last, ticket


def seed_run(run: RunDir, carry: str | Path) -> None:
    """Fill a fresh run folder from a carry folder (a folder that has rounds is left alone)."""
    from ticketzoo.fileio import sha256_file
    from ticketzoo.ticket import Ticket

    if (run.root / CARRIED_FILE).exists() or run.result(0) is not None:
        return
    rows, last, path = read_carry(carry, run.recipe)
    if sha256_file(path) != last.sha256:
        raise CheckpointError(f"{path}: sha256 differs from the one its log records")
    ticket = Ticket.load(path)
    run.meta["created"] = ticket.card.created  # the run's tickets keep the first job's date
    write_json(run.root / RECIPE_FILE, run.meta)
    save_tensors(run.thetak, ticket.state_dict("rewind"))
    save_tensors(run.round_dir(last.round) / "mask.safetensors", ticket.masks)
    run.write_ticket(last.ticket, path.read_bytes(), ticket.card)
    here = run.ticket_file(last.ticket)  # the next round reads the carried ticket from here
    kept = [dataclasses.replace(r, file=here) if r == last else r for r in rows if r.round <= last.round]
    carried: dict[str, Any] = {"round": last.round, "ticket": here,
                               "rounds": [r.to_dict() for r in kept]}
    write_json(run.root / CARRIED_FILE, carried)


def carried_rounds(run: RunDir) -> tuple[int, list[RoundResult]] | None:
    """``(last carried round, its rows)`` for a seeded run folder, else None."""
    path = run.root / CARRIED_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return int(data["round"]), [RoundResult.from_dict(r) for r in data["rounds"]]
