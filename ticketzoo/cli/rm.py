"""``ticketzoo rm NAME[@REV]``: remove a ticket (or one revision) from the local registry."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, print_json


@click.command("rm")
@click.argument("ref", metavar="NAME[@REV]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, as_json: bool) -> None:
    """Remove a ticket, every revision of it, from the local registry; NAME@REV removes one
    revision (not the current one while others remain). Atomic: a killed rm removes all or
    nothing that any command can see."""
    from ticketzoo.registry.api import remove_ticket

    name, revisions = remove_ticket(ref)
    if as_json:
        print_json({"name": name, "removed": revisions})
    else:
        console.print(f"removed {name} ({len(revisions)} revision(s): {', '.join(revisions) or 'none'})")
