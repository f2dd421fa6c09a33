"""``ticketzoo list``: catalog + local registry, or the tickets of one registry (``--registry``)."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, human_size, print_json


@click.command("list")
@click.option("--arch", help="Only tickets of this architecture (e.g. resnet50).")
@click.option("--source", help="Only tickets found on this source dataset.")
@click.option("--min-sparsity", type=click.FloatRange(0, 1), help="Only tickets at least this sparse (0-1).")
@click.option("--max-sparsity", type=click.FloatRange(0, 1), help="Only tickets at most this sparse (0-1).")
@click.option("--registry", metavar="URL", help="List this registry instead: file:///DIR, a folder, or hf://ORG[/REPO].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(arch, source, min_sparsity, max_sparsity, registry, as_json) -> None:
    """List tickets in the zoo catalog and the local registry (or in --registry)."""
    from ticketzoo.registry.api import filter_entries, scan_entries

    rows = []
    if registry is None:
        found, damaged = scan_entries()
    else:
        with err_console.status(f"listing {registry}"):
            found, damaged = scan_entries(registry=registry)
    # click's empty-string options mean "no filter", as before
    found = filter_entries(found, arch=arch or None, source=source or None, min_sparsity=min_sparsity,
                           max_sparsity=max_sparsity)
    for entry, where, problem in found:
        card = entry.card
        rows.append(
            {
                "name": entry.name,
                "revision": entry.revision,
                "arch": card.arch.name,
                "source": card.source.dataset,
                "sparsity": card.sparsity,
                "size": entry.size,
                "where": where,
                "control": card.lineage.control,
                # what the row shows (its README) may not be the ticket's own card: say so
                "problem": problem,
            }
        )
    if as_json:
        print_json(rows)
    elif rows:
        from rich.table import Table

        controls = any(r["control"] for r in rows)
        problems = any(r["problem"] for r in rows)
        columns = ["name", "arch", "source", "sparsity", "size", "where"]
        columns += (["control"] if controls else []) + (["problem"] if problems else [])
        table = Table(*columns, box=None, pad_edge=False)
        for r in rows:
            cells = [r["name"], r["arch"], r["source"], f"{r['sparsity']:.1%}", human_size(r["size"]), r["where"]]
            cells += ([r["control"] or ""] if controls else []) + ([r["problem"] or ""] if problems else [])
            table.add_row(*cells)
        console.print(table)
    else:
        console.print("no tickets match (see `ticketzoo list` without filters)")
    for name, problem in damaged:  # unreadable records: not listed, but never silently
        if registry is None:
            err_console.print(f"warning: local ticket {name!r} is damaged: {problem} (see `ticketzoo verify {name}`)")
        else:
            err_console.print(f"warning: ticket {name!r} in {registry} is damaged: {problem}")
