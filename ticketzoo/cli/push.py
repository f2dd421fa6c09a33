"""``ticketzoo push PATH|REF``: publish a ticket to a registry."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, print_json


@click.command("push")
@click.argument("source", metavar="PATH|REF")
@click.option("--registry", metavar="URL", help="Target: file:///DIR or hf://ORG[/REPO] (default: the local registry).")
@click.option("--name", help="Publish under this name (default: the card's name).")
@click.option("--private", is_flag=True, help="Hub only: create the repo as private.")
@click.option("--revision", help="Hub only: commit to this branch.")
@click.option("--tag", help="Hub only: tag the new commit.")
@click.option("--message", help="Hub only: commit message.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(source, registry, name, private, revision, tag, message, as_json) -> None:
    """Publish a ticket file (or a local ticket) under its name."""
    from ticketzoo.registry.api import push

    with err_console.status(f"pushing {source}"):
        done = push(source, registry, name=name, private=private, revision=revision, tag=tag, message=message)
    if as_json:
        print_json(done.__dict__)
    else:
        where = done.url or done.location
        console.print(f"pushed {done.name}@{done.revision} to {where} (sha256 {done.sha256})")
