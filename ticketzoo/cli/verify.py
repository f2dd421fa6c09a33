"""``ticketzoo verify REF|PATH``: sha256 and every format invariant."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, print_json


@click.command("verify")
@click.argument("ref", metavar="REF|PATH")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, as_json: bool) -> None:
    """Check a ticket: its sha256 against the registry record, its README card against the
    file's own, every format invariant, and every tensor against the architecture."""
    from ticketzoo.registry.api import ticket_warnings, verify

    ticket, entry = verify(ref)
    warnings = ticket_warnings(ticket)
    result = {
        "ok": True,
        "name": ticket.name,
        "sparsity": ticket.sparsity,
        "weight_sets": list(ticket.weight_sets),
        "sha256": entry.sha256 if entry else None,
        "path": str(entry.file) if entry else ref,
        "warnings": warnings,
    }
    for w in warnings:
        err_console.print(f"warning: {w}")
    if as_json:
        print_json(result)
    else:
        checked = "sha256 and format" if entry else "format (a bare file has no recorded sha256)"
        console.print(f"ok: {ticket.name} ({result['path']}): {checked} verified")
