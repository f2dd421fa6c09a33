"""``ticketzoo pull REF``: bring a ticket into the local registry and print its path."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, print_json
from ticketzoo.cli.options import complete_ticket_names


@click.command("pull")
@click.argument("ref", shell_complete=complete_ticket_names)
@click.option("--registry", metavar="URL", help="Pull NAME from this registry: file:///DIR, a folder, or hf://ORG[/REPO].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, registry: str | None, as_json: bool) -> None:
    """Pull a ticket (verified by sha256) into the local registry; prints the local file path.

    \b
    Examples:
      ticketzoo pull fashionmnist-lenet-300-100-s79
      ticketzoo pull hf://my-lab/NAME@v1
      ticketzoo pull NAME --registry file:///srv/zoo --json
    """
    from ticketzoo.api import pull

    with err_console.status(f"pulling {ref}"):
        entry = pull(ref, registry, warn=lambda message: err_console.print(f"warning: {message}"))
    if as_json:
        print_json({"name": entry.name, "revision": entry.revision, "sha256": entry.sha256, "path": str(entry.file),
                    "location": entry.location or "local"})
    else:
        console.print(str(entry.file))
