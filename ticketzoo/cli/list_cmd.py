"""``ticketzoo list``: catalog + local registry, or the tickets of one registry (``--registry``)."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, human_size, print_columns, print_json


@click.command("list")
@click.option("--arch", help="Only tickets of this architecture (e.g. resnet50).")
@click.option("--source", help="Only tickets found on this source dataset.")
@click.option("--min-sparsity", type=click.FloatRange(0, 1), help="Only tickets at least this sparse (0-1).")
@click.option("--max-sparsity", type=click.FloatRange(0, 1), help="Only tickets at most this sparse (0-1).")
@click.option("--registry", metavar="URL", help="List this registry instead: file:///DIR, a folder, or hf://ORG[/REPO].")
@click.option("--wide", is_flag=True, help="Also show what each ticket is on its source data: its test accuracy, the "
              "dense network's, its reinit control's and how it compares (seeds).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the source results).")
def command(arch, source, min_sparsity, max_sparsity, registry, wide, as_json) -> None:
    """List tickets in the zoo catalog and the local registry (or in --registry).

    Names, revisions and paths are printed whole (also when piped), one ticket a line.

    \b
    Examples:
      ticketzoo list
      ticketzoo list --arch lenet_300_100 --min-sparsity 0.8
      ticketzoo list --wide
      ticketzoo list --registry file:///srv/zoo --json
    """
    from ticketzoo.api import filter_entries, scan_entries
    from ticketzoo.card import source_summary

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
        path = entry.file if entry.file.is_file() else None  # a catalog card whose file lives remotely
        rows.append(
            {
                "name": entry.name,
                "revision": entry.revision,
                "arch": card.arch.name,
                "source": card.source.dataset,
                "sparsity": card.sparsity,
                "size": entry.size,
                "sha256": entry.sha256,
                "location": where,
                "where": where,  # the name of "location" until 2026-12, kept for scripts
                "path": str(path) if path is not None else None,
                "control": card.lineage.control,
                # what the row shows (its README) may not be the ticket's own card: say so
                "problem": problem,
                "source_results": None if (s := source_summary(card)) is None else s.to_dict(),
            }
        )
    if as_json:
        print_json(rows)
    elif rows:
        controls = any(r["control"] for r in rows)
        problems = any(r["problem"] for r in rows)
        columns = ["name", "revision", "arch", "source", "sparsity", "size", "location", "path"]
        columns += (["control"] if controls else []) + (["problem"] if problems else [])
        if wide:
            columns += ["source acc", "dense acc", "reinit acc", "vs reinit", "seeds"]
        table = []
        for r in rows:
            cells = [r["name"], r["revision"], r["arch"], r["source"], f"{r['sparsity']:.1%}",
                     human_size(r["size"]), r["location"], r["path"] or "-"]
            cells += ([r["control"] or ""] if controls else []) + ([r["problem"] or ""] if problems else [])
            if wide:
                cells += _source_cells(r["source_results"])
            table.append(cells)
        print_columns(columns, table)
    else:
        console.print("no tickets match (see `ticketzoo list` without filters)")
    for name, problem in damaged:  # unreadable records: not listed, but never silently
        if registry is None:
            err_console.print(f"warning: local ticket {name!r} is damaged: {problem} (see `ticketzoo verify {name}`)")
        else:
            err_console.print(f"warning: ticket {name!r} in {registry} is damaged: {problem}")


def _source_cells(summary: dict | None) -> list[str]:
    if summary is None:
        return ["-"] * 5

    def pct(x) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    return [pct(summary["ticket"]), pct(summary["dense"]), pct(summary["reinit"]), summary["vs_reinit"] or "-",
            str(summary["seeds"])]
