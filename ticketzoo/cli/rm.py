"""``ticketzoo rm NAME[@REV]``: remove a ticket (or one revision) from the local registry."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, human_size, print_json
from ticketzoo.cli.options import complete_local_names


@click.command("rm")
@click.argument("ref", metavar="NAME[@REV]", shell_complete=complete_local_names)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, as_json: bool) -> None:
    """Remove a ticket, every revision of it, from the local registry; NAME@REV removes one
    revision (not the current one while others remain). Atomic: a killed rm removes all or
    nothing that any command can see.

    \b
    Examples:
      ticketzoo rm fashionmnist-lenet-300-100-s79
      ticketzoo rm NAME@1a2b3c4d --json
    """
    from ticketzoo.cli.cache import revision_sizes
    from ticketzoo.api import remove_ticket

    sizes = revision_sizes(ref)  # measured before: what the removal frees
    name, revisions = remove_ticket(ref)
    freed = sum(sizes.get(r, 0) for r in revisions)
    if as_json:
        print_json({"name": name, "removed": revisions, "freed": freed})
    else:
        console.print(f"removed {name} ({len(revisions)} revision(s): {', '.join(revisions) or 'none'}; "
                      f"freed {human_size(freed)})")
