"""``ticketzoo push [PATH|REF]``: publish a ticket to a registry."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, print_json, pushed_json


@click.command("push")
@click.argument("source", metavar="[PATH|REF]", required=False)
@click.option("--registry", metavar="URL", help="Target: file:///DIR, a folder, or hf://ORG[/REPO] "
              "(default: $TICKETZOO_REGISTRY, else the local registry).")
@click.option("--name", help="Publish under this name (default: the card's name).")
@click.option("--private", is_flag=True, help="Hub only: create the repo as private.")
@click.option("--revision", help="Hub only: commit to this branch.")
@click.option("--tag", help="Hub only: tag the new commit.")
@click.option("--message", help="Hub only: commit message.")
@click.option("--license", "license_", metavar="ID", callback=lambda ctx, p, v: _hub_license(v),
              help="The weights' license, a Hub id (e.g. mit, cc-by-4.0, other; default apache-2.0): stored in the card.")
@click.option("--force", is_flag=True, help="With --name: move a name that holds another model to this one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: name, revision, sha256, location, url.")
def command(source, registry, name, private, revision, tag, message, license_, force, as_json) -> None:
    """Publish a ticket file (or a local ticket) under its name.

    Without PATH|REF, the ticket fine-tuned or pulled last (whichever came later).

    \b
    Examples:
      ticketzoo push ./finetuned/NAME --registry file:///srv/zoo
      ticketzoo push NAME --registry hf://my-lab --tag v1 --license mit
      ticketzoo push ./ticket.safetensors --name my-ticket --json
    """
    from ticketzoo.api import name_moved, push, ticket_to_push

    if source is None:
        last = ticket_to_push()
        err_console.print(f"pushing the ticket {last.what} last: {last.name} ({last.source})")
        source = last.source
    if name and not force and (held := name_moved(source, registry, name=name)):
        raise click.BadParameter(f"{name} already names another model ({held}): pass --force to move the name "
                                 f"to this ticket (the old revision stays pullable as {held}), or choose another "
                                 "name", param_hint="--name")
    with err_console.status(f"pushing {source}"):
        done = push(source, registry, name=name, private=private, revision=revision, tag=tag, message=message,
                    license=license_)
    if as_json:
        print_json(pushed_json(done))
    else:
        where = done.url or done.location
        console.print(f"pushed {done.name}@{done.revision} to {where} (sha256 {done.sha256})")


def _hub_license(value: str | None) -> str | None:
    """``--license``: one of the Hub's license ids, else a usage error (exit 2) with the nearest."""
    import difflib

    from ticketzoo.card.validate import HUB_LICENSES
    from ticketzoo.cli.console import printable

    if value is None or value in HUB_LICENSES:
        return value
    near = difflib.get_close_matches(value.strip().lower(), sorted(HUB_LICENSES), n=3)
    raise click.BadParameter(f"{printable(repr(value))} is not a Hub license id"
                             + (f"; did you mean {', '.join(near)}?" if near else "; use 'other' for a license "
                                "the Hub does not list"))
