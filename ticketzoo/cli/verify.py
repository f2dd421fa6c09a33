"""``ticketzoo verify REF|PATH``: sha256 and every format invariant."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, print_json
from ticketzoo.cli.options import complete_ticket_names


@click.command("verify")
@click.argument("ref", metavar="REF|PATH", shell_complete=complete_ticket_names)
@click.option("--registry", metavar="URL", help="Verify NAME as stored in this registry: file:///DIR, a folder, "
              "or hf://ORG[/REPO] (needs --pull: it is downloaded into the local registry first).")
@click.option("--pull", "do_pull", is_flag=True, help="Fetch a ticket that is not local (catalog, URL or "
              "--registry) into the local registry, then verify that copy.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (also when the check fails: ok false, error).")
def command(ref: str, registry: str | None, do_pull: bool, as_json: bool) -> None:
    """Check a ticket: its sha256 against the registry record, its README card against the
    file's own, every format invariant, and every tensor against the architecture.

    A local ticket or a file is checked where it is; verify never downloads unless --pull.

    \b
    Examples:
      ticketzoo verify fashionmnist-lenet-300-100-s79
      ticketzoo verify ./runs/x/tickets/t/ticket.safetensors --json
      ticketzoo verify NAME --registry hf://my-lab --pull
    """
    from ticketzoo.errors import TicketzooError

    try:
        _verify(ref, registry, do_pull, as_json)
    except TicketzooError as e:
        if as_json:  # a failed check is a result too: scripts read it from stdout
            from ticketzoo.cli.errors import describe

            print_json({"ok": False, "ref": ref, "error": describe(e, click.get_current_context().command),
                        "kind": type(e).__name__})
        raise


def _verify(ref: str, registry: str | None, do_pull: bool, as_json: bool) -> None:
    from ticketzoo.errors import TicketNotFoundError
    from ticketzoo.api import pull, ticket_warnings, verify
    from ticketzoo.registry.local import LocalRegistry
    from ticketzoo.registry.refs import parse_ref

    parsed = parse_ref(ref)
    local = parsed.kind == "name" and registry is None and LocalRegistry().has(parsed.name, parsed.revision)
    if parsed.kind != "path" and not local:
        if not do_pull:
            what = (f"{ref} in {registry} is not local" if registry else
                    f"{ref} is not in the local registry" if parsed.kind == "name" else f"{ref} is remote")
            raise TicketNotFoundError(f"{what}; verify checks local tickets and files only", ref=ref,
                                      hint=f"pass --pull to fetch it and verify the copy, or `ticketzoo pull {ref}`")
        entry = pull(ref, registry, record=False)
        ref = f"{entry.name}@{entry.revision}"
    try:
        ticket, entry = verify(ref)
    except TicketNotFoundError as e:
        if not local or getattr(e, "removed", False):
            raise
        # It was local a moment ago: rm/gc removed it while verify read it (not "no such ticket").
        raise LocalRegistry()._removed(parsed.name, parsed.revision or "HEAD") from None
    warnings = ticket_warnings(ticket)
    result = {
        "ok": True,
        "name": ticket.name,
        "revision": entry.revision if entry else None,
        "sparsity": ticket.sparsity,
        "weight_sets": list(ticket.weight_sets),
        "sha256": entry.sha256 if entry else None,
        "path": str(entry.file) if entry else ref,
        "location": entry.location or "local" if entry else "file",
        "warnings": warnings,
    }
    for w in warnings:
        err_console.print(f"warning: {w}")
    if as_json:
        print_json(result)
    else:
        checked = "sha256 and format" if entry else "format (a bare file has no recorded sha256)"
        console.print(f"ok: {ticket.name} ({result['path']}): {checked} verified")
