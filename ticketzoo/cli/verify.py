"""``ticketzoo verify REF|PATH``: sha256 and every format invariant."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, print_json


@click.command("verify")
@click.argument("ref", metavar="REF|PATH")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, as_json: bool) -> None:
    """Check a ticket: its sha256 against the registry record, then every format invariant."""
    from ticketzoo.registry.api import verify

    ticket, entry = verify(ref)
    result = {
        "ok": True,
        "name": ticket.name,
        "sparsity": ticket.sparsity,
        "weight_sets": list(ticket.weight_sets),
        "sha256": entry.sha256 if entry else None,
        "path": str(entry.file) if entry else ref,
    }
    if as_json:
        print_json(result)
    else:
        checked = "sha256 and format" if entry else "format (a bare file has no recorded sha256)"
        console.print(f"ok: {ticket.name} ({result['path']}): {checked} verified")
